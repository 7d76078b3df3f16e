/**
 * Property tests of DESIGN §2 invariants 1, 2 and 4 (and allocator accounting) over random
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
  fc.record({ k: fc.constant('punch' as const), f: fc.integer({ min: 0, max: 1 }), first: page, n: fc.integer({ min: 1, max: PAGES + 2 }) }),
  fc.record({
    k: fc.constant('write' as const),
    f: fc.integer({ min: 0, max: 1 }),
    at: fc.integer({ min: 0, max: PAGES * P - 1 }),
    len: fc.integer({ min: 1, max: 3 * P }),
    byte: fc.integer({ min: 1, max: 255 }),
    viaMap: fc.boolean(),
  }),
  fc.record({ k: fc.constant('read' as const), f: fc.integer({ min: 0, max: 1 }), at: fc.integer({ min: 0, max: PAGES * P - 1 }), len: fc.integer({ min: 1, max: 3 * P }), viaMap: fc.boolean() }),
  fc.record({ k: fc.constant('release' as const), f: fc.integer({ min: 0, max: 1 }) }),
  fc.record({ k: fc.constant('reopen' as const), f: fc.integer({ min: 0, max: 1 }) }),
);

interface Slot {
  file: GuestMemFile<string>;
  map: HostMapping;
  /** Model bytes; every file starts all-zero. */
  bytes: Uint8Array;
  present: boolean[];
}

describe('core invariants (property)', () => {
  it('1, 2, 4: zero on first use, nothing stale after punch/release/recycle, failures change only what they report; accounting returns to zero', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 30 }), fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: 0.3, noNaN: true }), (ops, seed, failRate) => {
        const base = new ArenaFolioAllocator({ arenaMiB: 2 });
        let rnd = seed;
        const alloc = new FaultInjectingAllocator(base, {
          predicate: () => {
            rnd = (rnd * 1103515245 + 12345) % 2 ** 31;
            return rnd / 2 ** 31 < failRate;
          },
        });
        const open = (): Slot => {
          const file = GuestMemFile.create<string>(PAGES * P, 0, { backend: 'prop' }, { allocator: alloc });
          const map = new HostMapping(file, { length: PAGES * P });
          return { file, map, bytes: new Uint8Array(PAGES * P), present: new Array(PAGES).fill(false) };
        };
        const slots: Array<Slot | null> = [open(), open()];
        const presentNow = (s: Slot) => s.present.map((_, i) => s.file.isPresent(i));

        for (const op of ops) {
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
              const before = presentNow(s);
              try {
                s.file.allocate(op.first * P, (end - op.first) * P);
                for (let i = op.first; i < end; i++) s.present[i] = true;
              } catch (e) {
                expect(e).toBeInstanceOf(GuestMemError);
                expect((e as GuestMemError).code).toBe('ENOMEM');
                const stop = (e as GuestMemError).info.stoppedAt as number;
                // Invariant 4: pages before the reported stop are allocated, the rest untouched.
                for (let i = op.first; i < stop; i++) s.present[i] = true;
                const now = presentNow(s);
                for (let i = stop; i < PAGES; i++) if (i >= stop && i < end) expect(now[i]).toBe(before[i]);
              }
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
              try {
                if (op.viaMap) s.map.write(op.at, data);
                else s.file.write(op.at, data);
                s.bytes.fill(op.byte, op.at, op.at + len);
              } catch (e) {
                expect((e as GuestMemError).code).toBe('ENOMEM');
                // The write went page by page: pages before the failing one were written.
                for (let a = op.at; a < op.at + len; a++) {
                  const pg = Math.floor(a / P);
                  if (!s.file.isPresent(pg)) break;
                  s.bytes[a] = op.byte;
                }
              }
              for (let i = 0; i < PAGES; i++) if (s.file.isPresent(i)) s.present[i] = true;
              break;
            }
            case 'read': {
              const len = Math.min(op.len, PAGES * P - op.at);
              try {
                const got = op.viaMap ? s.map.read(op.at, len) : s.file.read(op.at, len);
                // Invariants 1 and 2: exactly the model bytes — zero where never written or punched,
                // never another file's data or a recycled folio's old contents.
                expect(Buffer.from(got).equals(Buffer.from(s.bytes.subarray(op.at, op.at + len)))).toBe(true);
              } catch (e) {
                expect(e).not.toBeInstanceOf(HostAccessFault);
                expect((e as GuestMemError).code).toBe('ENOMEM');
              }
              for (let i = 0; i < PAGES; i++) if (s.file.isPresent(i)) s.present[i] = true;
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
      }),
      { numRuns: RUNS },
    );
  });
});
