/**
 * The simulated Linux 6.18 KVM guest_memfd kernel (docs/kvm-guest-memfd.md §2), built on `@guestmem/core`, and
 * proven equal to the real kernel by `../diff/`. `openKvm({ driver: 'sim' })` lands in
 * {@link openSimKvm}.
 */
export { openSimKvm, SimKvm, type SimKvmStats } from './kvm.js';
export { SimKernel, type SimKernelOptions } from './kernel.js';
export { SimKvmVm, SimMemslot, SimVmState, memoryFaultExit, type KvmMemoryFaultExit, type SimGuestAccess } from './vm.js';
export { SimAnonMapping } from './anon-memory.js';
export { SimVcpu } from './vcpu.js';
export { SimGuestMemfd, SimGmemFile, SimMapping, SIM_ANON_INODEFS_DEV } from './guest-memfd.js';
export { SIM_VM_TYPES, PROBE_HOST_CONFIG, SW_PROTECTED_CONFIG, offeredVmType, type SimVmType, type SimKernelConfig } from './vm-types.js';
export { SIM_BACKEND } from './errors.js';
export type { SimGuestTouch } from './guest-access.js';
