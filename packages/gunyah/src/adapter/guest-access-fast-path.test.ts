/**
 * `SimVm.fastAccess` (number addresses, one page, page already provided and touched) must give the
 * answers of the full `guestAccess` path: the same operation sequences run through the neutral
 * adapter twice, once with the shortcut disabled, and every result must be equal.
 */
import { GuestMemError, type MemoryBinding } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SimVm } from '../sim/vm.js';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

const P = 4096;
const GPA = 0x10_0000;

type Op =
  | { t: 'read'; page: number; off: number; len: number; big: boolean }
  | { t: 'write'; page: number; off: number; len: number; byte: number }
  | { t: 'convert'; page: number; priv: boolean }
  | { t: 'punch'; page: number }
  | { t: 'rebind'; priv: boolean; readOnly: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('read' as const), page: fc.nat(3), off: fc.nat(P - 1), len: fc.nat(16), big: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('write' as const), page: fc.nat(3), off: fc.nat(P - 1), len: fc.nat(16), byte: fc.nat(255) }),
  },
  fc.record({ t: fc.constant('convert' as const), page: fc.nat(3), priv: fc.boolean() }),
  fc.record({ t: fc.constant('punch' as const), page: fc.nat(3) }),
  fc.record({ t: fc.constant('rebind' as const), priv: fc.boolean(), readOnly: fc.boolean() }),
);

function run(ops: Op[], shortcut: boolean): unknown[] {
  const h = new GunyahHypervisor();
  try {
    const vm = h.createVm();
    if (!shortcut) ((vm as unknown as { sim: SimVm }).sim as { fastAccess: unknown }).fastAccess = () => undefined;
    const mem = vm.createGuestMemory({ size: 4 * P, hostMappable: true });
    let b: MemoryBinding | undefined = vm.bind({ memory: mem, offset: 0, gpa: GPA, size: 4 * P, access: 'shared' });
    const out: unknown[] = [];
    const attempt = (f: () => unknown) => {
      try {
        const r = f();
        out.push(r instanceof Uint8Array ? [...r] : 'ok');
      } catch (e) {
        if (!GuestMemError.is(e)) throw e;
        out.push(e.code);
      }
    };
    for (const o of ops) {
      const at = (page: number, off: number, len: number) => Math.min(GPA + page * P + off, GPA + 4 * P - Math.max(len, 1));
      if (o.t === 'read') attempt(() => vm.guestRead(o.big ? BigInt(at(o.page, o.off, o.len)) : at(o.page, o.off, o.len), o.len));
      else if (o.t === 'write') attempt(() => vm.guestWrite(at(o.page, o.off, o.len), new Uint8Array(o.len).fill(o.byte)));
      else if (o.t === 'convert') attempt(() => vm.convert({ gpa: GPA + o.page * P, size: P }, o.priv ? 'private' : 'shared'));
      else if (o.t === 'punch') attempt(() => mem.punchHole(o.page * P, P));
      else {
        attempt(() => b?.unbind());
        attempt(
          () =>
            (b = vm.bind({ memory: mem, offset: 0, gpa: GPA, size: 4 * P, access: o.priv ? 'private' : 'shared', readOnly: o.readOnly })),
        );
      }
    }
    return out;
  } finally {
    h.close();
  }
}

describe('gunyah sim: the guest-access shortcut changes no answer', () => {
  it('same results with and without it', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        expect(run(ops, true)).toEqual(run(ops, false));
      }),
      { numRuns: 300 },
    );
  });
});
