import { GuestMemError, type GuestMemErrorCode } from '@guestmem/core';

/** The backend id of every error the simulated kernel raises. */
export const SIM_BACKEND = 'kvm-sim';

/**
 * The error a failed simulated syscall throws: the kernel's errno as `code`, `syscall` spelled exactly
 * as the native driver spells it (`'ioctl(KVM_SET_USER_MEMORY_REGION2)'`, `'fallocate'`…), so both
 * drivers' failures compare equal.
 */
export function sysErr(
  code: GuestMemErrorCode,
  op: string,
  syscall: string | undefined,
  detail: string,
  info?: Record<string, unknown>,
): GuestMemError {
  return new GuestMemError({ code, op, backend: SIM_BACKEND, syscall, detail, info });
}
