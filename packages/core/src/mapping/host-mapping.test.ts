import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemError, HostAccessFault } from '../errors/guest-mem-error.js';
import { GuestMemFile } from '../file/guest-mem-file.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { HostMapping } from './host-mapping.js';

const P = 4096;
const PAGES = 12;
const allocator = new ArenaFolioAllocator();
const same = (a: Uint8Array, b: Uint8Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * Host accesses of any length keep the per-page rules: pages are checked in order, the bytes before
 * the first page that faults are moved, and the fault names the first faulting byte. (Long accesses
 * take a bulk path; this compares them with a byte-exact model of the page-by-page rules.)
 */
describe('HostMapping: multi-page accesses stop at the first faulting page', () => {
  it('reads, readInto, writes and fills match the page-by-page model', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(PAGES - 1), { maxLength: 3 }),
        fc.constantFrom('read', 'readInto', 'write', 'fill'),
        fc.nat(PAGES * P - 1),
        fc.nat(5 * P),
        (sigbus, kind, at, rawLen) => {
          const len = Math.min(rawLen, PAGES * P - at);
          const bad = new Set(sigbus);
          const file = GuestMemFile.create(
            PAGES * P,
            0,
            { backend: 'test', hostAccess: (_f, i) => (bad.has(i) ? 'sigbus' : 'allow') },
            { allocator },
          );
          const seed = Uint8Array.from({ length: PAGES * P }, (_, i) => (i * 7) & 0xff);
          file.write(0, seed);
          const m = new HostMapping(file, { offset: 0, length: PAGES * P });
          const data = Uint8Array.from({ length: len }, (_, i) => (i * 13 + 5) & 0xff);
          const dst = new Uint8Array(len + 3).fill(0xee);
          let err: unknown;
          try {
            if (kind === 'read') dst.set(m.read(at, len), 3);
            else if (kind === 'readInto') m.readInto(at, dst, 3);
            else if (kind === 'write') m.write(at, data);
            else m.fill(at, len, 0x5a);
          } catch (e) {
            err = e;
          }
          // The model: first faulting page in the range, bytes before it moved.
          let stop = at + len;
          for (let p = Math.floor(at / P); len > 0 && p * P < at + len; p++) {
            if (bad.has(p)) {
              stop = Math.max(p * P, at);
              break;
            }
          }
          const expectFile = Uint8Array.from(seed);
          const expectDst = new Uint8Array(len + 3).fill(0xee);
          if (kind === 'write') expectFile.set(data.subarray(0, stop - at), at);
          if (kind === 'fill') expectFile.fill(0x5a, at, stop);
          if (kind === 'readInto') expectDst.set(seed.subarray(at, stop), 3);
          if (kind === 'read' && stop === at + len) expectDst.set(seed.subarray(at, at + len), 3);
          if (stop < at + len) {
            expect(err).toBeInstanceOf(HostAccessFault);
            expect((err as GuestMemError).message).toContain(`page ${Math.floor(stop / P)}`);
          } else {
            expect(err).toBeUndefined();
          }
          expect(same(file.read(0, PAGES * P), expectFile)).toBe(true);
          if (kind === 'read' || kind === 'readInto') expect(same(dst, expectDst)).toBe(true);
          m.unmap();
          file.release();
        },
      ),
      { numRuns: 200 },
    );
  });
});
