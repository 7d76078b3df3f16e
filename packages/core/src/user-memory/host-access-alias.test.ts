/**
 * `UserMemory.write/readInto` with a buffer that is a view into the same memory, overlapping the
 * destination: copies have memmove semantics at every length (as `TypedArray#set` has).
 * Regression from the outside review: small copies (≤ 16 bytes) once went byte by byte forward and
 * smeared the source. Also: a negative `dstOffset` is refused, not silently used.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UserMemory } from './user-memory.js';

function setup() {
  const um = UserMemory.create({ size: 4 * 4096 });
  um.write(
    0,
    Uint8Array.from({ length: 64 }, (_, i) => i + 1),
  );
  const view = um.folioBytes(um.folioAt(0)!.folio); // the memory's own page 0
  return { um, view };
}
const expected = (len: number) => {
  const e = Array.from({ length: 64 }, (_, i) => i + 1);
  e.splice(1, len, ...e.slice(0, len)); // snapshot copy of [0,len) to [1,len+1)
  return e;
};

describe('UserMemory host copies with a view into the memory itself', () => {
  for (const len of [8, 16, 17]) {
    it(`write(1, own bytes [0,${len})) = memmove`, () => {
      const { um, view } = setup();
      um.write(1, view.subarray(0, len));
      expect([...um.read(0, 64)]).toEqual(expected(len));
    });
    it(`readInto(0, own bytes [1,${len + 1})) = memmove`, () => {
      const { um, view } = setup();
      um.readInto(0, view.subarray(1, len + 1));
      expect([...um.read(0, 64)]).toEqual(expected(len));
    });
  }
});

describe('UserMemory.readInto with a negative dstOffset (raw core API)', () => {
  it('is refused (EINVAL), even for a copy of a few bytes', () => {
    const { um } = setup();
    const dst = new Uint8Array(8).fill(0xee);
    let code: string | undefined;
    try {
      um.readInto(0, dst, -1); // len = 9
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect({ code, dst: [...dst] }).toEqual({ code: 'EINVAL', dst: Array(8).fill(0xee) });
  });
});

describe('UserMemory host copies = a flat shadow (no aliasing), Buffer/subarray, huge folios', () => {
  it('property', () => {
    const P = 4096;
    const buf = (kind: number, len: number, seed: number) => {
      const u =
        kind === 0 ? new Uint8Array(len) : kind === 1 ? Buffer.from(new Uint8Array(len)) : new Uint8Array(len + 7).subarray(3, 3 + len);
      for (let k = 0; k < len; k++) u[k] = (seed + k * 31) & 0xff;
      return u;
    };
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(
          fc.record({
            write: fc.boolean(),
            off: fc.oneof(fc.nat(4 * P), fc.integer({ min: P - 20, max: P + 4 }), fc.integer({ min: 512 * P - 20, max: 512 * P + 4 })),
            len: fc.oneof(fc.nat(20), fc.nat(3 * P)),
            kind: fc.nat(2),
            seed: fc.nat(255),
            dstOff: fc.nat(5),
          }),
          { maxLength: 30 },
        ),
        (huge, ops) => {
          const size = 1024 * P;
          const um = UserMemory.create({ size, hugePages: huge });
          const shadow = new Uint8Array(size);
          for (const o of ops) {
            const len = Math.min(o.len, size - o.off);
            if (o.write) {
              const d = buf(o.kind, len, o.seed);
              um.write(o.off, d);
              shadow.set(d, o.off);
            } else {
              const dst = buf(o.kind, len + o.dstOff, o.seed);
              const before = [...dst.subarray(0, o.dstOff)];
              um.readInto(o.off, dst, o.dstOff);
              expect([...dst.subarray(0, o.dstOff)]).toEqual(before);
              expect([...dst.subarray(o.dstOff)]).toEqual([...shadow.subarray(o.off, o.off + len)]);
              expect([...um.read(o.off, len)]).toEqual([...shadow.subarray(o.off, o.off + len)]);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
