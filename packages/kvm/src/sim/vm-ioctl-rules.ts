/**
 * The rules of the two other refusable VM ioctls, as pure judgements in the kernel's check order:
 * `KVM_CREATE_GUEST_MEMFD` (`kvm_gmem_create`, research §2.2) and `KVM_SET_MEMORY_ATTRIBUTES`
 * (`kvm_vm_ioctl_set_mem_attributes`, research §1.4). The simulated kernel refuses with them
 * (`vm.ts`, `memory-attributes.ts`); the native driver names them in its diagnosis of the real
 * kernel's refusal (`native/diagnosis.ts`), like the memslot rules of `memslot-rules.ts`.
 */
import type { GuestMemErrorCode } from '@guestmem/core';

const PAGE_MASK = 4095n;
const U64_LIMIT = 1n << 64n;

/** The rules of `KVM_CREATE_GUEST_MEMFD` and `KVM_SET_MEMORY_ATTRIBUTES`. */
export type VmIoctlRule =
  | 'guest-memfd-flags'
  | 'guest-memfd-size'
  | 'memory-attributes-not-built'
  | 'memory-attributes-flags'
  | 'memory-attributes-unsupported'
  | 'memory-attributes-range'
  | 'memory-attributes-alignment';

export interface VmIoctlRefusal {
  readonly rule: VmIoctlRule;
  readonly code: Extract<GuestMemErrorCode, 'EINVAL' | 'ENOTTY'>;
  readonly detail: string;
}

/** `kvm_gmem_create`: flags first, then size; `reserved[]` is not checked (R1/R2). */
export function judgeCreateGuestMemfd(supportedFlags: bigint, size: bigint, flags: bigint): VmIoctlRefusal | undefined {
  if (flags & ~supportedFlags) return { rule: 'guest-memfd-flags', code: 'EINVAL', detail: `unsupported flags 0x${flags.toString(16)}` };
  if (BigInt.asIntN(64, size) <= 0n || size & PAGE_MASK) return { rule: 'guest-memfd-size', code: 'EINVAL', detail: `size ${size} must be > 0 and page-aligned` };
  return undefined;
}

/**
 * `KVM_SET_MEMORY_ATTRIBUTES`: ENOTTY when the kernel lacks `CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES`;
 * then flags, unsupported attributes, size 0 / wrap, alignment (§1.4 order).
 */
export function judgeMemoryAttributes(
  built: boolean,
  supportedAttributes: bigint,
  a: { readonly address: bigint; readonly size: bigint; readonly attributes: bigint; readonly flags: bigint },
): VmIoctlRefusal | undefined {
  if (!built) return { rule: 'memory-attributes-not-built', code: 'ENOTTY', detail: 'CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is off' };
  if (a.flags !== 0n) return { rule: 'memory-attributes-flags', code: 'EINVAL', detail: `flags 0x${a.flags.toString(16)} must be 0` };
  if (a.attributes & ~supportedAttributes) {
    return { rule: 'memory-attributes-unsupported', code: 'EINVAL', detail: `attributes 0x${a.attributes.toString(16)} are not supported by this VM` };
  }
  if (a.size === 0n || a.address + a.size >= U64_LIMIT) return { rule: 'memory-attributes-range', code: 'EINVAL', detail: 'size is 0 or address + size wraps' };
  if ((a.address | a.size) & PAGE_MASK) return { rule: 'memory-attributes-alignment', code: 'EINVAL', detail: 'address and size must be page-aligned' };
  return undefined;
}
