import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestMemError } from '../errors/guest-mem-error.js';
import type { GuestMemory } from './interfaces.js';
import { checkBind, checkFileRange, checkGpaRange, checkMapRange, showArg, uintArg } from './validate.js';

const mem = (size: bigint, closed = false): GuestMemory => ({ id: 7, size, closed }) as unknown as GuestMemory;
const ctx = (m: GuestMemory, privateMemory = true) => ({ backend: 'test', owns: (x: GuestMemory) => x === m, privateMemory });
const err = (fn: () => unknown): GuestMemError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuestMemError) return e;
    throw e;
  }
  throw new Error('no error thrown');
};

describe('neutral argument rules (core validate.ts)', () => {
  it('a bad number is EINVAL and the message shows it as given', () => {
    for (const [v, shown] of [
      [-4096, '-4096'],
      [Number.NaN, 'NaN'],
      [1.5, '1.5'],
      [-4096n, '-4096n'],
      [2 ** 53, '9007199254740992'],
      [Number.NEGATIVE_INFINITY, '-Infinity'],
    ] as const) {
      const e = err(() => uintArg(v, 'gpa', 'bind', 'test'));
      expect([e.code, e.backend]).toEqual(['EINVAL', 'test']);
      expect(e.message).toContain(`gpa ${shown}`);
    }
    expect(showArg(-0)).toBe('-0');
    expect(uintArg(0, 'x', 'op', 'b')).toBe(0n);
  });

  it('checkBind accepts exactly the ranges the interface documents', () => {
    const P = 4096n;
    const top = 1n << 64n;
    const m = mem(64n * P);
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: top }),
        fc.bigInt({ min: 0n, max: 70n }),
        fc.bigInt({ min: 0n, max: 70n }),
        fc.boolean(),
        (gpaRaw, offPages, sizePages, alignGpa) => {
          const gpa = alignGpa ? gpaRaw & ~(P - 1n) : gpaRaw;
          const offset = offPages * P;
          const size = sizePages * P;
          const valid = gpa % P === 0n && size > 0n && offset + size <= m.size && gpa + size < top;
          let ok = true;
          try {
            const r = checkBind({ memory: m, gpa, offset, size }, ctx(m));
            expect(r).toEqual({ gpa, offset, size, access: 'private', readOnly: false });
          } catch (e) {
            expect((e as GuestMemError).code).toBe('EINVAL');
            ok = false;
          }
          expect(ok).toBe(valid);
        },
      ),
    );
    // The last bindable page ends one page below 2^64.
    expect(checkBind({ memory: m, gpa: top - 2n * P, offset: 0, size: P }, ctx(m)).gpa).toBe(top - 2n * P);
    expect(err(() => checkBind({ memory: m, gpa: top - P, offset: 0, size: P }, ctx(m))).code).toBe('EINVAL');
  });

  it('checkBind: foreign memory EINVAL, closed memory EBADF, private on a shared-only VM EOPNOTSUPP, default access follows the VM', () => {
    const m = mem(8192n);
    expect(err(() => checkBind({ memory: mem(8192n), gpa: 0, offset: 0, size: 4096 }, ctx(m))).code).toBe('EINVAL');
    const closed = mem(8192n, true);
    expect(err(() => checkBind({ memory: closed, gpa: 0, offset: 0, size: 4096 }, ctx(closed))).code).toBe('EBADF');
    expect(err(() => checkBind({ memory: m, gpa: 0, offset: 0, size: 4096, access: 'private' }, ctx(m, false))).code).toBe('EOPNOTSUPP');
    expect(err(() => checkBind({ memory: m, gpa: 0, offset: 0, size: 4096, access: 'lent' as never }, ctx(m))).code).toBe('EINVAL');
    expect(checkBind({ memory: m, gpa: 0, offset: 0, size: 4096 }, ctx(m, false)).access).toBe('shared');
  });

  it('ranges: convert, allocate/punch and map refuse what is outside their domain', () => {
    expect(err(() => checkGpaRange({ gpa: (1n << 64n) - 4096n, size: 4096 }, 'convert', 't')).code).toBe('EINVAL');
    expect(checkGpaRange({ gpa: 0, size: 4096 }, 'convert', 't')).toEqual({ gpa: 0n, size: 4096n, end: 4096n });
    expect(err(() => checkFileRange(8192, 4096, 8192n, 'allocate', 't')).code).toBe('EINVAL');
    expect(err(() => checkFileRange(0, 0, 8192n, 'allocate', 't')).code).toBe('EINVAL');
    expect(checkFileRange(4096, 4096, 8192n, 'allocate', 't')).toEqual({ offset: 4096n, len: 4096n });
    expect(err(() => checkMapRange({ offset: 1n << 64n }, 8192n, 't')).code).toBe('EINVAL');
    expect(err(() => checkMapRange({ offset: 0, length: 8193 }, 8192n, 't')).code).toBe('EINVAL');
    expect(checkMapRange({ offset: 4096 }, 8192n, 't')).toEqual({ offset: 4096n, length: 4096 });
    expect(checkMapRange({ length: 100 }, 8192n, 't')).toEqual({ offset: 0n, length: 100 });
  });
});
