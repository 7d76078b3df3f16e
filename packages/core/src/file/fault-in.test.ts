/**
 * The bulk fault path and its neighbours: `GuestMemFile.faultIn` = `getFolio` of each page, in
 * order (same folios, attempts, stops, errors, prepare-hook calls, zeroed reused memory);
 * `prepareMany` = `prepare` of each; `RangeStateMap.runEnd`; the `transfer` extension loop with
 * poison mid-range. Covered: small files with a huge default order and a prepare hook, ranges longer
 * than the 512-entry pending buffer, order-9 folios fallocated into an order-0 file, multiple arenas,
 * odd `first`/`end` values. Regressions from the outside review: `faultIn` on a released file threw
 * instead of returning the error; the number path of `transfer` accepted a range past 2^53 whose end
 * rounded down to the file size.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemError } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { RangeStateMap } from '../state/range-state-map.js';
import { FaultInjectingAllocator } from '../testing/fault-injecting-allocator.js';
import { GuestMemFile } from './guest-mem-file.js';

const P = 4096;

const errorOf = (e: unknown) => {
  if (e === undefined) return undefined;
  if (!GuestMemError.is(e)) return { nonGmErr: String(e) };
  return { code: e.code, op: e.op, backend: e.backend, message: e.message, info: e.info };
};

type Op =
  | { t: 'fault'; first: number; n: number }
  | { t: 'fill'; page: number; n: number; byte: number }
  | { t: 'punch'; page: number; n: number }
  | { t: 'poison'; page: number }
  | { t: 'allocate'; page: number; n: number; order: 0 | 9 };

/** `getFolio` of each page in turn, stopping at the first error: what `faultIn` promises to be. */
function faultInPageByPage(f: GuestMemFile, first: number, end: number): { stop: number; error?: unknown } {
  for (let i = first; i < end; i++) {
    try {
      f.getFolio(i);
    } catch (error) {
      return { stop: i, error };
    }
  }
  return { stop: end };
}

interface RunSetup {
  pages: number;
  failAt: number;
  limitPages: number;
  arenaMiB: number;
  /** The file's default folio order (huge files fault 2 MiB folios). */
  defaultOrder?: 0 | 9;
  /** Give the file an `ops.prepare` hook (which faultIn must call per folio, as getFolio does). */
  prepareHook?: boolean;
}

function run(s: RunSetup, ops: Op[], bulk: boolean) {
  const inner = new ArenaFolioAllocator({ arenaMiB: s.arenaMiB, ...(s.limitPages ? { limitBytes: s.limitPages * P } : {}) });
  const alloc = new FaultInjectingAllocator(inner, s.failAt ? { failAt: s.failAt } : {});
  const prepared: number[] = [];
  const f = GuestMemFile.create(
    s.pages * P,
    0,
    { backend: 'test', ...(s.prepareHook ? { prepare: (_f: unknown, index: number) => void prepared.push(index) } : {}) },
    { allocator: alloc, defaultOrder: s.defaultOrder ?? 0 },
  );
  const out: unknown[] = [];
  for (const o of ops) {
    try {
      switch (o.t) {
        case 'fault': {
          const end = o.first + o.n;
          const got = new Int32Array(Number.isSafeInteger(o.n) && o.n > 0 ? o.n : 0);
          const r = bulk ? f.faultIn(o.first, end, got) : faultInPageByPage(f, o.first, end);
          // `folios` names the folio of every page faulted in.
          if (bulk) for (let i = Math.max(o.first, 0); i < r.stop; i++) expect(got[i - o.first]).toBe(f.pageIndex.load(i));
          const idx: unknown[] = [];
          f.forEachFolio(0, s.pages, (i, folio, order) => idx.push([i, folio, order, inner.isUptodate(folio)]));
          // contents of every uptodate folio
          const sums: number[] = [];
          f.forEachFolio(0, s.pages, (_i, folio) => {
            if (inner.isUptodate(folio)) sums.push(inner.view(folio).reduce((a, b) => (a * 33 + b) >>> 0, 5));
          });
          out.push({
            stop: r.stop,
            error: errorOf(r.error),
            idx,
            sums,
            attempts: alloc.attempts,
            stats: inner.stats(),
            prepared: [...prepared],
          });
          break;
        }
        case 'fill':
          f.fill(o.page * P + 3, o.n * P, o.byte);
          out.push('fill');
          break;
        case 'punch':
          f.punchHole(o.page * P, o.n * P);
          out.push('p');
          break;
        case 'poison':
          f.markPoisoned(o.page);
          out.push('x');
          break;
        case 'allocate':
          f.allocate(o.page * P, o.n * P, { order: o.order });
          out.push('a');
          break;
      }
    } catch (e) {
      out.push(errorOf(e));
    }
  }
  f.release();
  return out;
}

describe('faultIn = getFolio of each page', () => {
  it('long ranges (> 512 pending folios), huge folios fallocated into an order-0 file, many arenas', () => {
    const PAGES = 1600;
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({ t: fc.constant('fault' as const), first: fc.integer({ min: -1, max: PAGES }), n: fc.nat(PAGES + 2) }),
      },
      fc.record({
        t: fc.constant('fill' as const),
        page: fc.nat(PAGES - 2),
        n: fc.integer({ min: 1, max: 40 }).map((n) => n),
        byte: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ t: fc.constant('punch' as const), page: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 700 }) }),
      fc.record({ t: fc.constant('poison' as const), page: fc.nat(PAGES - 1) }),
      fc.record({
        t: fc.constant('allocate' as const),
        page: fc.nat(Math.floor(PAGES / 512) - 1).map((b) => b * 512),
        n: fc.constantFrom(1, 7, 512, 1024),
        order: fc.constantFrom<0 | 9>(0, 9),
      }),
    );
    const setup = fc.record({
      pages: fc.constant(PAGES),
      failAt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1200 })),
      limitPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2200 })),
      arenaMiB: fc.constantFrom(2, 4, 64),
    });
    fc.assert(
      fc.property(setup, fc.array(op, { maxLength: 8 }), (s, ops) => {
        // clip fills to the file
        const ok = ops.map((o) => (o.t === 'fill' ? { ...o, n: Math.min(o.n, PAGES - o.page - 1) } : o));
        expect(run(s, ok, true)).toEqual(run(s, ok, false));
      }),
      { numRuns: 50 },
    );
  });

  it('small files: huge default order, a prepare hook, injected failures and limits', () => {
    const PAGES = 1024;
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({ t: fc.constant('fault' as const), first: fc.integer({ min: -2, max: PAGES + 2 }), n: fc.nat(600) }),
      },
      fc.record({
        t: fc.constant('fill' as const),
        page: fc.nat(PAGES - 2),
        n: fc.integer({ min: 1, max: 8 }),
        byte: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ t: fc.constant('punch' as const), page: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 600 }) }),
      fc.record({ t: fc.constant('poison' as const), page: fc.nat(PAGES - 1) }),
    );
    const setup = fc.record({
      pages: fc.constant(PAGES),
      failAt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })),
      limitPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1100 })),
      arenaMiB: fc.constant(4),
      defaultOrder: fc.constantFrom<0 | 9>(0, 9),
      prepareHook: fc.boolean(),
    });
    fc.assert(
      fc.property(setup, fc.array(op, { maxLength: 10 }), (s, ops) => {
        const ok = ops.map((o) => (o.t === 'fill' ? { ...o, n: Math.min(o.n, PAGES - o.page - 1) } : o));
        expect(run(s, ok, true)).toEqual(run(s, ok, false));
      }),
      { numRuns: 100 },
    );
  });

  it('pages freed dirty and faulted in again read zero (the bulk zeroing covers reused memory)', () => {
    const alloc = new ArenaFolioAllocator({ arenaMiB: 2 });
    const f = GuestMemFile.create(64 * P, 0, { backend: 'test' }, { allocator: alloc });
    f.fill(0, 64 * P, 0xaa);
    f.punchHole(0, 64 * P);
    expect(f.faultIn(0, 64)).toEqual({ stop: 64 });
    expect(f.read(0, 64 * P).every((b) => b === 0)).toBe(true);
    f.release();
  });

  it('odd bounds: fractional, NaN, Infinity, negative, past EOF', () => {
    const f = () => GuestMemFile.create(8 * P, 0, { backend: 'test' });
    const cases: Array<[number, number]> = [
      [0.5, 3],
      [1, 2.5],
      [Number.NaN, 3],
      [0, Number.NaN],
      [-1, 2],
      [6, 10],
      [3, 3],
      [5, 2],
      [0, Number.POSITIVE_INFINITY],
    ];
    for (const [first, end] of cases) {
      const a = f();
      const b = f();
      const r = a.faultIn(first, end);
      const ref = faultInPageByPage(b, first, end);
      expect([first, end, r.stop, errorOf(r.error), a.pagesPresent]).toEqual([first, end, ref.stop, errorOf(ref.error), b.pagesPresent]);
    }
  });

  it('a released file: getFolio page by page stops with EBADF; faultIn throws instead of returning it', () => {
    const a = GuestMemFile.create(8 * P, 0, { backend: 'test' });
    a.release();
    const ref = faultInPageByPage(a, 0, 2);
    let got: unknown;
    try {
      got = a.faultIn(0, 2);
    } catch (e) {
      got = { threw: errorOf(e) };
    }
    expect(got).toEqual(ref);
  });
});

describe('prepareMany = prepare of each', () => {
  it('duplicates, freed, poisoned, huge, uptodate, several arenas, partial count', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom<0 | 9>(0, 0, 0, 9), { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(60), { maxLength: 50 }),
        fc.array(fc.nat(39), { maxLength: 6 }),
        fc.array(fc.nat(39), { maxLength: 6 }),
        fc.array(fc.nat(39), { maxLength: 4 }),
        fc.nat(50),
        fc.constantFrom(2, 4),
        (orders, picks, uptodate, poisoned, freed, countCut, mib) => {
          const make = () => {
            const a = new ArenaFolioAllocator({ arenaMiB: mib });
            const folios = orders.map((o) => a.alloc(o));
            for (const fo of folios) {
              a.prepare(fo);
              a.view(fo).fill(0x5a);
              a.clearUptodate(fo);
            }
            for (const i of uptodate)
              if (i < folios.length) {
                a.prepare(folios[i]!);
                a.view(folios[i]!).fill(3);
              }
            for (const i of poisoned) if (i < folios.length) a.setPoisoned(folios[i]!);
            const freedSet = new Set<number>();
            for (const i of freed)
              if (i < folios.length && !freedSet.has(i)) {
                freedSet.add(i);
                a.free(folios[i]!);
              }
            return { a, folios };
          };
          const x = make();
          const y = make();
          // pick folios by index (duplicates allowed), plus raw neighbours of picked ones
          const list: number[] = [];
          for (const p of picks) {
            if (p < orders.length) list.push(x.folios[p]!);
            else if (p - 40 < orders.length && p >= 40) list.push(x.folios[p - 40]! + 1);
          }
          const arr = Int32Array.from([...list, -5, -5]);
          const count = Math.min(countCut, list.length);
          const live = (fo: number) => fo >= 0 && (x.a as unknown as { flags: Uint8Array }).flags[fo] !== undefined;
          const ok = [...arr.subarray(0, count)].every(live);
          if (!ok) return;
          x.a.prepareMany(arr, count);
          for (let i = 0; i < count; i++) y.a.prepare(arr[i]!);
          const total = (x.a as unknown as { flags: Uint8Array }).flags.length;
          for (let fo = 0; fo < total; fo++) {
            expect([fo, x.a.isUptodate(fo)]).toEqual([fo, y.a.isUptodate(fo)]);
          }
          // raw arena bytes equal everywhere
          const arenas = (o: ArenaFolioAllocator) => (o as unknown as { arenas: Uint8Array[] }).arenas;
          const ax = arenas(x.a);
          const ay = arenas(y.a);
          expect(ax.length).toBe(ay.length);
          for (let k = 0; k < ax.length; k++) expect(Buffer.from(ax[k]!).equals(Buffer.from(ay[k]!))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('RangeStateMap.runEnd', () => {
  it('is the end of the maximal run holding p, for any set sequence', () => {
    const LIMIT = 64;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(LIMIT), fc.nat(LIMIT), fc.constantFrom('a', 'b', 'c')), { maxLength: 20 }),
        fc.boolean(),
        (sets, bigLimit) => {
          const limit = bigLimit ? 2 ** 52 : LIMIT;
          const m = new RangeStateMap<string>('a', limit);
          const model: string[] = Array(LIMIT).fill('a');
          for (const [x, y, st] of sets) {
            const lo = Math.min(x, y);
            const hi = Math.max(x, y);
            m.set(lo, hi, st);
            for (let i = lo; i < hi; i++) model[i] = st;
          }
          for (let p = 0; p < LIMIT; p++) {
            let e = p;
            while (e < LIMIT && model[e] === model[p]) e++;
            const want = e === LIMIT && model[LIMIT - 1] === 'a' ? limit : e;
            expect([p, m.runEnd(p)]).toEqual([p, e < LIMIT ? e : want === limit ? limit : e]);
          }
          // p at the last page and in the tail beyond the model
          if (bigLimit) expect(m.runEnd(limit - 1)).toBe(limit);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('transfer skips getFolio for healthy pages; poison mid-range still fails as before', () => {
  it('EHWPOISON after the earlier pages were copied (read, write, fill), at any poisoned page', () => {
    fc.assert(
      fc.property(
        fc.nat(30),
        fc.nat(P - 1),
        fc.integer({ min: 1, max: 32 * P }),
        fc.nat(2),
        fc.boolean(),
        (poisonPage, off, len, mode, prefault) => {
          const N = 34;
          const f = GuestMemFile.create(N * P, 0, { backend: 'test' });
          if (prefault) f.fill(0, N * P, 0x11);
          f.markPoisoned(poisonPage);
          const start = off;
          const length = Math.min(len, N * P - start);
          const buf = new Uint8Array(length).fill(0xee);
          const src = new Uint8Array(length).map((_, i) => (i * 7 + 1) & 255);
          let err: unknown;
          try {
            if (mode === 0) f.read(start, length, buf);
            else if (mode === 1) f.write(start, src);
            else f.fill(start, length, 0x77);
          } catch (e) {
            err = e;
          }
          const firstPage = Math.floor(start / P);
          const lastPage = Math.floor((start + length - 1) / P);
          const hits = poisonPage >= firstPage && poisonPage <= lastPage;
          expect(errorOf(err)?.code).toBe(hits ? 'EHWPOISON' : undefined);
          // bytes before the poisoned page were copied; nothing at or after it
          const cut = hits ? poisonPage * P - start : length;
          for (let i = 0; i < length; i += 97) {
            const page = Math.floor((start + i) / P);
            if (page === poisonPage) continue;
            const before = i < cut;
            if (mode === 0) expect(buf[i]).toBe(before ? (prefault ? 0x11 : 0) : 0xee);
            else {
              const got = f.isPresent(page) ? f.read(start + i, 1)[0] : undefined;
              const want = before ? (mode === 1 ? src[i] : 0x77) : prefault ? 0x11 : undefined;
              if (want === undefined) expect(f.isPresent(page) ? got : undefined).toBe(f.isPresent(page) ? 0 : undefined);
              else expect(got).toBe(want);
            }
          }
          f.release();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('regression: transfer took the number path where offset + length rounds past 2^53', () => {
  it('write(2^53 - 1, 4098 bytes) on a 2^53 + 4096-byte file: EINVAL before any allocation', () => {
    const f = GuestMemFile.create((1n << 53n) + 4096n, 0, { backend: 'test' });
    let code: string | undefined;
    try {
      f.write(2 ** 53 - 1, new Uint8Array(4098).fill(1));
    } catch (e) {
      code = GuestMemError.is(e) ? e.code : String(e);
    }
    expect({ code, present: f.pagesPresent }).toEqual({ code: 'EINVAL', present: 0 });
    f.release();
  });
});
