/**
 * Property tests of invariants 1, 2 and 4 of docs/architecture.md (and allocator accounting) over random
 * allocate / punch / write / read / map / release sequences on two files that share one allocator,
 * with allocation failures injected at random points.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestMemError, HostAccessFault } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { HostMapping } from '../mapping/host-mapping.js';
import { FaultInjectingAllocator } from '../testing/fault-injecting-allocator.js';
import { GuestMemFile } from './guest-mem-file.js';

const P = 4096;
const PAGES = 8;
const RUNS = Number(process.env.FC_RUNS ?? 1000);

type Op =
  | { k: 'allocate'; f: number; first: number; n: number }
  | { k: 'punch'; f: number; first: number; n: number }
  | { k: 'write'; f: number; at: number; len: number; byte: number; viaMap: boolean }
  | { k: 'read'; f: number; at: number; len: number; viaMap: boolean }
  | { k: 'release'; f: number }
  | { k: 'reopen'; f: number };

const page = fc.integer({ min: 0, max: PAGES - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('allocate' as const), f: fc.integer({ min: 0, max: 1 }), first: page, n: fc.integer({ min: 1, max: PAGES }) }),
  fc.record({
    k: fc.constant('punch' as const),
    f: fc.integer({ min: 0, max: 1 }),
    first: page,
    n: fc.integer({ min: 1, max: PAGES + 2 }),
  }),
  fc.record({
    k: fc.constant('write' as const),
    f: fc.integer({ min: 0, max: 1 }),
    at: fc.integer({ min: 0, max: PAGES * P - 1 }),
    len: fc.integer({ min: 1, max: 3 * P }),
    byte: fc.integer({ min: 1, max: 255 }),
    viaMap: fc.boolean(),
  }),
  fc.record({
    k: fc.constant('read' as const),
    f: fc.integer({ min: 0, max: 1 }),
    at: fc.integer({ min: 0, max: PAGES * P - 1 }),
    len: fc.integer({ min: 1, max: 3 * P }),
    viaMap: fc.boolean(),
  }),
  fc.record({ k: fc.constant('release' as const), f: fc.integer({ min: 0, max: 1 }) }),
  fc.record({ k: fc.constant('reopen' as const), f: fc.integer({ min: 0, max: 1 }) }),
);

interface Slot {
  file: GuestMemFile<string>;
  map: HostMapping;
  /** Model bytes; every file starts all-zero. */
  bytes: Uint8Array;
  /** Model page presence, derived from the operations alone (never read back from the file). */
  present: boolean[];
}

describe('core invariants (property)', () => {
  it('1, 2, 4: zero on first use, nothing stale after punch/release/recycle, failures change only what they report; accounting returns to zero', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(opArb, fc.option(fc.integer({ min: 0, max: PAGES }), { nil: null, freq: 3 })), { maxLength: 30 }),
        (steps) => {
          const base = new ArenaFolioAllocator({ arenaMiB: 2 });
          // Each step may carry an allocation budget: that many folio allocations succeed, every later
          // one in the step fails with ENOMEM (null: no failure). The model derives from the budget
          // alone which page a step stops at, without asking the implementation.
          const alloc = new FaultInjectingAllocator(base);
          /**
           * The model of faulting pages `[first, end)` in, in order, with `budget` allocations: each
           * absent page takes one. Returns the page whose allocation fails, or -1.
           */
          const touch = (s: Slot, first: number, end: number, budget: number | null): number => {
            let left = budget ?? Number.POSITIVE_INFINITY;
            for (let i = first; i < end; i++) {
              if (s.present[i]) continue;
              if (left-- === 0) return i;
              s.present[i] = true;
            }
            return -1;
          };
          const open = (): Slot => {
            const file = GuestMemFile.create<string>(PAGES * P, 0, { backend: 'prop' }, { allocator: alloc });
            const map = new HostMapping(file, { length: PAGES * P });
            return { file, map, bytes: new Uint8Array(PAGES * P), present: new Array(PAGES).fill(false) };
          };
          const slots: Array<Slot | null> = [open(), open()];
          const presentNow = (s: Slot) => s.present.map((_, i) => s.file.isPresent(i));
          const enomem = (fn: () => void): GuestMemError => {
            let err: unknown;
            try {
              fn();
            } catch (e) {
              err = e;
            }
            expect(err, 'the model predicted ENOMEM').toBeInstanceOf(GuestMemError);
            expect(err).not.toBeInstanceOf(HostAccessFault);
            expect((err as GuestMemError).code).toBe('ENOMEM');
            return err as GuestMemError;
          };

          for (const [op, budget] of steps) {
            alloc.plan = budget === null ? {} : { failFrom: alloc.attempts + budget + 1 };
            const s = slots[op.f];
            if (op.k === 'reopen') {
              if (!s) slots[op.f] = open();
              continue;
            }
            if (!s) continue;
            switch (op.k) {
              case 'release':
                s.map.unmap();
                s.file.release();
                slots[op.f] = null;
                break;
              case 'allocate': {
                const end = Math.min(PAGES, op.first + op.n);
                const stop = touch(s, op.first, end, budget);
                if (stop < 0) s.file.allocate(op.first * P, (end - op.first) * P);
                // Invariant 4: pages before the reported stop are allocated, the rest untouched.
                else expect(enomem(() => s.file.allocate(op.first * P, (end - op.first) * P)).info.stoppedAt).toBe(stop);
                break;
              }
              case 'punch': {
                s.file.punchHole(op.first * P, op.n * P);
                const end = Math.min(PAGES, op.first + op.n);
                s.bytes.fill(0, op.first * P, end * P);
                for (let i = op.first; i < end; i++) s.present[i] = false;
                break;
              }
              case 'write': {
                const len = Math.min(op.len, PAGES * P - op.at);
                const data = new Uint8Array(len).fill(op.byte);
                const write = (): void => (op.viaMap ? s.map.write(op.at, data) : s.file.write(op.at, data));
                const stop = touch(s, Math.floor(op.at / P), Math.floor((op.at + len - 1) / P) + 1, budget);
                if (stop < 0) {
                  write();
                  s.bytes.fill(op.byte, op.at, op.at + len);
                } else {
                  enomem(write);
                  // The write goes page by page: the pages before the failing one were written.
                  s.bytes.fill(op.byte, op.at, Math.max(op.at, stop * P));
                }
                break;
              }
              case 'read': {
                const len = Math.min(op.len, PAGES * P - op.at);
                const read = (): Uint8Array => (op.viaMap ? s.map.read(op.at, len) : s.file.read(op.at, len));
                const stop = touch(s, Math.floor(op.at / P), Math.floor((op.at + len - 1) / P) + 1, budget);
                if (stop < 0) {
                  // Invariants 1 and 2: exactly the model bytes — zero where never written or punched,
                  // never another file's data or a recycled folio's old contents.
                  expect(Buffer.from(read()).equals(Buffer.from(s.bytes.subarray(op.at, op.at + len)))).toBe(true);
                } else {
                  enomem(() => void read());
                }
                break;
              }
            }
            for (const t of slots) if (t) expect(presentNow(t)).toEqual(t.present);
          }
          for (const s of slots) {
            if (!s) continue;
            s.map.unmap();
            s.file.release();
          }
          // Allocator accounting returns to zero after every file is released.
          expect(base.stats().bytesInUse).toBe(0);
          expect(base.stats().folios).toEqual({ order0: 0, order9: 0 });
        },
      ),
      { numRuns: RUNS },
    );
  });
});
