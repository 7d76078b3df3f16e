/**
 * The simulated Linux 6.18 KVM guest_memfd kernel (research §2), built on `@guestmem/core`, and
 * proven equal to the real kernel by `../diff/`. `openKvm({ driver: 'sim' })` lands in
 * {@link openSimKvm}.
 */
export { openSimKvm, SimKvm, type SimKvmStats } from './kvm.js';
export { SimKernel, type SimKernelOptions } from './kernel.js';
export { SimKvmVm, SimMemslot, SimVmState } from './vm.js';
export { SimGuestMemfd, SimGmemFile, SimMapping } from './guest-memfd.js';
export { SIM_VM_TYPES, type SimVmType } from './vm-types.js';
export { SIM_BACKEND } from './errors.js';
