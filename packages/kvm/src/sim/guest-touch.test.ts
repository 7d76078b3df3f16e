/**
 * `guestTouch` (a guest touching a range of pages, the bulk path of `GuestProgram.touch`) must be
 * exactly the one-byte `guestAccess` of each page in turn: the same sequences run on two kernels,
 * one touching in bulk and one page by page, and after every step the stopping address, the error
 * (errno and exit record), the installed SPTEs, the allocator's accounting and attempts, and the
 * guest's view of memory must be equal. Covered: unaligned starts, ranges crossing slot ends, holes
 * (MMIO), anonymous-memory slots, READONLY slots, private and shared attributes with and without a
 * reported access kind, punch-hole, poison, released files, injected allocation failures, an
 * allocation limit, and addresses at the top of the guest-physical range and past 2^53 and 2^64.
 */
import { ArenaFolioAllocator, GuestMemError } from '@guestmem/core';
import { FaultInjectingAllocator } from '@guestmem/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_READONLY,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_SW_PROTECTED_VM,
} from '../uapi/constants.js';
import { openSimKvm } from './kvm.js';
import type { SimVcpu } from './vcpu.js';
import type { SimKvmVm } from './vm.js';

const P = 4096;
const PAGES = 24;
/** Slot 0: 16 pages of guest_memfd; slot 1 right after it: 4 pages of anonymous memory; then a hole. */
const SLOT0 = 16;
const SLOT1 = 4;

type Base = 'low' | 'top';
/** Where the slots sit: low memory, or ending exactly at the top of this host's 2^52 GPA space. */
const baseOf = (b: Base): bigint => (b === 'low' ? 0x10_0000n : (1n << 52n) - BigInt((SLOT0 + SLOT1) * P));

type Op =
  | { t: 'touch'; page: number; off: number; pages: number; write: boolean; value: number; priv: boolean | undefined }
  | { t: 'touch-far'; at: bigint; pages: number; write: boolean }
  | { t: 'punch'; page: number; n: number }
  | { t: 'poison'; page: number }
  | { t: 'attr'; page: number; n: number; priv: boolean }
  | { t: 'release' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('touch' as const),
      page: fc.integer({ min: -2, max: PAGES }),
      off: fc.oneof(fc.constant(0), fc.nat(P - 1)),
      pages: fc.integer({ min: 0, max: PAGES + 4 }),
      write: fc.boolean(),
      value: fc.nat(255),
      priv: fc.constantFrom(undefined, true, false),
    }),
  },
  fc.record({
    t: fc.constant('touch-far' as const),
    at: fc.oneof(
      fc.bigInt({ min: (1n << 53n) - 8n * BigInt(P), max: (1n << 53n) + 8n * BigInt(P) }),
      fc.bigInt({ min: (1n << 64n) - 8n * BigInt(P), max: (1n << 64n) - 1n }),
    ),
    pages: fc.integer({ min: 1, max: 8 }),
    write: fc.boolean(),
  }),
  fc.record({ t: fc.constant('punch' as const), page: fc.nat(SLOT0 - 1), n: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ t: fc.constant('poison' as const), page: fc.nat(SLOT0 - 1) }),
  fc.record({ t: fc.constant('attr' as const), page: fc.nat(PAGES - 1), n: fc.integer({ min: 1, max: 6 }), priv: fc.boolean() }),
  fc.constant({ t: 'release' as const }),
);

interface Setup {
  swProtected: boolean;
  base: Base;
  readOnly: boolean;
  /** Fail the allocator's Nth attempt (0: never). */
  failAt: number;
  /** Allocation limit in pages (0: none). */
  limitPages: number;
}

const setup: fc.Arbitrary<Setup> = fc.record({
  swProtected: fc.boolean(),
  base: fc.constantFrom<Base>('low', 'top'),
  readOnly: fc.boolean(),
  failAt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
  limitPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 })),
});

/** Page by page, as the interpreter does without a bulk path. */
function touchPerPage(v: SimVcpu, gpa: bigint, end: bigint, write: boolean, value: number, priv: boolean | undefined) {
  for (let at = gpa; at < end; at += BigInt(P)) {
    try {
      v.guestAccess({ gpa: at, len: 1, write, data: Uint8Array.of(value), private: priv });
    } catch (error) {
      return { at, error };
    }
  }
  return { at: end };
}

const describeError = (e: unknown) => {
  if (e === undefined) return undefined;
  if (!GuestMemError.is(e)) throw e;
  return { code: e.code, syscall: e.syscall, op: e.op, info: e.info };
};

function run(s: Setup, ops: Op[], bulk: boolean): unknown[] {
  const inner = new ArenaFolioAllocator(s.limitPages ? { limitBytes: s.limitPages * P } : {});
  const allocator = new FaultInjectingAllocator(inner, s.failAt ? { failAt: s.failAt } : {});
  const kvm = openSimKvm({ swProtectedVm: s.swProtected, allocator });
  const vm = kvm.createVm(s.swProtected ? KVM_X86_SW_PROTECTED_VM : 0) as SimKvmVm;
  const vcpu = vm.createVcpu(0) as SimVcpu;
  const base = baseOf(s.base);
  let fd: ReturnType<typeof vm.createGuestMemfd> | undefined = vm.createGuestMemfd({
    size: SLOT0 * P,
    flags: s.swProtected ? 0n : GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
  });
  const anon0 = kvm.mmapAnonymous(SLOT0 * P);
  const anon1 = kvm.mmapAnonymous(SLOT1 * P);
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: base,
    memorySize: SLOT0 * P,
    userspace: { mapping: anon0 },
    guestMemfdOffset: 0,
    guestMemfd: fd.fd,
  });
  vm.setUserMemoryRegion({
    slot: 1,
    flags: s.readOnly ? KVM_MEM_READONLY : 0,
    guestPhysAddr: base + BigInt(SLOT0 * P),
    memorySize: SLOT1 * P,
    userspace: { mapping: anon1 },
  });
  const out: unknown[] = [];
  const attempt = (f: () => unknown) => {
    try {
      f();
      out.push('ok');
    } catch (e) {
      out.push(describeError(e));
    }
  };
  /** What the touch left, read before the memory read-back (which installs SPTEs and faults pages in). */
  const snapshot = () => {
    const st = inner.stats();
    const before = {
      sptes0: [...vm.sptesOf(0)],
      sptes1: [...vm.sptesOf(1)],
      bytesInUse: st.bytesInUse,
      allocations: st.allocations,
      attempts: allocator.attempts,
    };
    const mem: unknown[] = [];
    for (let p = 0; p < SLOT0 + SLOT1; p++) {
      try {
        mem.push([...vcpu.guestAccess({ gpa: base + BigInt(p * P), len: 2 })]);
      } catch (e) {
        mem.push(GuestMemError.is(e) ? e.code : String(e));
      }
    }
    return { ...before, mem };
  };
  for (const o of ops) {
    switch (o.t) {
      case 'touch': {
        const gpa = base + BigInt(o.page * P + o.off);
        if (gpa < 0n) break;
        const end = gpa + BigInt(o.pages * P);
        const r = bulk
          ? vcpu.guestTouch({ gpa, end, write: o.write, value: o.value, private: o.priv })
          : touchPerPage(vcpu, gpa, end, o.write, o.value, o.priv);
        // The snapshot reads memory, which faults pages in: take it on both sides the same way.
        out.push({ at: r.at, error: describeError(r.error) }, snapshot());
        break;
      }
      case 'touch-far': {
        const end = o.at + BigInt(o.pages * P);
        const r = bulk ? vcpu.guestTouch({ gpa: o.at, end, write: o.write }) : touchPerPage(vcpu, o.at, end, o.write, 0, undefined);
        out.push({ at: r.at, error: describeError(r.error) });
        break;
      }
      case 'punch':
        if (fd) attempt(() => fd!.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o.page * P, o.n * P));
        break;
      case 'poison':
        if (fd) attempt(() => (fd as unknown as { markPoisoned(o: number): void }).markPoisoned(o.page * P));
        break;
      case 'attr':
        attempt(() =>
          vm.setMemoryAttributes({
            address: base + BigInt(o.page * P),
            size: o.n * P,
            attributes: o.priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n,
            flags: 0,
          }),
        );
        break;
      case 'release':
        fd?.close();
        fd = undefined;
        break;
    }
  }
  vcpu.close();
  fd?.close();
  vm.close();
  kvm.close();
  return out;
}

describe('guestTouch: a bulk touch is the one-byte guest access of each page, in order', () => {
  it('same stops, errors, SPTEs, allocations and memory as page-by-page accesses', () => {
    fc.assert(
      fc.property(setup, fc.array(op, { maxLength: 12 }), (s, ops) => {
        expect(run(s, ops, true)).toEqual(run(s, ops, false));
      }),
      { numRuns: 400 },
    );
  });

  it('an injected allocation failure stops the touch at that page, with its exit, and nothing after it is allocated', () => {
    const s: Setup = { swProtected: false, base: 'low', readOnly: false, failAt: 5, limitPages: 0 };
    const ops: Op[] = [{ t: 'touch', page: 0, off: 0, pages: SLOT0, write: true, value: 9, priv: undefined }];
    const bulk = run(s, ops, true);
    expect(bulk).toEqual(run(s, ops, false));
    const stop = bulk[0] as { at: bigint; error: { code: string; info: { memoryFault: { gpa: bigint } } } };
    expect(stop.at).toBe(baseOf('low') + 4n * BigInt(P));
    expect(stop.error.code).toBe('ENOMEM');
    expect(stop.error.info.memoryFault.gpa).toBe(stop.at);
  });

  it('a touch that starts inside a page touches the same offset of every page', () => {
    const ops: Op[] = [{ t: 'touch', page: 0, off: 100, pages: 3, write: true, value: 7, priv: undefined }];
    const s: Setup = { swProtected: false, base: 'low', readOnly: false, failAt: 0, limitPages: 0 };
    expect(run(s, ops, true)).toEqual(run(s, ops, false));
    const kvm = openSimKvm({});
    const vm = kvm.createVm(0) as SimKvmVm;
    const fd = vm.createGuestMemfd({ size: 4 * P, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: 0,
      memorySize: 4 * P,
      userspace: { mapping: kvm.mmapAnonymous(4 * P) },
      guestMemfdOffset: 0,
      guestMemfd: fd.fd,
    });
    expect(vm.createVcpu(0).guestTouch({ gpa: 100n, end: 3n * BigInt(P), write: true, value: 7 })).toEqual({ at: 3n * BigInt(P) });
    for (let p = 0; p < 4; p++) {
      const page = vm.guestAccess({ gpa: p * P, len: P });
      expect([page[99], page[100], page[101]]).toEqual([0, p < 3 ? 7 : 0, 0]);
    }
  });
});
