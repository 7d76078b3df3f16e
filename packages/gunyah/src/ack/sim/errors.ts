import { gmErr, type GuestMemError, type GuestMemErrorCode } from '@guestmem/core';

/** Backend id of everything the ACK driver raises (COORD: one id per backend). */
export const ACK_BACKEND = 'gunyah-ack-sim';

export const ackErr = (
  code: GuestMemErrorCode,
  op: string,
  syscall: string | undefined,
  detail?: string,
  info?: Record<string, unknown>,
): GuestMemError => gmErr(code, op, ACK_BACKEND, detail, { syscall, info });

/**
 * Errno of a refused demand-page reclaim. `__gunyah_vm_reclaim_folio_locked` returns the
 * hypercall error of `memextent_donate` through `gunyah_error_remap`, where BUSY, IDLE and
 * CSPACE_FULL become EBUSY (docs/gunyah-ack.md §6.3, K7); K13 reports EBUSY from every RECLAIM_REGION on a
 * 6.12 device. That the hypervisor answers BUSY for a page the guest has accepted and not
 * relinquished is an inference (the hypervisor side is not public).
 */
export const ACK_RECLAIM_REFUSED: GuestMemErrorCode = 'EBUSY';
