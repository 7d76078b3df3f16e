/**
 * Invariants 1 and 2 with 2 MiB folios, partial punches and poison: random sequences on two files
 * sharing one allocator, checked byte for byte against a model.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestMemError } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { HostMapping } from '../mapping/host-mapping.js';
import { GuestMemFile } from './guest-mem-file.js';

const P = 4096;
const PAGES = 1024; // two 2 MiB blocks
const RUNS = Math.max(200, Math.floor(Number(process.env.FC_RUNS ?? 1000) / 2));

type Op =
  | { k: 'allocate'; f: number; block: number; huge: boolean }
  | { k: 'punch'; f: number; first: number; n: number }
  | { k: 'write'; f: number; page: number; at: number; len: number; byte: number; viaMap: boolean }
  | { k: 'read'; f: number; page: number; at: number; len: number; viaMap: boolean }
  | { k: 'poison'; f: number; page: number }
  | { k: 'release'; f: number }
  | { k: 'reopen'; f: number };

const f01 = fc.integer({ min: 0, max: 1 });
const pageArb = fc.oneof(fc.integer({ min: 0, max: PAGES - 1 }), fc.constantFrom(0, 1, 511, 512, 513, 1023));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('allocate' as const), f: f01, block: fc.integer({ min: 0, max: 1 }), huge: fc.boolean() }),
  fc.record({ k: fc.constant('punch' as const), f: f01, first: pageArb, n: fc.integer({ min: 1, max: 700 }) }),
  fc.record({
    k: fc.constant('write' as const),
    f: f01,
    page: pageArb,
    at: fc.integer({ min: 0, max: P - 1 }),
    len: fc.integer({ min: 1, max: 2 * P }),
    byte: fc.integer({ min: 1, max: 255 }),
    viaMap: fc.boolean(),
  }),
  fc.record({
    k: fc.constant('read' as const),
    f: f01,
    page: pageArb,
    at: fc.integer({ min: 0, max: P - 1 }),
    len: fc.integer({ min: 1, max: 2 * P }),
    viaMap: fc.boolean(),
  }),
  fc.record({ k: fc.constant('poison' as const), f: f01, page: pageArb }),
  fc.record({ k: fc.constant('release' as const), f: f01 }),
  fc.record({ k: fc.constant('reopen' as const), f: f01 }),
);

interface Slot {
  file: GuestMemFile<string>;
  map: HostMapping;
  bytes: Uint8Array;
  /** Poisoned folio extents [first, end) in pages, as they were when poisoned. */
  poisoned: Array<[number, number]>;
}

describe('core invariants with huge folios and poison (property)', () => {
  it("every read equals the model: zero on first use, zero after (partial) punch, never another file's or a recycled folio's bytes", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 25 }), (ops) => {
        const alloc = new ArenaFolioAllocator({ arenaMiB: 4 });
        const open = (): Slot => {
          const file = GuestMemFile.create<string>(PAGES * P, 0, { backend: 'prop' }, { allocator: alloc });
          return { file, map: new HostMapping(file, { length: PAGES * P }), bytes: new Uint8Array(PAGES * P), poisoned: [] };
        };
        const slots: Array<Slot | null> = [open(), open()];
        const poisonedAt = (s: Slot, page: number) => s.poisoned.some(([a, b]) => page >= a && page < b);
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
            case 'allocate':
              try {
                s.file.allocate(op.block * 512 * P, 512 * P, { order: op.huge ? 9 : 0 });
              } catch (e) {
                expect((e as GuestMemError).code).toBe('EHWPOISON'); // never: allocate skips present pages
              }
              break;
            case 'poison': {
              const order = s.file.folioOrder(op.page);
              const first = order === 9 ? op.page - (op.page % 512) : op.page;
              s.file.markPoisoned(op.page);
              if (!poisonedAt(s, op.page)) s.poisoned.push([first, first + (order === 9 ? 512 : 1)]);
              break;
            }
            case 'punch': {
              const end = Math.min(PAGES, op.first + op.n);
              s.file.punchHole(op.first * P, op.n * P);
              s.bytes.fill(0, op.first * P, end * P);
              // A punch touching a poisoned folio drops all of it.
              s.poisoned = s.poisoned.filter(([a, b]) => {
                if (a < end && op.first < b) {
                  s.bytes.fill(0, a * P, b * P);
                  expect(s.file.isPoisoned(a) || s.file.isPoisoned(b - 1)).toBe(false);
                  return false;
                }
                return true;
              });
              for (const [a, b] of s.poisoned) expect(s.file.isPoisoned(a) && s.file.isPoisoned(b - 1)).toBe(true);
              break;
            }
            case 'write': {
              const at = op.page * P + op.at;
              const len = Math.min(op.len, PAGES * P - at);
              const data = new Uint8Array(len).fill(op.byte);
              let firstBad = -1;
              for (let pg = op.page; pg * P < at + len; pg++)
                if (poisonedAt(s, pg)) {
                  firstBad = pg;
                  break;
                }
              try {
                if (op.viaMap) s.map.write(at, data);
                else s.file.write(at, data);
                expect(firstBad).toBe(-1);
                s.bytes.fill(op.byte, at, at + len);
              } catch (e) {
                expect(firstBad).toBeGreaterThanOrEqual(0);
                expect((e as GuestMemError).code).toBe(op.viaMap ? 'SIGBUS' : 'EHWPOISON');
                s.bytes.fill(op.byte, at, Math.max(at, firstBad * P)); // written up to the bad page
              }
              break;
            }
            case 'read': {
              const at = op.page * P + op.at;
              const len = Math.min(op.len, PAGES * P - at);
              let bad = false;
              for (let pg = op.page; pg * P < at + len; pg++) bad ||= poisonedAt(s, pg);
              try {
                const got = op.viaMap ? s.map.read(at, len) : s.file.read(at, len);
                expect(bad).toBe(false);
                expect(Buffer.from(got).equals(Buffer.from(s.bytes.subarray(at, at + len)))).toBe(true);
              } catch (e) {
                expect(bad).toBe(true);
                expect((e as GuestMemError).code).toBe(op.viaMap ? 'SIGBUS' : 'EHWPOISON');
              }
              break;
            }
          }
        }
        for (const s of slots) {
          if (!s) continue;
          s.map.unmap();
          s.file.release();
        }
        expect(alloc.stats().bytesInUse).toBe(0);
      }),
      { numRuns: RUNS },
    );
  });
});
