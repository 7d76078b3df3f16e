import { GuestMemError, errnoCode, errnoName } from '@guestmem/core';

/** The backend id of every error the native driver raises. */
export const NATIVE_BACKEND = 'kvm';

/**
 * A GuestMemError for a failed syscall, from the errno libc reported. An errno outside core's
 * table (none is expected from these calls) is reported as EIO with the raw number in `info.errno`.
 * `detail` is the driver's own reading of the failure (e.g. a diagnosis); the errno is the kernel's.
 */
export function syscallError(errno: number, op: string, syscall: string, info?: Record<string, unknown>, detail?: string): GuestMemError {
  const code = errnoCode(errno);
  return new GuestMemError({
    code: code ?? 'EIO',
    op,
    backend: NATIVE_BACKEND,
    syscall,
    detail: code ? detail : `unexpected ${errnoName(errno)}`,
    info: { ...info, ...(code ? {} : { errno }) },
  });
}
