// ---- uAPI: constants, ioctl numbers, struct codecs (kvm engineer) ----
export * from './uapi/index.js';
// ---- driver-neutral uAPI-level API and driver selection (kvm engineer) ----
export * from './api.js';
export { openKvm } from './open.js';
// ---- native /dev/kvm driver (kvm engineer) ----
export { probeNativeKvm, type NativeKvmProbe, NATIVE_BACKEND } from './native/index.js';
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
// ---- neutral adapter and DI registration (lead) ----
export {
  KvmHypervisor,
  KvmVmAdapter,
  KvmGuestMemory,
  KvmBinding,
  type KvmGuestAccessDriver,
} from './adapter/kvm-hypervisor.js';
export { simKvmExtensions } from './adapter/sim-extensions.js';
// ---- simulated 6.18 kernel (sim-only extras: guestAccess, markPoisoned, stats) ----
export * from './sim/index.js';
export { registerKvm, nativeKvmProvider, simKvmProvider, openKvmHypervisor, type RegisterKvmOptions, type OpenKvmHypervisorOptions } from './adapter/register.js';
