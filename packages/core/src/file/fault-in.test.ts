/**
 * `GuestMemFile.faultIn` (the bulk fault path of a guest touching a range) must be `getFolio` of
 * each page in turn: same folios at the same indices, same allocator attempts, same stop and same
 * error, every faulted page zeroed even when its memory was used before. And the allocator's
 * `prepareMany` must be `prepare` of each folio.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemError } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { FaultInjectingAllocator } from '../testing/fault-injecting-allocator.js';
import { GuestMemFile } from './guest-mem-file.js';

const P = 4096;
const PAGES = 40;

type Op =
  | { t: 'fault'; first: number; n: number }
  | { t: 'write'; page: number; byte: number }
  | { t: 'punch'; page: number; n: number }
  | { t: 'poison'; page: number }
  | { t: 'allocate'; page: number; n: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('fault' as const), first: fc.integer({ min: -2, max: PAGES + 2 }), n: fc.nat(PAGES + 4) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('write' as const), page: fc.nat(PAGES - 1), byte: fc.integer({ min: 1, max: 255 }) }),
  },
  fc.record({ t: fc.constant('punch' as const), page: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ t: fc.constant('poison' as const), page: fc.nat(PAGES - 1) }),
  fc.record({ t: fc.constant('allocate' as const), page: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 8 }) }),
);

interface Setup {
  huge: boolean;
  failAt: number;
  limitPages: number;
  prepareHook: boolean;
}

const setup: fc.Arbitrary<Setup> = fc.record({
  huge: fc.boolean(),
  failAt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })),
  limitPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 48 })),
  prepareHook: fc.boolean(),
});

const errorOf = (e: unknown) => {
  if (e === undefined) return undefined;
  if (!GuestMemError.is(e)) throw e;
  return { code: e.code, op: e.op, backend: e.backend, message: e.message };
};

function run(s: Setup, ops: Op[], bulk: boolean): unknown[] {
  const inner = new ArenaFolioAllocator({ arenaMiB: 2, ...(s.limitPages ? { limitBytes: s.limitPages * P } : {}) });
  const alloc = new FaultInjectingAllocator(inner, s.failAt ? { failAt: s.failAt } : {});
  const prepared: number[] = [];
  const f = GuestMemFile.create(
    PAGES * P,
    0,
    { backend: 'test', ...(s.prepareHook ? { prepare: (_f: unknown, index: number) => void prepared.push(index) } : {}) },
    { allocator: alloc, defaultOrder: s.huge ? 9 : 0 },
  );
  const out: unknown[] = [];
  for (const o of ops) {
    try {
      switch (o.t) {
        case 'fault': {
          let r: { stop: number; error?: unknown };
          if (bulk) r = f.faultIn(o.first, o.first + o.n);
          else {
            r = { stop: o.first + o.n };
            for (let i = o.first; i < o.first + o.n; i++) {
              try {
                f.getFolio(i);
              } catch (error) {
                r = { stop: i, error };
                break;
              }
            }
          }
          const present: number[] = [];
          for (let i = 0; i < PAGES; i++) present.push(f.pageIndex.load(i));
          // Every faulted page reads zero unless written since (writes below keep a non-zero byte).
          const bytes: number[] = [];
          for (let i = Math.max(0, o.first); i < Math.min(r.stop, PAGES); i++) {
            const folio = f.pageIndex.load(i);
            const arena = inner.arenaOf(folio);
            const at = inner.arenaOffset(folio) + (inner.orderOf(folio) === 9 ? (i % 512) * P : 0);
            bytes.push(arena.subarray(at, at + P).reduce((a, b) => a + b, 0));
          }
          out.push({
            stop: r.stop,
            error: errorOf(r.error),
            present,
            bytes,
            attempts: alloc.attempts,
            stats: inner.stats(),
            prepared: [...prepared],
          });
          break;
        }
        case 'write':
          f.write(o.page * P + 17, Uint8Array.of(o.byte));
          out.push('w');
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
          f.allocate(o.page * P, o.n * P);
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

describe('GuestMemFile.faultIn: getFolio of each page, in order', () => {
  it('same folios, attempts, stops, errors and zeroed pages as getFolio one page at a time', () => {
    fc.assert(
      fc.property(setup, fc.array(op, { maxLength: 14 }), (s, ops) => {
        expect(run(s, ops, true)).toEqual(run(s, ops, false));
      }),
      { numRuns: 400 },
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
});

describe('FolioAllocator.prepareMany', () => {
  it('zeroes and marks uptodate exactly what prepare of each folio would', () => {
    fc.assert(
      fc.property(
        // Mostly order-0 folios (adjacent ones are zeroed together), some huge ones.
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 24 }),
        fc.array(fc.nat(23), { maxLength: 24 }),
        (orders, pickOrder) => {
          const make = () => {
            const a = new ArenaFolioAllocator({ arenaMiB: 4 });
            const folios = orders.map((o) => a.alloc(o === 9 ? 9 : 0));
            // Dirty every folio's memory the way a previous user would have (prepare, write).
            for (const fo of folios) {
              a.prepare(fo);
              a.view(fo).fill(0x5a);
              a.clearUptodate(fo);
            }
            // Some already uptodate (prepare must leave their bytes alone).
            for (const i of pickOrder.slice(0, 5)) if (i < folios.length) a.prepare(folios[i]!);
            for (const i of pickOrder.slice(0, 5)) if (i < folios.length) a.view(folios[i]!).fill(3);
            return { a, folios };
          };
          const x = make();
          const y = make();
          const picked = Int32Array.from(pickOrder.filter((i) => i < orders.length).map((i) => x.folios[i]!));
          x.a.prepareMany(picked, picked.length);
          for (const fo of picked) y.a.prepare(fo);
          for (const fo of x.folios) {
            expect(x.a.isUptodate(fo)).toBe(y.a.isUptodate(fo));
            if (x.a.isUptodate(fo)) expect(Buffer.from(x.a.view(fo)).equals(Buffer.from(y.a.view(fo)))).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
