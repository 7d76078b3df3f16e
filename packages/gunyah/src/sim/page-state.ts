/**
 * The per-page state machine of a Gunyah guest-memory file (docs/gunyah-v17.md §2.9), as pure logic.
 *
 * | state           | meaning                                                                  |
 * |-----------------|--------------------------------------------------------------------------|
 * | ABSENT          | no folio yet                                                             |
 * | HOST            | folio exists (zeroed once on creation); the host may map it              |
 * | PROVIDED_SHARED | in the guest's stage 2 (R/RW) and still in host mappings                 |
 * | PROVIDED_LENT   | in the guest's stage 2 (RX/RWX); out of the host direct map; no host VMA |
 * | LENT_LOCKED     | lent and touched by the guest: the hypervisor refuses reclaim until the  |
 * |                 | guest relinquishes it                                                    |
 *
 * The simulation (`guest-mem.ts`) keeps one state per 4 KiB page and applies these
 * transitions to whole folios (providing and reclaim are per folio; relinquish is per page, the
 * hypervisor's granule).
 */
export type PageState = 'ABSENT' | 'HOST' | 'PROVIDED_SHARED' | 'PROVIDED_LENT' | 'LENT_LOCKED';

export type PageEvent =
  /** fallocate, host fault, guest fault or DTB parcel construction creates the folio (zeroed). */
  | { type: 'allocate' }
  /**
   * donate + map into stage 2. From a guest fault (`access` true, the default) a lent page is
   * locked at once; the DTB parcel is provided at VM start before the guest ran (`access` false).
   */
  | { type: 'provide'; lend: boolean; access?: boolean }
  /** the guest touches a provided page (a fault that provides it is itself an access). */
  | { type: 'guestAccess' }
  /** the guest relinquishes a lent page (test-VMM hypercall 0x8069); sanitize is data-only. */
  | { type: 'relinquish' }
  /** UNMAP, punch, host mmap/fault (lent only), VM teardown. */
  | { type: 'reclaim' }
  /** punch-hole drops the folio; only a reclaimed (HOST) page can be dropped. */
  | { type: 'punch' };

export type PageTransition = { ok: true; state: PageState } | { ok: false; reason: PageRefusal };

/**
 * Why a transition is refused:
 * - `locked`: reclaim of a page the guest touched and has not relinquished (hypervisor refuses);
 * - `provided`: punch of a page still provided to a VM (reclaim it first);
 * - `invalid`: the event makes no sense in this state (a simulation bug if it ever surfaces).
 */
export type PageRefusal = 'locked' | 'provided' | 'invalid';

const ok = (state: PageState): PageTransition => ({ ok: true, state });
const no = (reason: PageRefusal): PageTransition => ({ ok: false, reason });

/** Applies one event to one page. Pure; total over (state, event). */
export function pageTransition(state: PageState, ev: PageEvent): PageTransition {
  switch (ev.type) {
    case 'allocate':
      return state === 'ABSENT' ? ok('HOST') : ok(state); // allocate of an existing folio is a lookup
    case 'provide':
      if (state === 'ABSENT' || state === 'HOST')
        return ok(!ev.lend ? 'PROVIDED_SHARED' : ev.access === false ? 'PROVIDED_LENT' : 'LENT_LOCKED');
      return no('invalid'); // already provided: the driver sees -EAGAIN and treats it as success
    case 'guestAccess':
      if (state === 'PROVIDED_LENT') return ok('LENT_LOCKED'); // touching a relinquished page re-locks it
      if (state === 'PROVIDED_SHARED' || state === 'LENT_LOCKED') return ok(state);
      return no('invalid');
    case 'relinquish':
      if (state === 'LENT_LOCKED' || state === 'PROVIDED_LENT') return ok('PROVIDED_LENT');
      return no('invalid');
    case 'reclaim':
      if (state === 'LENT_LOCKED') return no('locked');
      if (state === 'PROVIDED_SHARED' || state === 'PROVIDED_LENT') return ok('HOST');
      return ok(state); // nothing provided: reclaim is a no-op
    case 'punch':
      if (state === 'HOST' || state === 'ABSENT') return ok('ABSENT');
      return no('provided');
  }
}

/** True when the host may read or write the page's data without going through reclaim. */
export const hostMayTouch = (s: PageState): boolean => s === 'ABSENT' || s === 'HOST' || s === 'PROVIDED_SHARED';
/** True when the page is in some VM's stage 2. */
export const isProvided = (s: PageState): boolean => s === 'PROVIDED_SHARED' || s === 'PROVIDED_LENT' || s === 'LENT_LOCKED';
export const isLent = (s: PageState): boolean => s === 'PROVIDED_LENT' || s === 'LENT_LOCKED';

/**
 * Folio-level reclaim: a folio comes back only when *every* page of it can (a 2 MiB folio with one
 * locked 4 KiB page stays provided — `partial_page_reclaim`). Returns the new states or the refusal.
 */
export function reclaimFolio(states: readonly PageState[]): { ok: true; states: PageState[] } | { ok: false; reason: PageRefusal } {
  const out: PageState[] = [];
  for (const s of states) {
    const t = pageTransition(s, { type: 'reclaim' });
    if (!t.ok) return t;
    out.push(t.state);
  }
  return { ok: true, states: out };
}
