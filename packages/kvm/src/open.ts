import type { Kvm, OpenKvmOptions } from './api.js';
import { openNativeKvm, probeNativeKvm } from './native/probe.js';
import { openSimKvm } from './sim/index.js';

/**
 * Opens KVM's system fd on the chosen driver:
 * - `'native'`: `open("/dev/kvm")` (or `opts.device`: another path, or an open fd) on this machine
 *   (fails with the real errno, e.g. ENOENT/EACCES);
 * - `'sim'`: a simulated kernel of `profile` (default `'6.18'`), private to the returned object,
 *   built with `CONFIG_KVM_SW_PROTECTED_VM` unless `swProtectedVm: false`;
 * - `'auto'`: native when `probeNativeKvm().available` (guest_memfd present), else sim.
 */
export function openKvm(opts: OpenKvmOptions): Kvm {
  const driver = opts.driver === 'auto' ? (probeNativeKvm(opts.device).available ? 'native' : 'sim') : opts.driver;
  if (driver === 'native') return openNativeKvm(opts.device);
  return openSimKvm({ profile: opts.profile ?? '6.18', swProtectedVm: opts.swProtectedVm ?? true });
}
