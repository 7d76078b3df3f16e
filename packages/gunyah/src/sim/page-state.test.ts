import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pageTransition, reclaimFolio, hostMayTouch, type PageEvent, type PageState } from './page-state.js';

const STATES: PageState[] = ['ABSENT', 'HOST', 'PROVIDED_SHARED', 'PROVIDED_LENT', 'LENT_LOCKED'];
const EVENTS: PageEvent[] = [
  { type: 'allocate' },
  { type: 'provide', lend: true },
  { type: 'provide', lend: false },
  { type: 'guestAccess' },
  { type: 'relinquish' },
  { type: 'reclaim' },
  { type: 'punch' },
];

describe('per-page state machine (docs/gunyah-v17.md §2.9)', () => {
  it('table of transitions', () => {
    expect(pageTransition('ABSENT', { type: 'allocate' })).toEqual({ ok: true, state: 'HOST' });
    expect(pageTransition('HOST', { type: 'provide', lend: false })).toEqual({ ok: true, state: 'PROVIDED_SHARED' });
    // providing on a guest fault is an access: lent pages come out locked
    expect(pageTransition('HOST', { type: 'provide', lend: true })).toEqual({ ok: true, state: 'LENT_LOCKED' });
    expect(pageTransition('LENT_LOCKED', { type: 'reclaim' })).toEqual({ ok: false, reason: 'locked' });
    expect(pageTransition('LENT_LOCKED', { type: 'relinquish' })).toEqual({ ok: true, state: 'PROVIDED_LENT' });
    expect(pageTransition('PROVIDED_LENT', { type: 'reclaim' })).toEqual({ ok: true, state: 'HOST' });
    expect(pageTransition('PROVIDED_LENT', { type: 'guestAccess' })).toEqual({ ok: true, state: 'LENT_LOCKED' });
    expect(pageTransition('PROVIDED_SHARED', { type: 'reclaim' })).toEqual({ ok: true, state: 'HOST' });
    expect(pageTransition('PROVIDED_SHARED', { type: 'punch' })).toEqual({ ok: false, reason: 'provided' });
    expect(pageTransition('HOST', { type: 'punch' })).toEqual({ ok: true, state: 'ABSENT' });
  });
  it('a folio is reclaimable only when every page is', () => {
    const huge: PageState[] = Array(512).fill('PROVIDED_LENT');
    huge[300] = 'LENT_LOCKED';
    expect(reclaimFolio(huge)).toEqual({ ok: false, reason: 'locked' });
    huge[300] = 'PROVIDED_LENT';
    const r = reclaimFolio(huge);
    expect(r.ok && r.states.every((s) => s === 'HOST')).toBe(true);
  });
  it('invariants over random event sequences: host never touches lent; shared always reclaimable', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...EVENTS), { maxLength: 40 }), (evs) => {
        let s: PageState = 'ABSENT';
        for (const ev of evs) {
          const t = pageTransition(s, ev);
          if (s === 'PROVIDED_SHARED' && ev.type === 'reclaim') expect(t.ok).toBe(true);
          if (t.ok) s = t.state;
          expect(STATES).toContain(s);
          if (s === 'PROVIDED_LENT' || s === 'LENT_LOCKED') expect(hostMayTouch(s)).toBe(false);
        }
        // from any state, relinquish (if lent) + reclaim + punch reaches ABSENT
        for (const ev of [{ type: 'relinquish' }, { type: 'reclaim' }, { type: 'punch' }] as PageEvent[]) {
          const t = pageTransition(s, ev);
          if (t.ok) s = t.state;
        }
        expect(s).toBe('ABSENT');
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 1000) },
    );
  });
});
