import type { GpaRange, Vm } from '@guestmem/core';

/**
 * What both simulated Gunyah drivers offer beyond the neutral `Vm`, so one scenario can drive the
 * hypervisor's reclaim rules on either: the host takes guest pages back, and the (simulated) guest
 * gives them up. Obtain it with {@link gunyahGuestControls}.
 */
export interface GunyahGuestControls {
  /**
   * The host reclaims the pages of `range` from the guest, keeping the bindings: v17 reclaims the
   * provided folios (what UNMAP, punch and mmap do first); ACK issues `GH_VM_RECLAIM_REGION`.
   * All-or-nothing: a lent page the guest touched and has not relinquished refuses it with EBUSY and
   * nothing is reclaimed.
   */
  reclaim(range: GpaRange): void;
  /** The simulated guest relinquishes its lent pages of `range` (test-guest hypercall 0x8069); `sanitize` zeroes them. */
  relinquish(range: GpaRange, opts?: { sanitize?: boolean }): void;
}

/** The {@link GunyahGuestControls} of a VM from `gunyah-sim` or `gunyah-ack-sim`, else undefined. */
export function gunyahGuestControls(vm: Vm): GunyahGuestControls | undefined {
  const c = vm as Partial<GunyahGuestControls>;
  return typeof c.reclaim === 'function' && typeof c.relinquish === 'function' ? (c as GunyahGuestControls) : undefined;
}
