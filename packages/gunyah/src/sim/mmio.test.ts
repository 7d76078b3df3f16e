/**
 * Property: an access nothing backs, outside the demand-paged ranges, reaches the VMM as MMIO exits
 * of at most 8 bytes that never cross a page (v17 28/35 `gunyah_handle_mmio`: `len` ≤ sizeof(u64));
 * resuming each with HANDLED and the VMM's bytes completes the access with exactly those bytes
 * (15/35 `gunyah_handle_mmio_resume`). Addresses cover the whole 64-bit space, including its top.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { GuestAccess } from '../api.js';
import { HoldingCell, DTB_GPA } from './test-helpers.js';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: (1n << 64n) - 8192n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: 0n, max: 8192n }),
);

describe('MMIO exits (fast-check)', () => {
  it('an unbacked read is served 8 bytes at a time, page by page, and returns what the VMM supplied', () => {
    fc.assert(
      fc.property(u64, fc.integer({ min: 1, max: 64 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (gpa, len, supply) => {
        fc.pre(gpa + BigInt(len) <= DTB_GPA || gpa >= DTB_GPA + 4096n); // not the (lent) DTB page
        const hc = new HoldingCell();
        let r: GuestAccess = hc.cpu.read(gpa, len);
        let served = 0;
        while (r.status === 'mmio') {
          const at = BigInt.asUintN(64, gpa + BigInt(served));
          expect(r.exit).toMatchObject({ physAddr: at, isWrite: 0 });
          expect(r.exit.len).toBe(Math.min(8, len - served, 4096 - Number(at % 4096n)));
          const chunk = supply.subarray(served, served + r.exit.len);
          served += r.exit.len;
          r = r.resume('handled', chunk);
        }
        expect(served).toBe(len);
        expect(r).toEqual({ status: 'done', data: supply.subarray(0, len) });
      }),
      { numRuns: RUNS },
    );
  });

  it('an unbacked write shows the guest bytes in mmio.data, ≤ 8 at a time; FAULT stops it where it is', () => {
    fc.assert(
      fc.property(u64, fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(), (gpa, data, faultAfter) => {
        fc.pre(gpa + BigInt(data.length) <= DTB_GPA || gpa >= DTB_GPA + 4096n);
        const hc = new HoldingCell();
        let r: GuestAccess = hc.cpu.write(gpa, data);
        let seen = 0;
        let exits = 0;
        while (r.status === 'mmio') {
          expect(r.exit.isWrite).toBe(1);
          expect(r.exit.data.subarray(0, r.exit.len)).toEqual(data.subarray(seen, seen + r.exit.len));
          seen += r.exit.len;
          if (exits++ === faultAfter % 8) {
            expect(r.resume('fault')).toMatchObject({ status: 'guest-abort', gpa: BigInt.asUintN(64, gpa + BigInt(seen - r.exit.len)) });
            return;
          }
          r = r.resume();
        }
        expect(seen).toBe(data.length);
        expect(r).toEqual({ status: 'done' });
      }),
      { numRuns: RUNS },
    );
  });
});
