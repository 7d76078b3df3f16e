/**
 * `guestTouch` (a guest touching a range of pages, the bulk path of `GuestProgram.touch`) must be
 * exactly the one-byte `guestAccess` of each page in turn: the same sequences run on two kernels,
 * one touching in bulk and one page by page, and after every step the stopping address, the error
 * (errno, exit record), the installed SPTEs, the allocator's accounting and attempts, and the
 * guest's view of memory must be equal. Layout: two
 * guest_memfd slots on one file at a non-zero offset, a slot bound past EOF (6.18's signed offset
 * check), an anonymous slot and a READONLY anonymous slot, SW_PROTECTED with and without MMAP, slots
 * placed low, at the top of a 52-bit space, straddling 2^53 and near 2^64 (maxGpaBits 64), unaligned
 * starts and non-page-multiple ends, slot delete/move, punch, poison, attributes, file release,
 * allocation failures and limits.
 *
 * `forgetTlb` clears `vm.state.tlb` before every single access (both sides), to isolate everything
 * but the shortcut; the property runs both with and without it (guest-touch-tlb.test.ts covers the
 * shortcut itself). Regression from the outside review: an allocator error that is not a
 * GuestMemError was thrown from a bulk run instead of returned as that page's error.
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
const PB = 4096n;
// Layout, in pages from base: [0,6) gmem slot 0 (file pages 3..9), [6,10) gmem slot 1 (file pages 10..14),
// [10,12) hole, [12,15) anon slot 2, [15,17) READONLY anon slot 3, [17,20) past-EOF gmem slot 4 (other file).
const SPAN = 20;
const SLOTS = [0, 1, 2, 3, 4];

type Base = 'low' | 'top52' | 'straddle53' | 'top64';
const baseOf = (b: Base): bigint =>
  b === 'low'
    ? 0x10_0000n
    : b === 'top52'
      ? (1n << 52n) - BigInt(SPAN) * PB
      : b === 'straddle53'
        ? (1n << 53n) - 7n * PB
        : (1n << 64n) - BigInt(SPAN + 1) * PB;

interface Setup {
  sw: boolean;
  mmap: boolean;
  base: Base;
  failAt: number;
  limitPages: number;
  forgetTlb: boolean;
}

type Op =
  | { t: 'touch'; page: number; off: number; len: number; write: boolean; value: number; priv: boolean | undefined }
  | { t: 'access'; page: number; off: number; write: boolean; priv: boolean | undefined }
  | { t: 'punch'; page: number; n: number }
  | { t: 'poison'; page: number }
  | { t: 'attr'; page: number; n: number; priv: boolean }
  | { t: 'delete'; slot: number }
  | { t: 'move1' }
  | { t: 'release' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('touch' as const),
      page: fc.integer({ min: -1, max: SPAN }),
      off: fc.oneof(fc.constant(0), fc.nat(P - 1)),
      // any length: touches end anywhere (not only page multiples)
      len: fc.oneof(fc.integer({ min: -P, max: (SPAN + 2) * P }), fc.constantFrom(0, 1, P - 1, P, P + 1)),
      write: fc.boolean(),
      value: fc.nat(255),
      priv: fc.constantFrom(undefined, true, false),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('access' as const),
      page: fc.nat(SPAN - 1),
      off: fc.nat(P - 1),
      write: fc.boolean(),
      priv: fc.constantFrom(undefined, true, false),
    }),
  },
  fc.record({ t: fc.constant('punch' as const), page: fc.nat(16), n: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ t: fc.constant('poison' as const), page: fc.nat(16) }),
  fc.record({ t: fc.constant('attr' as const), page: fc.nat(SPAN - 1), n: fc.integer({ min: 1, max: 8 }), priv: fc.boolean() }),
  fc.record({ t: fc.constant('delete' as const), slot: fc.constantFrom(...SLOTS) }),
  fc.constant({ t: 'move1' as const }),
  fc.constant({ t: 'release' as const }),
);

function touchPerPage(v: SimVcpu, gpa: bigint, end: bigint, write: boolean, value: number, priv: boolean | undefined, forget: () => void) {
  for (let at = gpa; at < end; at += PB) {
    try {
      forget();
      v.guestAccess({ gpa: at, len: 1, write, data: Uint8Array.of(value), private: priv });
    } catch (error) {
      return { at, error };
    }
  }
  return { at: end };
}

const describeError = (e: unknown) => {
  if (e === undefined) return undefined;
  if (!GuestMemError.is(e)) return { nonGuestMemError: String(e) };
  return { code: e.code, syscall: e.syscall, op: e.op, info: e.info, cls: e.constructor.name };
};

function run(s: Setup, ops: Op[], bulk: boolean): unknown[] {
  const inner = new ArenaFolioAllocator(s.limitPages ? { limitBytes: s.limitPages * P } : {});
  const allocator = new FaultInjectingAllocator(inner, s.failAt ? { failAt: s.failAt } : {});
  const kvm = openSimKvm({ swProtectedVm: s.sw, allocator, maxGpaBits: s.base === 'low' || s.base === 'top52' ? 52 : 64 });
  const vm = kvm.createVm(s.sw ? KVM_X86_SW_PROTECTED_VM : 0) as SimKvmVm;
  const vcpu = vm.createVcpu(0) as SimVcpu;
  const forget = () => {
    if (s.forgetTlb) vm.state.tlb = undefined;
  };
  const base = s.base === 'low' || s.base === 'top52' ? baseOf(s.base) : baseOf(s.base);
  const flags = s.mmap ? (s.sw ? GUEST_MEMFD_FLAG_MMAP : GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED) : 0n;
  let fd: ReturnType<typeof vm.createGuestMemfd> | undefined = vm.createGuestMemfd({ size: 16 * P, flags });
  const fd2 = vm.createGuestMemfd({ size: 4 * P, flags });
  const anonG = kvm.mmapAnonymous(16 * P);
  const out: unknown[] = [];
  const attempt = (f: () => unknown) => {
    try {
      f();
      out.push('ok');
    } catch (e) {
      out.push(describeError(e));
    }
  };
  const gmemSlot = (slot: number, page: number, n: number, fileOff: bigint, gfd: number) =>
    vm.setUserMemoryRegion2({
      slot,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: base + BigInt(page) * PB,
      memorySize: n * P,
      userspace: { mapping: anonG },
      guestMemfdOffset: fileOff,
      guestMemfd: gfd,
    });
  attempt(() => gmemSlot(0, 0, 6, 3n * PB, fd!.fd));
  attempt(() => gmemSlot(1, 6, 4, 10n * PB, fd!.fd));
  attempt(() =>
    vm.setUserMemoryRegion({
      slot: 2,
      flags: 0,
      guestPhysAddr: base + 12n * PB,
      memorySize: 3 * P,
      userspace: { mapping: kvm.mmapAnonymous(3 * P) },
    }),
  );
  attempt(() =>
    vm.setUserMemoryRegion({
      slot: 3,
      flags: KVM_MEM_READONLY,
      guestPhysAddr: base + 15n * PB,
      memorySize: 2 * P,
      userspace: { mapping: kvm.mmapAnonymous(2 * P) },
    }),
  );
  // Past EOF: offset + size wraps negative as loff_t (6.18), so the slot binds pages 2^51-1… of a 4-page file.
  attempt(() => gmemSlot(4, 17, 3, 0x7fff_ffff_ffff_f000n, fd2.fd));
  const snapshot = () => {
    const st = inner.stats();
    const before = {
      sptes: SLOTS.map((id) => [...vm.sptesOf(id)]),
      bytesInUse: st.bytesInUse,
      allocations: st.allocations,
      attempts: allocator.attempts,
    };
    const mem: unknown[] = [];
    for (let p = 0; p < SPAN; p++) {
      try {
        forget();
        mem.push([...vcpu.guestAccess({ gpa: base + BigInt(p) * PB, len: 2 })]);
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
        const end = gpa + BigInt(o.len);
        let r: { at: bigint; error?: unknown };
        try {
          forget();
          r = bulk
            ? vcpu.guestTouch({ gpa, end, write: o.write, value: o.value, private: o.priv })
            : touchPerPage(vcpu, gpa, end, o.write, o.value, o.priv, forget);
        } catch (e) {
          out.push({ threw: describeError(e) });
          break;
        }
        out.push({ at: r.at, error: describeError(r.error) }, snapshot());
        break;
      }
      case 'access':
        attempt(() => {
          forget();
          vcpu.guestAccess({ gpa: base + BigInt(o.page * P + o.off), len: 1, write: o.write, data: Uint8Array.of(0xee), private: o.priv });
        });
        break;
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
      case 'delete':
        attempt(() => vm.setUserMemoryRegion({ slot: o.slot, flags: 0, guestPhysAddr: 0, memorySize: 0, userspace: { mapping: anonG } }));
        break;
      case 'move1':
        // slot 1 moves into the hole and back (a MOVE keeps the binding, zaps the SPTEs)
        attempt(() => {
          const cur = vm.state.slots.get(1);
          if (!cur || !fd) return;
          const to = cur.baseGfn === (base >> 12n) + 6n ? 7n : 6n;
          vm.setUserMemoryRegion2({
            slot: 1,
            flags: KVM_MEM_GUEST_MEMFD,
            guestPhysAddr: base + to * PB,
            memorySize: 4 * P,
            userspace: { mapping: anonG },
            guestMemfdOffset: 10n * PB,
            guestMemfd: fd.fd,
          });
        });
        break;
      case 'release':
        fd?.close();
        fd = undefined;
        break;
    }
  }
  out.push(snapshot());
  vcpu.close();
  fd?.close();
  fd2.close();
  vm.close();
  kvm.close();
  return out;
}

const setup: fc.Arbitrary<Setup> = fc.record({
  sw: fc.boolean(),
  mmap: fc.boolean(),
  base: fc.constantFrom<Base>('low', 'top52', 'straddle53', 'top64'),
  failAt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
  limitPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 24 })),
  forgetTlb: fc.boolean(),
});

describe('guestTouch = per-page guestAccess (wide layout)', () => {
  it('with and without the shortcut forgotten before every access', () => {
    fc.assert(
      fc.property(setup, fc.array(op, { maxLength: 12 }), (s, ops) => {
        expect(run(s, ops, true)).toEqual(run(s, ops, false));
      }),
      { numRuns: 400 },
    );
  });

  it('sanity: the layout is what the comment says', () => {
    for (const base of ['low', 'top52', 'straddle53', 'top64'] as Base[]) {
      const r = run(
        { sw: false, mmap: true, base, failAt: 0, limitPages: 0, forgetTlb: true },
        [{ t: 'touch', page: 0, off: 0, len: SPAN * P, write: true, value: 7, priv: undefined }],
        true,
      );
      // five slot setups succeeded
      expect(r.slice(0, 5)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
      const snap = r[6] as { mem: unknown[]; sptes: unknown[][] };
      expect(snap.mem.slice(0, 10)).toEqual(Array(10).fill([7, 0]));
      expect(snap.sptes[0]!.length).toBe(6);
    }
  });

  it('an injected allocation failure stops the touch at that page, with its exit, and nothing after it is allocated', () => {
    const s: Setup = { sw: false, mmap: true, base: 'low', failAt: 5, limitPages: 0, forgetTlb: false };
    const ops: Op[] = [{ t: 'touch', page: 0, off: 0, len: 6 * P, write: true, value: 9, priv: undefined }];
    const bulk = run(s, ops, true);
    expect(bulk).toEqual(run(s, ops, false));
    const stop = bulk[5] as { at: bigint; error: { code: string; info: { memoryFault: { gpa: bigint } } } };
    expect(stop.at).toBe(baseOf('low') + 4n * PB);
    expect(stop.error.code).toBe('ENOMEM');
    expect(stop.error.info.memoryFault.gpa).toBe(stop.at);
    expect((bulk[6] as { sptes: unknown[][] }).sptes[0]!.length).toBe(4);
  });

  it('a touch that starts inside a page touches the same offset of every page', () => {
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
    const vcpu = vm.createVcpu(0) as SimVcpu;
    expect(vcpu.guestTouch({ gpa: 100n, end: 3n * PB, write: true, value: 7 })).toEqual({ at: 3n * PB });
    for (let p = 0; p < 4; p++) {
      const page = vm.guestAccess({ gpa: p * P, len: P });
      expect([page[99], page[100], page[101]]).toEqual([0, p < 3 ? 7 : 0, 0]);
    }
    vcpu.close();
    fd.close();
    vm.close();
    kvm.close();
  });

  it('straddling 2^53: a touch across the number-path limit', () => {
    for (const sw of [false, true])
      for (const mmap of [false, true]) {
        const s: Setup = { sw, mmap, base: 'straddle53', failAt: 0, limitPages: 0, forgetTlb: true };
        const ops: Op[] = [
          { t: 'attr', page: 0, n: 10, priv: sw && !mmap },
          { t: 'touch', page: 0, off: 123, len: 11 * P, write: true, value: 9, priv: undefined },
        ];
        expect(run(s, ops, true)).toEqual(run(s, ops, false));
      }
  });
});

describe('an allocator error that is not a GuestMemError', () => {
  /** A FolioAllocator (public, injectable interface) whose 3rd allocation throws a plain Error. */
  class ThrowingAllocator extends FaultInjectingAllocator {
    override alloc(order: 0 | 9): number {
      if (this.attempts === 2) {
        this.attempts++;
        throw new Error('allocator bug');
      }
      return super.alloc(order);
    }
  }
  const go = (bulk: boolean) => {
    const kvm = openSimKvm({ allocator: new ThrowingAllocator() });
    const vm = kvm.createVm(0) as SimKvmVm;
    const vcpu = vm.createVcpu(0) as SimVcpu;
    const fd = vm.createGuestMemfd({ size: 8 * P, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: 0x10_0000n,
      memorySize: 8 * P,
      userspace: { mapping: kvm.mmapAnonymous(8 * P) },
      guestMemfdOffset: 0,
      guestMemfd: fd.fd,
    });
    const gpa = 0x10_0000n;
    try {
      const r = bulk
        ? vcpu.guestTouch({ gpa, end: gpa + 8n * PB, write: true, value: 1 })
        : touchPerPage(vcpu, gpa, gpa + 8n * PB, true, 1, undefined, () => {});
      return { at: r.at, error: describeError(r.error), sptes: [...vm.sptesOf(0).keys()] };
    } catch (e) {
      return { threw: String(e), sptes: [...vm.sptesOf(0).keys()] };
    } finally {
      kvm.close();
    }
  };
  it('guestTouch returns it as {at, error} like the per-page loop (and like its own fallback branch)', () => {
    // per-page: { at: gpa + 2 pages, error: Error('allocator bug') }; bulk (gmem run): throws.
    expect(go(true)).toEqual(go(false));
  });
});
