/**
 * The neutral v17 adapter's `guestRead/guestWrite` (the shortcut first: `readIfFast/writeIfFast`)
 * with the shortcut disabled on the raw `SimVm` vs enabled, over bad inputs too, with host views
 * (`GuestMemory.map`, `sharedView`), punch, convert, `GunyahGuestControls.reclaim` / `relinquish`,
 * unbind/rebind (private, shared, read-only), two memories, huge files, and both `guestCooperates`
 * settings. Compared: bytes or error code + class + info.exit.
 */
import { GuestMemError, type GuestMemory, type HostView, type MemoryBinding } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SimVm } from '../sim/vm.js';
import { GunyahHypervisor } from './gunyah-hypervisor.js';
import type { GunyahGuestControls } from './guest-controls.js';

const P = 4096;
const GPA = 0x40_0000;
const GPA2 = 0x100_0000;

type Op =
  | { t: 'read'; a: number | bigint | 'rel'; page: number; off: number; len: number; big: boolean }
  | { t: 'write'; a: number | bigint | 'rel'; page: number; off: number; len: number; byte: number; kind: number }
  | { t: 'map'; m: number; page: number }
  | { t: 'hwrite'; off: number; len: number; byte: number }
  | { t: 'hread'; off: number; len: number }
  | { t: 'unmapView' }
  | { t: 'punch'; m: number; page: number }
  | { t: 'convert'; page: number; priv: boolean; keep: boolean }
  | { t: 'reclaim'; page: number; n: number }
  | { t: 'relinq'; page: number; n: number; sanitize: boolean }
  | { t: 'rebind'; m: number; priv: boolean; readOnly: boolean };

const show = (e: unknown) =>
  GuestMemError.is(e)
    ? {
        code: e.code,
        cls: e.constructor.name,
        exit: JSON.stringify((e.info as { exit?: unknown })?.exit ?? null, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)),
      }
    : { thrown: (e as Error)?.constructor?.name };

function run(ops: Op[], huge: boolean, coop: boolean, shortcut: boolean): unknown[] {
  const h = new GunyahHypervisor({ guestCooperates: coop });
  try {
    const vm = h.createVm({ confidential: true });
    if (!shortcut) ((vm as unknown as { sim: SimVm }).sim as { fastAccess: unknown }).fastAccess = () => undefined;
    const size = huge ? 4 * 1024 * 1024 : 4 * P;
    const mems: GuestMemory[] = [0, 1].map(() =>
      vm.createGuestMemory({ size, hostMappable: true, initiallyShared: true, hugePages: huge } as never),
    );
    const gpas = [GPA, GPA2 * (huge ? 8 : 1)];
    const binds: (MemoryBinding | undefined)[] = mems.map((m, i) =>
      vm.bind({ memory: m, offset: 0, gpa: gpas[i]!, size, access: i === 0 ? 'shared' : 'private' }),
    );
    const ctl = vm as unknown as GunyahGuestControls;
    let view: HostView | undefined;
    const out: unknown[] = [];
    const attempt = (f: () => unknown) => {
      try {
        const r = f();
        out.push(r instanceof Uint8Array ? [...r] : r === undefined ? 'ok' : r);
      } catch (e) {
        out.push(show(e));
      }
    };
    const pg = (page: number) => (page < 4 ? gpas[0]! + page * (huge ? 512 * P : P) : gpas[1]! + (page - 4) * (huge ? 512 * P : P));
    for (const o of ops) {
      switch (o.t) {
        case 'read': {
          const g = o.a === 'rel' ? pg(o.page) + o.off : o.a;
          attempt(() => vm.guestRead(o.big && typeof g === 'number' && Number.isSafeInteger(g) ? BigInt(g) : g, o.len));
          break;
        }
        case 'write': {
          const g = o.a === 'rel' ? pg(o.page) + o.off : o.a;
          const d =
            o.kind === 0
              ? new Uint8Array(o.len)
              : o.kind === 1
                ? Buffer.from(new Uint8Array(o.len))
                : new Uint8Array(o.len + 3).subarray(2, 2 + o.len);
          for (let k = 0; k < o.len; k++) d[k] = (o.byte + k) & 0xff;
          attempt(() => vm.guestWrite(g, d));
          break;
        }
        case 'map':
          attempt(() => {
            view?.unmap();
            view = mems[o.m]!.map({ offset: o.page * P, length: 2 * P });
            return 'mapped';
          });
          break;
        case 'hwrite':
          attempt(() => (view ? view.write(o.off, new Uint8Array(o.len).fill(o.byte)) : 'none'));
          break;
        case 'hread':
          attempt(() => (view ? view.read(o.off, o.len) : 'none'));
          break;
        case 'unmapView':
          attempt(() => view?.unmap());
          view = undefined;
          break;
        case 'punch':
          attempt(() => mems[o.m]!.punchHole(o.page * (huge ? 512 * P : P), huge ? 512 * P : P));
          break;
        case 'convert':
          attempt(() =>
            vm.convert({ gpa: pg(o.page), size: huge ? 512 * P : P }, o.priv ? 'private' : 'shared', { keepContents: o.keep } as never),
          );
          break;
        case 'reclaim':
          attempt(() => ctl.reclaim({ gpa: pg(o.page), size: o.n * (huge ? 512 * P : P) }));
          break;
        case 'relinq':
          attempt(() => ctl.relinquish({ gpa: pg(o.page), size: o.n * (huge ? 512 * P : P) }, { sanitize: o.sanitize }));
          break;
        case 'rebind':
          attempt(() => binds[o.m]?.unbind());
          attempt(() => {
            binds[o.m] = vm.bind({
              memory: mems[o.m]!,
              offset: 0,
              gpa: gpas[o.m]!,
              size,
              access: o.priv ? 'private' : 'shared',
              readOnly: o.readOnly,
            });
            return 'bound';
          });
          break;
      }
    }
    return out;
  } finally {
    h.close();
  }
}

const BAD: (number | bigint)[] = [Number.NaN, -1, 1.5, 2 ** 53, -1n, 2n ** 64n, 2n ** 64n - 1n, Infinity];
const addr = fc.oneof({ weight: 9, arbitrary: fc.constant('rel' as const) }, fc.constantFrom(...BAD));
const len = fc.oneof(
  { weight: 6, arbitrary: fc.nat(20) },
  fc.integer({ min: 4080, max: 4100 }),
  fc.constantFrom(-1, 1.5, Number.NaN, 2 ** 31),
);
const page = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 4) }, fc.nat(7));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('read' as const), a: addr, page, off: fc.nat(P - 1), len, big: fc.boolean() }) },
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant('write' as const),
      a: addr,
      page,
      off: fc.nat(P - 1),
      len: fc.oneof(fc.nat(20), fc.integer({ min: 4080, max: 4100 })),
      byte: fc.nat(255),
      kind: fc.nat(2),
    }),
  },
  fc.record({ t: fc.constant('map' as const), m: fc.nat(1), page: fc.nat(2) }),
  fc.record({ t: fc.constant('hwrite' as const), off: fc.nat(2 * P - 1), len: fc.nat(20), byte: fc.nat(255) }),
  fc.record({ t: fc.constant('hread' as const), off: fc.nat(2 * P - 1), len: fc.nat(20) }),
  fc.constant({ t: 'unmapView' as const }),
  fc.record({ t: fc.constant('punch' as const), m: fc.nat(1), page: fc.nat(3) }),
  fc.record({ t: fc.constant('convert' as const), page: fc.nat(7), priv: fc.boolean(), keep: fc.boolean() }),
  fc.record({ t: fc.constant('reclaim' as const), page: fc.nat(7), n: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ t: fc.constant('relinq' as const), page: fc.nat(7), n: fc.integer({ min: 1, max: 3 }), sanitize: fc.boolean() }),
  fc.record({ t: fc.constant('rebind' as const), m: fc.nat(1), priv: fc.boolean(), readOnly: fc.boolean() }),
);

describe('v17 adapter guestRead/guestWrite with and without the shortcut', () => {
  for (const coop of [true, false]) {
    it(`4 KiB (guestCooperates ${coop})`, () => {
      fc.assert(
        fc.property(fc.array(op, { minLength: 5, maxLength: 40 }), (ops) => {
          expect(run(ops, false, coop, true)).toEqual(run(ops, false, coop, false));
        }),
        { numRuns: 200 },
      );
    });
  }
  it('2 MiB files', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 5, maxLength: 25 }), (ops) => {
        expect(run(ops, true, true, true)).toEqual(run(ops, true, true, false));
      }),
      { numRuns: 40 },
    );
  });
});

describe('adapter harness sanity', () => {
  it('the ops do what they say (and the shortcut serves repeated accesses)', () => {
    const ops: Op[] = [
      { t: 'write', a: 'rel', page: 0, off: 8, len: 4, byte: 7, kind: 1 },
      { t: 'read', a: 'rel', page: 0, off: 8, len: 4, big: false },
      { t: 'write', a: 'rel', page: 4, off: 0, len: 2, byte: 9, kind: 2 },
      { t: 'read', a: 'rel', page: 4, off: 0, len: 2, big: false },
      { t: 'map', m: 0, page: 0 },
      { t: 'hread', off: 8, len: 4 },
    ];
    const r = run(ops, false, true, true);
    expect(r).toEqual(['ok', [7, 8, 9, 10], 'ok', [9, 10], 'mapped', [7, 8, 9, 10]]);
    expect(run(ops, true, true, true)).toEqual(r);
  });
});
