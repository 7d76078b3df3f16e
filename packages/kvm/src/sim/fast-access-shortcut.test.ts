/**
 * kvm-sim `SimKvmVm.guestRead/guestWrite` (which take the shortcut themselves) and `guestAccess`
 * against the full path (the shortcut forgotten before every access), over a wide input domain
 * including bad inputs, on both VM types. Ops between accesses: punch, poison, conversion, slot
 * delete/re-create/move, file release, host writes (pwrite, mmap), guest touch, a second
 * (anonymous) slot. Compared: bytes, error code + info (exit record), error class, memory.
 */
import { GuestMemError } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_SW_PROTECTED_VM,
} from '../uapi/constants.js';
import { openSimKvm } from './kvm.js';
import type { SimGuestMemfd } from './guest-memfd.js';
import type { SimVcpu } from './vcpu.js';
import type { SimKvmVm } from './vm.js';

const P = 4096;
const GPA = 0x10_0000;
const ANON_GPA = 0x20_0000;

type Addr = { k: 'page'; page: number; off: number; big: boolean } | { k: 'raw'; v: number | bigint };
type Len = { k: 'n'; v: number } | { k: 'bad'; v: unknown };
type Op =
  | { t: 'read'; how: 'short' | 'access'; a: Addr; len: Len; priv: boolean | undefined }
  | { t: 'write'; how: 'short' | 'access'; a: Addr; len: Len; byte: number; buf: number; mismatch: number; priv: boolean | undefined }
  | { t: 'punch'; page: number }
  | { t: 'poison'; page: number }
  | { t: 'attr'; page: number; priv: boolean }
  | { t: 'rebind'; move: boolean }
  | { t: 'release' }
  | { t: 'pwrite'; page: number; off: number; len: number; byte: number }
  | { t: 'mwrite'; page: number; off: number; len: number; byte: number }
  | { t: 'touch'; page: number; pages: number; write: boolean; priv: boolean | undefined };

const BAD_GPAS: (number | bigint)[] = [
  Number.NaN,
  -1,
  -0,
  GPA + 0.5,
  -4096n,
  2n ** 64n + BigInt(GPA),
  2n ** 64n - 1n,
  2 ** 53 + 4096,
  Infinity,
  -(2n ** 63n),
  GPA + 4 * P, // end of slot (MMIO)
  GPA + 4 * P - 1,
];
const BAD_LENS: unknown[] = [Number.NaN, -1, -0, 1.5, Infinity, 2 ** 53, 4097, 8192, 4096];

function makeBuf(kind: number, len: number, byte: number): Uint8Array {
  const fillIt = (u: Uint8Array) => {
    for (let k = 0; k < u.length; k++) u[k] = (byte + k * 13) & 0xff;
    return u;
  };
  if (kind === 0) return fillIt(new Uint8Array(len));
  if (kind === 1) return fillIt(Buffer.from(new Uint8Array(len)));
  return fillIt(new Uint8Array(len + 9).subarray(4, 4 + len));
}

export const hits = { n: 0 };
const show = (e: unknown) => {
  if (GuestMemError.is(e)) return { code: e.code, info: e.info, cls: e.constructor.name, syscall: e.syscall };
  return { thrown: (e as Error)?.constructor?.name };
};

function run(ops: Op[], swProtected: boolean, forget: boolean): unknown[] {
  const kvm = openSimKvm({ swProtectedVm: swProtected });
  const vm = kvm.createVm(swProtected ? KVM_X86_SW_PROTECTED_VM : 0) as SimKvmVm;
  const vcpu = vm.createVcpu(0) as SimVcpu;
  const mmapFlag = GUEST_MEMFD_FLAG_MMAP | (swProtected ? 0n : GUEST_MEMFD_FLAG_INIT_SHARED);
  let fd: SimGuestMemfd | undefined = vm.createGuestMemfd({ size: 4 * P, flags: mmapFlag }) as SimGuestMemfd;
  const anon = kvm.mmapAnonymous(4 * P);
  const anon2 = kvm.mmapAnonymous(2 * P);
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: ANON_GPA, memorySize: 2 * P, userspace: { mapping: anon2 } });
  let gpa = GPA;
  const bind = () =>
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: gpa,
      memorySize: 4 * P,
      userspace: { mapping: anon },
      guestMemfdOffset: 0,
      guestMemfd: fd!.fd,
    });
  bind();
  const map = fd.mmap({ length: 4 * P, prot: 3, flags: 1 } as never) as unknown as { write(at: number, d: Uint8Array): void };
  const out: unknown[] = [];
  const attempt = (f: () => unknown) => {
    try {
      const r = f();
      out.push(r instanceof Uint8Array ? [...r] : r === undefined ? 'ok' : r);
    } catch (e) {
      out.push(show(e));
    }
  };
  const addr = (a: Addr): number | bigint => {
    if (a.k === 'raw') return a.v;
    const n = (a.page >= 4 ? ANON_GPA + (a.page - 4) * P : gpa + a.page * P) + a.off;
    return a.big ? BigInt(n) : n;
  };
  const lenOf = (l: Len) => l.v as number;
  for (const o of ops) {
    if (forget) vm.state.tlb = undefined;
    if (!forget && (o.t === 'read' || o.t === 'write')) {
      const t = vm.state.tlb;
      const g = addr(o.a);
      if (t && (typeof g === 'bigint' ? g >= t.base && g < t.end : g >= t.baseNum && g < t.baseNum + P)) hits.n++;
    }
    switch (o.t) {
      case 'read': {
        const g = addr(o.a);
        const len = lenOf(o.len);
        if (o.how === 'short' && o.priv === undefined) attempt(() => vm.guestRead(g, len));
        else attempt(() => vm.guestAccess({ gpa: g, len, private: o.priv }));
        break;
      }
      case 'write': {
        const g = addr(o.a);
        const len = lenOf(o.len);
        const dlen = Number.isSafeInteger(len) && len >= 0 && len <= 8192 ? len + o.mismatch : o.mismatch;
        const data = makeBuf(o.buf, dlen, o.byte);
        if (o.how === 'short' && o.priv === undefined) attempt(() => vm.guestWrite(g, data));
        else attempt(() => vm.guestAccess({ gpa: g, len, write: true, data, private: o.priv }));
        break;
      }
      case 'punch':
        if (fd) attempt(() => fd!.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o.page * P, P));
        break;
      case 'poison':
        if (fd) attempt(() => fd!.markPoisoned(o.page * P));
        break;
      case 'attr':
        attempt(() =>
          vm.setMemoryAttributes({ address: gpa + o.page * P, size: P, attributes: o.priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n, flags: 0 }),
        );
        break;
      case 'rebind':
        if (!fd) break;
        vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: gpa, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
        if (o.move) gpa = gpa === GPA ? GPA + 8 * P : GPA;
        attempt(bind);
        break;
      case 'release':
        fd?.close();
        fd = undefined;
        break;
      case 'pwrite':
        if (fd) attempt(() => fd!.pwrite(makeBuf(0, o.len, o.byte), o.page * P + o.off));
        break;
      case 'mwrite':
        attempt(() => map.write(o.page * P + o.off, makeBuf(0, o.len, o.byte)));
        break;
      case 'touch': {
        const r = (() => {
          try {
            return vcpu.guestTouch({
              gpa: BigInt(gpa + o.page * P),
              end: BigInt(gpa + (o.page + o.pages) * P),
              write: o.write,
              value: 0x5a,
              private: o.priv,
            });
          } catch (e) {
            return { thrownTouch: show(e) };
          }
        })();
        out.push('error' in r ? { at: r.at, e: show(r.error) } : r);
        break;
      }
    }
  }
  // Final memory, read through the full path.
  vm.state.tlb = undefined;
  for (let p = 0; p < 4; p++) {
    try {
      out.push([...vm.guestAccess({ gpa: gpa + p * P, len: P })].reduce((h, b) => Math.imul(h ^ b, 16777619) >>> 0, 2166136261));
    } catch (e) {
      out.push(show(e));
    }
  }
  return out;
}

const addrArb: fc.Arbitrary<Addr> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('page' as const),
      page: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, fc.nat(5)),
      off: fc.oneof(fc.nat(40), fc.integer({ min: P - 40, max: P - 1 }), fc.nat(P - 1)),
      big: fc.boolean(),
    }),
  },
  fc.record({ k: fc.constant('raw' as const), v: fc.constantFrom(...BAD_GPAS) }),
);
const lenArb: fc.Arbitrary<Len> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('n' as const), v: fc.oneof(fc.nat(40), fc.integer({ min: 4000, max: 4100 })) }) },
  fc.record({ k: fc.constant('bad' as const), v: fc.constantFrom(...BAD_LENS) }),
);
const privArb = fc.constantFrom<boolean | undefined>(undefined, undefined, undefined, true, false);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant('read' as const),
      how: fc.constantFrom<'short' | 'access'>('short', 'access'),
      a: addrArb,
      len: lenArb,
      priv: privArb,
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant('write' as const),
      how: fc.constantFrom<'short' | 'access'>('short', 'access'),
      a: addrArb,
      len: lenArb,
      byte: fc.nat(255),
      buf: fc.nat(2),
      mismatch: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, fc.constant(1)),
      priv: privArb,
    }),
  },
  fc.record({ t: fc.constant('punch' as const), page: fc.nat(3) }),
  fc.record({ t: fc.constant('poison' as const), page: fc.nat(3) }),
  fc.record({ t: fc.constant('attr' as const), page: fc.nat(3), priv: fc.boolean() }),
  fc.record({ t: fc.constant('rebind' as const), move: fc.boolean() }),
  { weight: 1, arbitrary: fc.constant({ t: 'release' as const }) },
  fc.record({ t: fc.constant('pwrite' as const), page: fc.nat(3), off: fc.nat(P - 1), len: fc.nat(20), byte: fc.nat(255) }),
  fc.record({ t: fc.constant('mwrite' as const), page: fc.nat(3), off: fc.nat(P - 1), len: fc.nat(20), byte: fc.nat(255) }),
  fc.record({
    t: fc.constant('touch' as const),
    page: fc.nat(3),
    pages: fc.integer({ min: 1, max: 3 }),
    write: fc.boolean(),
    priv: privArb,
  }),
);

describe('kvm-sim shorthands and guestAccess = full path (TLB forgotten)', () => {
  for (const sw of [false, true]) {
    it(`${sw ? 'SW_PROTECTED' : 'default'} VM`, () => {
      fc.assert(
        fc.property(fc.array(op, { minLength: 5, maxLength: 40 }), (ops) => {
          expect(run(ops, sw, false)).toEqual(run(ops, sw, true));
        }),
        { numRuns: 300 },
      );
      expect(hits.n).toBeGreaterThan(0); // accesses to the remembered page happened
    });
  }
});
