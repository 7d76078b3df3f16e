import { GuestMemError, gmErr, type GuestMemErrorCode } from '@guestmem/core';

/** Backend id of every error this package raises. */
export const BACKEND = 'gunyah-sim';

/**
 * The errno a refused reclaim surfaces as. Punch uses `invalidate_inode_pages2_range`, which
 * reports a folio it could not release as EBUSY; UNMAP and mmap return the hypercall error
 * remapped by `gunyah_error_remap`, whose value for "guest holds the page" is not public — we use
 * EBUSY for all three (docs/gunyah-v17.md §2.9: inference).
 */
export const RECLAIM_REFUSED: GuestMemErrorCode = 'EBUSY';

export const err = (
  code: GuestMemErrorCode,
  op: string,
  syscall: string | undefined,
  detail?: string,
  info?: Record<string, unknown>,
): GuestMemError => gmErr(code, op, BACKEND, detail, { syscall, info });

/** Runs `fn`; a GuestMemError raised by core without a syscall is re-raised naming `syscall`. */
export function withSyscall<T>(op: string, syscall: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof GuestMemError && e.syscall === undefined && e.code !== 'SIGBUS') {
      throw new GuestMemError({ code: e.code, op, backend: BACKEND, syscall, detail: e.message, info: e.info, cause: e });
    }
    throw e;
  }
}
