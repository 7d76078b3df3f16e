import { release } from 'node:os';
import { GuestMemError } from '@guestmem/core';
import {
  KVM_CAP_GUEST_MEMFD,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_MEMORY_FAULT_INFO,
  KVM_CAP_PRE_FAULT_MEMORY,
  KVM_CAP_USER_MEMORY2,
  KVM_CAP_VM_TYPES,
} from '../uapi/constants.js';
import { NativeKvm } from './driver.js';

/** What {@link probeNativeKvm} found. */
export interface NativeKvmProbe {
  /** True when `/dev/kvm` opens and `KVM_CAP_GUEST_MEMFD` answers 1. */
  readonly available: boolean;
  /** Why it is (un)available, ready for a skip message. */
  readonly reason: string;
  /** The guest_memfd-related capabilities of the system fd, by name (empty when /dev/kvm did not open). */
  readonly caps: Readonly<Record<string, number>>;
  /** `uname -r`. */
  readonly kernel: string;
  /** The error `open("/dev/kvm")` (or loading libc) failed with, when it did. */
  readonly error?: unknown;
}

const CAPS = {
  KVM_CAP_USER_MEMORY2,
  KVM_CAP_MEMORY_FAULT_INFO,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_GUEST_MEMFD,
  KVM_CAP_VM_TYPES,
  KVM_CAP_PRE_FAULT_MEMORY,
  KVM_CAP_GUEST_MEMFD_FLAGS,
} as const;

let cached: NativeKvmProbe | undefined;

/**
 * Probes the real KVM once per process (the answer is cached): opens `/dev/kvm`, reads the
 * guest_memfd capabilities of the system fd, and closes it again. Never throws.
 */
export function probeNativeKvm(): NativeKvmProbe {
  if (cached) return cached;
  const kernel = release();
  let kvm: NativeKvm;
  try {
    kvm = NativeKvm.open();
  } catch (e) {
    const why = GuestMemError.is(e) ? `open(/dev/kvm) failed with ${e.code}` : `koffi/libc unavailable: ${String(e)}`;
    return (cached = { available: false, reason: `${why} (kernel ${kernel})`, caps: {}, kernel, error: e });
  }
  try {
    const caps: Record<string, number> = {};
    for (const [name, cap] of Object.entries(CAPS)) caps[name] = kvm.checkExtension(cap);
    const available = caps.KVM_CAP_GUEST_MEMFD === 1;
    const reason = available
      ? `native KVM with guest_memfd (kernel ${kernel}, GUEST_MEMFD_FLAGS=${caps.KVM_CAP_GUEST_MEMFD_FLAGS})`
      : `/dev/kvm has no guest_memfd (KVM_CAP_GUEST_MEMFD=${caps.KVM_CAP_GUEST_MEMFD}, kernel ${kernel})`;
    return (cached = { available, reason, caps, kernel });
  } finally {
    kvm.close();
  }
}
