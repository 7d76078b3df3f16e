import { release } from 'node:os';
import { GuestMemError } from '@guestmem/core';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  GUEST_MEMFD_FLAG_NO_DIRECT_MAP,
  KVM_CAP_GUEST_MEMFD,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_MEMORY_FAULT_INFO,
  KVM_CAP_MULTI_ADDRESS_SPACE,
  KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_PRE_FAULT_MEMORY,
  KVM_CAP_USER_MEMORY2,
  KVM_CAP_VM_TYPES,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_ES_VM,
  KVM_X86_SEV_VM,
  KVM_X86_SNP_VM,
  KVM_X86_SW_PROTECTED_VM,
  KVM_X86_TDX_VM,
} from '../uapi/constants.js';
import { NativeKvm } from './driver.js';

/** Where the native driver finds KVM: a device path (default `/dev/kvm`) or an fd already open on it. */
export type KvmDevice = string | number;

/** What {@link probeNativeKvm} found. */
export interface NativeKvmProbe {
  /** True when the device opens and `KVM_CAP_GUEST_MEMFD` answers 1. */
  readonly available: boolean;
  /** Why it is (un)available, ready for a skip message. */
  readonly reason: string;
  /** What to do about it, where one action helps (EACCES, ENOENT, ENOTTY, no guest_memfd). */
  readonly hint?: string;
  /** The errno code of the failed open or ioctl, when that is why it is unavailable. */
  readonly code?: string;
  /** The device probed: its path, or `fd <n>`. */
  readonly device: string;
  /** The memory-related capabilities of the system fd, by name (empty when the device did not open). */
  readonly caps: Readonly<Record<string, number>>;
  /** `KVM_CAP_VM_TYPES` decoded: the names of the VM types this kernel creates. */
  readonly vmTypes: readonly string[];
  /** `KVM_CAP_GUEST_MEMFD_FLAGS` decoded: the names of the guest_memfd flags this kernel accepts. */
  readonly guestMemfdFlags: readonly string[];
  /** `uname -r`. */
  readonly kernel: string;
  /** The error `open("/dev/kvm")` (or loading libc) failed with, when it did. */
  readonly error?: unknown;
}

const CAPS = {
  KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_MULTI_ADDRESS_SPACE,
  KVM_CAP_USER_MEMORY2,
  KVM_CAP_MEMORY_FAULT_INFO,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_GUEST_MEMFD,
  KVM_CAP_VM_TYPES,
  KVM_CAP_PRE_FAULT_MEMORY,
  KVM_CAP_GUEST_MEMFD_FLAGS,
} as const;

const VM_TYPES: ReadonlyArray<readonly [string, number]> = [
  ['KVM_X86_DEFAULT_VM', KVM_X86_DEFAULT_VM],
  ['KVM_X86_SW_PROTECTED_VM', KVM_X86_SW_PROTECTED_VM],
  ['KVM_X86_SEV_VM', KVM_X86_SEV_VM],
  ['KVM_X86_SEV_ES_VM', KVM_X86_SEV_ES_VM],
  ['KVM_X86_SNP_VM', KVM_X86_SNP_VM],
  ['KVM_X86_TDX_VM', KVM_X86_TDX_VM],
];

const GMEM_FLAGS: ReadonlyArray<readonly [string, bigint]> = [
  ['GUEST_MEMFD_FLAG_MMAP', GUEST_MEMFD_FLAG_MMAP],
  ['GUEST_MEMFD_FLAG_INIT_SHARED', GUEST_MEMFD_FLAG_INIT_SHARED],
  ['GUEST_MEMFD_FLAG_NO_DIRECT_MAP', GUEST_MEMFD_FLAG_NO_DIRECT_MAP],
];

/** The names of the `KVM_CAP_VM_TYPES` bits set in `mask` (unknown bits as `type <n>`). */
export function decodeVmTypes(mask: number): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 31; bit++) {
    if (!(mask & (1 << bit))) continue;
    out.push(VM_TYPES.find(([, t]) => t === bit)?.[0] ?? `type ${bit}`);
  }
  return out;
}

/** The names of the guest_memfd flag bits set in `mask` (unknown bits as `bit <n>`). */
export function decodeGuestMemfdFlags(mask: number): string[] {
  const out: string[] = [];
  const m = BigInt(mask >>> 0);
  for (let bit = 0n; bit < 32n; bit++) {
    if (!(m & (1n << bit))) continue;
    out.push(GMEM_FLAGS.find(([, f]) => f === 1n << bit)?.[0] ?? `bit ${bit}`);
  }
  return out;
}

/** A hint for a failed open/ioctl of the KVM device, by errno code. */
export function kvmDeviceHint(code: string, device: string): string | undefined {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return `${device} is not accessible to this user: add the user to the 'kvm' group (sudo usermod -aG kvm "$USER", then log in again) or grant access to the device`;
    case 'ENOENT':
      return `${device} does not exist: load a KVM module (kvm_intel, kvm_amd or kvm_pvm), enable virtualization in the firmware, or enable nested virtualization for this VM`;
    case 'ENOTTY':
      return `${device} does not answer KVM ioctls: it is not a KVM device`;
    case 'EBADF':
      return `${device} is not an open file descriptor`;
    default:
      return undefined;
  }
}

const cached = new Map<string, NativeKvmProbe>();

/** Opens the device: a path with open(2), an fd by duplicating it (the caller keeps its own fd). */
export function openNativeKvm(device: KvmDevice = '/dev/kvm'): NativeKvm {
  return typeof device === 'number' ? NativeKvm.fromFd(device) : NativeKvm.open(device);
}

/**
 * Probes the real KVM (a path's answer is cached per process; an fd is probed every time): opens the
 * device, reads the memory-related capabilities of the system fd, and closes it again. Never throws.
 */
export function probeNativeKvm(device: KvmDevice = '/dev/kvm'): NativeKvmProbe {
  const key = typeof device === 'number' ? undefined : device;
  const hit = key === undefined ? undefined : cached.get(key);
  if (hit) return hit;
  const result = probe(device);
  if (key !== undefined) cached.set(key, result);
  return result;
}

function probe(device: KvmDevice): NativeKvmProbe {
  const kernel = release();
  const name = typeof device === 'number' ? `fd ${device}` : device;
  const none = { device: name, caps: {}, vmTypes: [], guestMemfdFlags: [], kernel };
  let kvm: NativeKvm;
  try {
    kvm = openNativeKvm(device);
  } catch (e) {
    if (!GuestMemError.is(e)) {
      return {
        ...none,
        available: false,
        reason: `koffi/libc unavailable: ${e instanceof Error ? e.message : String(e)} (kernel ${kernel})`,
        error: e,
      };
    }
    const hint = kvmDeviceHint(e.code, name);
    return {
      ...none,
      available: false,
      code: e.code,
      reason: `${typeof device === 'number' ? 'using' : 'open'}(${name}) failed with ${e.code} (kernel ${kernel})`,
      ...(hint ? { hint } : {}),
      error: e,
    };
  }
  try {
    const caps: Record<string, number> = {};
    for (const [capName, cap] of Object.entries(CAPS)) caps[capName] = kvm.checkExtension(cap);
    const vmTypes = decodeVmTypes(caps.KVM_CAP_VM_TYPES!);
    const guestMemfdFlags = decodeGuestMemfdFlags(caps.KVM_CAP_GUEST_MEMFD_FLAGS!);
    const available = caps.KVM_CAP_GUEST_MEMFD === 1;
    if (available) {
      const reason = `native KVM with guest_memfd on ${name} (kernel ${kernel}, flags ${guestMemfdFlags.join('|') || 'none'})`;
      return { available, reason, device: name, caps, vmTypes, guestMemfdFlags, kernel };
    }
    return {
      available,
      reason: `${name} has no guest_memfd (KVM_CAP_GUEST_MEMFD=${caps.KVM_CAP_GUEST_MEMFD}, kernel ${kernel})`,
      hint: 'guest_memfd needs Linux 6.8 or later built with guest_memfd support (CONFIG_KVM_SW_PROTECTED_VM or a confidential-VM type)',
      device: name,
      caps,
      vmTypes,
      guestMemfdFlags,
      kernel,
    };
  } catch (e) {
    const code = GuestMemError.is(e) ? e.code : 'EIO';
    const hint = kvmDeviceHint(code, name);
    return {
      ...none,
      available: false,
      code,
      reason: `KVM_CHECK_EXTENSION on ${name} failed with ${code} (kernel ${kernel})`,
      ...(hint ? { hint } : {}),
    };
  } finally {
    kvm.close();
  }
}
