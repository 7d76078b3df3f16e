export { NativeKvm, NativeVm, NativeGuestMemfd, NativeMapping } from './driver.js';
export { probeNativeKvm, type NativeKvmProbe } from './probe.js';
export { NATIVE_BACKEND } from './errors.js';
