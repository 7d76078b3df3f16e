/**
 * v17 `SimVm.fastAccess` / `SimVcpu.fast` must give the answers of the full `step` path, at the sim
 * level (the `GuestAccess` objects `SimVcpu.read/write` return, and the vCPU state after).
 * Reference: the same sequence with `fastAccess` disabled on the VM instance. Also `providedState`
 * (a state exactly while the folio is provided) and `providedIn` (the page-by-page semantics it had,
 * copied below) are checked after every step. Regression from the outside review: the shortcut once
 * answered with an object of another shape than the full path's.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemError } from '@guestmem/core';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_FLAGS_V17 as F } from '../uapi/index.js';
import type { ProvidedFolio, SimBinding, SimGuestMem } from './guest-mem.js';
import { DTB_GPA, HoldingCell, LEND_RW, SHARE_RW } from './test-helpers.js';
import type { SimVm } from './vm.js';

const P = 4096;
const GPA = 0x40_0000; // 2 MiB-aligned (huge files)
const RO_LEND = F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ;

type Op =
  | { t: 'read'; page: number; off: number; len: number }
  | { t: 'write'; page: number; off: number; len: number; byte: number }
  | { t: 'relinquish'; page: number; n: number; sanitize: boolean }
  | { t: 'punch'; page: number; n: number }
  | { t: 'poison'; page: number }
  | { t: 'unbind' }
  | { t: 'rebind'; flags: 'lend' | 'share' | 'ro' }
  | { t: 'stop' }
  | { t: 'closeMem' }
  /** The host takes back provided folios, keeping the binding (a later guest access provides them again). */
  | { t: 'reclaim'; page: number; n: number };

/** the replaced implementation's providedIn (page by page, dedup). */
function oldProvidedIn(mem: SimGuestMem, first: number, end: number, binding?: SimBinding): ProvidedFolio[] {
  const out: ProvidedFolio[] = [];
  const provided = mem.provided;
  if (end - first > provided.size * 4) {
    for (const pf of provided.values()) {
      if (pf.head < end && pf.head + pf.nr > first && (!binding || pf.binding === binding)) out.push(pf);
    }
  } else {
    for (let i = first; i < end; i++) {
      const pf = mem.providedAt(i);
      if (pf && !out.includes(pf) && (!binding || pf.binding === binding)) out.push(pf);
    }
  }
  return out;
}

const norm = (r: unknown): unknown => {
  if (!r || typeof r !== 'object') return r;
  const o = { ...(r as Record<string, unknown>) };
  if ('resume' in o) o.resume = typeof o.resume;
  if (o.run instanceof Uint8Array) o.run = [...o.run];
  if (o.data instanceof Uint8Array) o.data = [...o.data];
  return o;
};

function run(ops: Op[], huge: boolean, fast: boolean): unknown[] {
  const cell = new HoldingCell();
  const vm = cell.vm as SimVm;
  if (!fast) (vm as unknown as { fastAccess: unknown }).fastAccess = () => undefined;
  const size = huge ? 4 * 1024 * 1024 : 8 * P;
  const pages = size / P;
  const mem = cell.gh.createGuestMem({ flags: huge ? 2n : 0n, size }) as unknown as SimGuestMem;
  let flags = LEND_RW;
  const map = (f: number, unmap = false) =>
    vm.mapMem({ guestAddr: GPA, flags: f | (unmap ? F.GUNYAH_MEM_UNMAP : 0), guestMemFd: mem.fd, offset: 0, size });
  map(flags);
  const cpu = cell.cpu;
  const out: unknown[] = [];
  const attempt = (f: () => unknown) => {
    try {
      out.push(norm(f()));
    } catch (e) {
      out.push(GuestMemError.is(e) ? { code: e.code } : { thrown: String(e) });
    }
  };
  const check = () => {
    // providedState ⇔ providedAt; providedIn = the replaced implementation's
    const st: unknown[] = [];
    for (let i = 0; i < pages; i += huge ? 97 : 1) {
      const s = mem.providedState(i);
      expect([i, s !== undefined]).toEqual([i, mem.providedAt(i) !== undefined]);
      if (s !== undefined) expect(s).toBe(mem.pageState(i));
      st.push(s ?? mem.pageState(i));
    }
    const b = vm.bindingAt(GPA / P);
    for (const [lo, hi] of [
      [0, pages],
      [1, 3],
      [3, pages - 1],
      [pages - 1, pages],
      [5, 5],
    ] as const) {
      expect(mem.providedIn(lo, hi)).toEqual(oldProvidedIn(mem, lo, hi));
      if (b) expect(mem.providedIn(lo, hi, b)).toEqual(oldProvidedIn(mem, lo, hi, b));
    }
    out.push(st);
  };
  for (const o of ops) {
    const gpa = GPA + (o as { page?: number }).page! * P + ((o as { off?: number }).off ?? 0);
    switch (o.t) {
      case 'read':
        attempt(() => cpu.read(gpa, o.len));
        break;
      case 'write':
        attempt(() => cpu.write(gpa, new Uint8Array(o.len).fill(o.byte)));
        break;
      case 'relinquish':
        attempt(() => cpu.relinquish(GPA + o.page * P, o.n, { sanitize: o.sanitize }));
        break;
      case 'punch':
        attempt(() => mem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, o.page * P, o.n * P));
        break;
      case 'poison':
        attempt(() => mem.file.markPoisoned(o.page));
        break;
      case 'unbind':
        attempt(() => map(flags, true));
        break;
      case 'rebind':
        flags = o.flags === 'lend' ? LEND_RW : o.flags === 'share' ? SHARE_RW : RO_LEND;
        attempt(() => map(flags));
        break;
      case 'stop':
        attempt(() => cpu.systemOff());
        break;
      case 'closeMem':
        attempt(() => mem.close());
        break;
      case 'reclaim':
        attempt(() => mem.reclaim(o.page, Math.min(o.page + o.n, pages), 'reclaim', undefined)?.code ?? 'ok');
        break;
    }
    if (mem.isOpen) check();
  }
  for (const f of [() => vm.close(), () => mem.isOpen && mem.close(), () => cell.dtbMem.close()])
    try {
      f();
    } catch {
      /* already closed */
    }
  return out;
}

const op = (pages: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ t: fc.constant('read' as const), page: fc.nat(pages - 1), off: fc.nat(P - 1), len: fc.nat(20) }) },
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant('write' as const),
        page: fc.nat(pages - 1),
        off: fc.nat(P - 1),
        len: fc.nat(20),
        byte: fc.nat(255),
      }),
    },
    fc.record({
      t: fc.constant('relinquish' as const),
      page: fc.nat(pages - 1),
      n: fc.integer({ min: 1, max: 4 }),
      sanitize: fc.boolean(),
    }),
    fc.record({ t: fc.constant('punch' as const), page: fc.nat(pages - 1), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ t: fc.constant('poison' as const), page: fc.nat(pages - 1) }),
    fc.constant({ t: 'unbind' as const }),
    fc.record({ t: fc.constant('rebind' as const), flags: fc.constantFrom<'lend' | 'share' | 'ro'>('lend', 'share', 'ro') }),
    fc.constant({ t: 'stop' as const }),
    fc.constant({ t: 'closeMem' as const }),
    fc.record({ t: fc.constant('reclaim' as const), page: fc.nat(pages - 1), n: fc.integer({ min: 1, max: 4 }) }),
  );

describe('v17 fastAccess = full step path (sim level)', () => {
  it('minimal: a repeated read answers with the same object shape as the full path', () => {
    const ops: Op[] = [
      { t: 'read', page: 0, off: 0, len: 4 }, // full path (provides the page)
      { t: 'read', page: 0, off: 0, len: 4 }, // fast path
    ];
    const full = run(ops, false, false);
    const fast = run(ops, false, true);
    // The shortcut once answered { status: 'done', ok: true, data } where the full path gives { status: 'done', data }.
    expect(fast[2]).toEqual(full[2]);
  });

  it('a page the host reclaimed (binding kept) is provided again by the next access, not served by the shortcut', () => {
    const ops: Op[] = [
      { t: 'unbind' },
      { t: 'rebind', flags: 'share' },
      { t: 'read', page: 2, off: 0, len: 8 }, // full path: provides the page
      { t: 'read', page: 2, off: 0, len: 8 }, // shortcut: remembers the page
      { t: 'reclaim', page: 2, n: 1 }, // the page is the host's again
      { t: 'read', page: 2, off: 0, len: 8 }, // must provide it again
    ];
    const fast = run(ops, false, true);
    expect(fast).toEqual(run(ops, false, false));
    // The page states after the last read: page 2 provided (shared) again.
    expect((fast.at(-1) as string[])[2]).toBe('PROVIDED_SHARED');
  });

  it('a lent page the guest relinquished is locked again by its next access, not served by the shortcut', () => {
    const ops: Op[] = [
      { t: 'read', page: 3, off: 0, len: 8 }, // full path: provides and locks the page
      { t: 'read', page: 3, off: 0, len: 8 }, // shortcut: remembers the page
      { t: 'relinquish', page: 3, n: 1, sanitize: false },
      { t: 'read', page: 3, off: 0, len: 8 }, // the guest touches it: locked again
    ];
    const fast = run(ops, false, true);
    expect(fast).toEqual(run(ops, false, false));
    expect((fast.at(-1) as string[])[3]).toBe('LENT_LOCKED');
  });

  it('property (4 KiB pages)', () => {
    fc.assert(
      fc.property(fc.array(op(8), { maxLength: 16 }), (ops) => {
        expect(run(ops, false, true)).toEqual(run(ops, false, false));
      }),
      { numRuns: 300 },
    );
  });

  it('property (2 MiB huge folios)', () => {
    fc.assert(
      fc.property(fc.array(op(1024), { maxLength: 12 }), (ops) => {
        expect(run(ops, true, true)).toEqual(run(ops, true, false));
      }),
      { numRuns: 60 },
    );
  });

  it('the harness keeps the adapter-less DTB page outside the bound range', () => {
    expect(DTB_GPA).toBeGreaterThan(BigInt(GPA + 1024 * P));
  });
});
