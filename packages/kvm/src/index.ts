/**
 * `@guestmem/kvm`: KVM's guest_memfd uAPI byte for byte, the driver-neutral uAPI-level API with
 * `openKvm`, the native `/dev/kvm` driver (koffi, loaded on the first native call), the neutral
 * adapter and the DI registration. The simulated kernel's own classes are at `@guestmem/kvm/sim`.
 */
// ---- uAPI: constants, ioctl numbers, struct codecs ----
export * from './uapi/index.js';
// ---- driver-neutral uAPI-level API and driver selection ----
export * from './api.js';
export { openKvm } from './open.js';
// A KVM_EXIT_MEMORY_FAULT as both drivers report it (`info` of the EFAULT GuestMemError).
export type { KvmMemoryFaultExit } from './sim/vm.js';
// ---- native /dev/kvm driver ----
export { probeNativeKvm, type NativeKvmProbe, type KvmDevice, NATIVE_BACKEND } from './native/index.js';
export {
  detectHostVirtualization,
  type HostVirtualization,
  type HostVirtualizationKind,
  type HostVirtualizationSources,
} from './host-virtualization.js';
// vCPUs run real guest code: native only (not in api.ts, the sim has no instruction emulator).
export {
  asNativeVm,
  NativeVm,
  NativeVcpu,
  runVcpu,
  enterRealMode,
  isHlt,
  VCPU_TIMEOUT_SIGNAL,
  type VcpuExit,
  type VcpuRunOptions,
  type RunVcpuOptions,
  type RunVcpuResult,
} from './native/index.js';
// ---- neutral adapter and DI registration ----
export {
  KvmHypervisor,
  KvmVmAdapter,
  KvmGuestMemory,
  KvmBinding,
  type KvmGuestAccessDriver,
  type KvmVcpuDriver,
} from './adapter/kvm-hypervisor.js';
export { NativeKvmVcpu, nativeKvmVcpus } from './adapter/kvm-vcpu.js';
export {
  registerKvm,
  nativeKvmProvider,
  simKvmProvider,
  openKvmHypervisor,
  type RegisterKvmOptions,
  type OpenKvmHypervisorOptions,
} from './adapter/register.js';
