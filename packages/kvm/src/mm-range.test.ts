import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MappingVmas, VM_LOCKED, mlockArgs, mprotectArgs, rangeSpan } from './mm-range.js';
import { PROT_READ, PROT_WRITE } from './uapi/constants.js';

const P = 4096n;
const U64 = (1n << 64n) - 1n;

describe('mm-range', () => {
  test('rangeSpan: the inside part and the flags describe [start, end) against the mapping exactly', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 20n }),
        fc.bigInt({ min: 0n, max: 64n }),
        fc.bigInt({ min: 0n, max: 1n << 21n }),
        fc.bigInt({ min: 0n, max: 1n << 21n }),
        (address, pages, a, b) => {
          const [start, end] = a <= b ? [a, b + 1n] : [b, a + 1n];
          const mapped = pages * P;
          const s = rangeSpan(address, mapped, start, end);
          // Brute force over the bytes' positions: what lies inside and what does not.
          const lo = start > address ? start : address;
          const hi = end < address + mapped ? end : address + mapped;
          expect(s.inside ? [s.inside.from + address, s.inside.to + address] : undefined).toEqual(lo < hi ? [lo, hi] : undefined);
          expect(s.runsPast).toBe(end > address + mapped);
          expect(s.startsOutside).toBe(!(lo < hi) || start < address);
        },
      ),
    );
  });

  test('mlockArgs covers every byte of [start, start + len) with whole pages, or says why not', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: U64 }), (start, len) => {
        const v = mlockArgs(start, len, 0);
        if (v.kind === 'range') {
          expect(v.start % P).toBe(0n);
          expect(v.end % P).toBe(0n);
          // The kernel computes PAGE_ALIGN(len + offset_in_page(start)) in 64 bits: when that sum
          // wraps, it locks the wrapped (short) length, and so does the verdict.
          if (len + (start % P) <= U64) {
            expect(v.start <= start && start + len <= v.end).toBe(true);
            expect(v.end - v.start - len < 2n * P).toBe(true);
          } else expect(v.end - v.start).toBe((len + (start % P) + P - 1n) & ~(P - 1n) & U64);
        } else if (v.kind === 'noop') {
          // Nothing to lock: a zero length, or one whose page round-up wraps to 0 (probed: len -1 → 0).
          expect(len === 0n || ((len + (start % P) + P - 1n) & ~(P - 1n) & U64) === 0n).toBe(true);
        } else {
          expect(v.code).toBe('EINVAL');
        }
      }),
    );
  });

  test('mprotectArgs: probed argument order', () => {
    expect(mprotectArgs(1n, P, 3)).toEqual({ kind: 'error', code: 'EINVAL' });
    // PROT_GROWSDOWN|PROT_GROWSUP (both in -1) is refused before the length is looked at; other bad bits after.
    expect(mprotectArgs(0n, 0n, -1)).toEqual({ kind: 'error', code: 'EINVAL' });
    expect(mprotectArgs(0n, 0n, 16)).toEqual({ kind: 'noop' });
    expect(mprotectArgs(0n, U64, 3)).toEqual({ kind: 'error', code: 'ENOMEM' });
    expect(mprotectArgs(P, U64 + 1n - P, 3)).toEqual({ kind: 'error', code: 'ENOMEM' });
    expect(mprotectArgs(0n, P, 16)).toEqual({ kind: 'error', code: 'EINVAL' });
    expect(mprotectArgs(0n, 1n, 1)).toEqual({ kind: 'range', start: 0n, end: P });
  });

  test('MappingVmas: room() (the one-VMA fast path and the per-run path) agrees with a per-byte brute force after any protect/lock sequence', () => {
    const op = fc.record({
      first: fc.nat({ max: 15 }),
      n: fc.integer({ min: 1, max: 4 }),
      prot: fc.constantFrom(0, 1, 2, 3),
      lock: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 8 }), fc.nat({ max: 16 * 4096 - 1 }), fc.nat({ max: 3 * 4096 }), (ops, start, len) => {
        const v = new MappingVmas(16, PROT_READ | PROT_WRITE);
        const model = Array<number>(16).fill(3);
        for (const o of ops) {
          const end = Math.min(16, o.first + o.n);
          if (o.lock) v.lock(o.first, end, VM_LOCKED);
          else v.protect(o.first, end, o.prot);
          if (!o.lock) for (let p = o.first; p < end; p++) model[p] = o.prot;
        }
        const l = Math.min(len, 16 * 4096 - start);
        for (const needed of [PROT_READ | PROT_WRITE, PROT_WRITE]) {
          // Brute force: bytes before the first page (of those the access covers) lacking the permission.
          let expected = l;
          for (let b = start; b < start + l; b++) {
            if (!(model[Math.floor(b / 4096)]! & needed)) {
              expected = b - start;
              break;
            }
          }
          expect(v.room(start, l, needed)).toBe(expected);
        }
      }),
    );
  });
});
