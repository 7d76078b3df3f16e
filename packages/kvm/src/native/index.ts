export { NativeKvm, NativeVm, NativeGuestMemfd, NativeMapping, asNativeVm } from './driver.js';
export { probeNativeKvm, type NativeKvmProbe, type KvmDevice } from './probe.js';
export { NATIVE_BACKEND } from './errors.js';
export {
  NativeVcpu,
  runVcpu,
  enterRealMode,
  isHlt,
  VCPU_TIMEOUT_SIGNAL,
  type VcpuExit,
  type VcpuRunOptions,
  type RunVcpuOptions,
  type RunVcpuResult,
} from './vcpu.js';
