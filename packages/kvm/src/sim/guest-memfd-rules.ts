/**
 * The rules of `KVM_CREATE_GUEST_MEMFD` (`kvm_gmem_create`, docs/kvm-guest-memfd.md §2.2) as a pure judgement in the
 * kernel's check order. The simulated VM refuses with it (`vm.ts`); the native driver names it in its
 * diagnosis of the real kernel's refusal (`native/diagnosis.ts`).
 */
import type { GuestMemErrorCode } from '@guestmem/core';

const PAGE_MASK = 4095n;

/** The rules of `KVM_CREATE_GUEST_MEMFD`. */
export type GuestMemfdCreateRule = 'guest-memfd-flags' | 'guest-memfd-size';

export interface GuestMemfdCreateRefusal {
  readonly rule: GuestMemfdCreateRule;
  readonly code: Extract<GuestMemErrorCode, 'EINVAL'>;
  readonly detail: string;
}

/** `kvm_gmem_create`: flags first, then size; `reserved[]` is not checked (R1/R2). */
export function judgeCreateGuestMemfd(supportedFlags: bigint, size: bigint, flags: bigint): GuestMemfdCreateRefusal | undefined {
  if (flags & ~supportedFlags) return { rule: 'guest-memfd-flags', code: 'EINVAL', detail: `unsupported flags 0x${flags.toString(16)}` };
  if (BigInt.asIntN(64, size) <= 0n || size & PAGE_MASK)
    return { rule: 'guest-memfd-size', code: 'EINVAL', detail: `size ${size} must be > 0 and page-aligned` };
  return undefined;
}
