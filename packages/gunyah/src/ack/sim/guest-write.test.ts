/**
 * ACK guest writes (`AckVm.guestAccess`, which hands a whole small buffer to the pin as it is) land
 * where a flat shadow says: Buffer and subarray inputs with a non-zero byteOffset, writes crossing
 * pages and 2 MiB folios, and a data argument that is a view into guest memory (`AckVcpu.write`
 * copies it first: snapshot semantics).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckCell, MiB } from './test-helpers.js';

const GPA = 0x20_0000n * 4n;
const SIZE = 4n * MiB;

describe('ACK guest writes = flat shadow', () => {
  for (const huge of [false, true]) {
    it(`property (hugePages ${huge})`, () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              off: fc.oneof(
                fc.nat(Number(SIZE) - 1),
                fc.integer({ min: 4096 - 20, max: 4096 + 4 }),
                fc.integer({ min: 2 * 1024 * 1024 - 20, max: 2 * 1024 * 1024 + 4 }),
              ),
              len: fc.oneof(fc.nat(20), fc.nat(9000)),
              kind: fc.nat(3),
              seed: fc.nat(255),
              alias: fc.nat(64),
            }),
            { maxLength: 25 },
          ),
          (ops) => {
            const cell = new AckCell({ generation: 'C' });
            const { memory } = cell.add(GPA, SIZE, 'share', { hugePages: huge });
            const cpu = cell.cpu;
            const shadow = new Uint8Array(Number(SIZE));
            for (const o of ops) {
              const len = Math.min(o.len, Number(SIZE) - o.off);
              let d: Uint8Array;
              if (o.kind === 3) {
                // a view into guest memory (the pinned folio's bytes behind guest page 0)
                cpu.read(GPA, 1);
                const f = memory.folioAt(0)!;
                const v = memory.folioBytes(f.folio);
                const from = Math.min(o.alias, v.length - len);
                if (from < 0) continue;
                d = v.subarray(from, from + len);
              } else {
                d =
                  o.kind === 0
                    ? new Uint8Array(len)
                    : o.kind === 1
                      ? Buffer.from(new Uint8Array(len))
                      : new Uint8Array(len + 9).subarray(5, 5 + len);
                for (let k = 0; k < len; k++) d[k] = (o.seed + k * 29) & 0xff;
              }
              // reference: AckVcpu.write copies `data` first (snapshot), then the page loop writes it.
              const ref = shadow.slice();
              ref.set(Uint8Array.from(d), o.off);
              expect(cpu.write(GPA + BigInt(o.off), d).status).toBe('done');
              shadow.set(ref);
              const r = cpu.read(GPA + BigInt(o.off), len);
              expect(r.status).toBe('done');
              expect([...(r as { data: Uint8Array }).data]).toEqual([...shadow.subarray(o.off, o.off + len)]);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }
});
