/**
 * `SimMemslot.sptes` as a radix `SptePages` must zap exactly what the `Map` it replaced did.
 * Reference: the same sequence on a second kernel whose slots get a Map-backed shim (`zap(lo, hi)`
 * deletes the keys in [lo, hi)), installed right after every slot is created. `sptesOf` of every
 * slot is compared after every step, across guest accesses and bulk touches, punch, poison,
 * conversion, slot delete, MOVE, flags-only change and file release.
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
import { SptePages } from './memslot.js';
import type { SimVcpu } from './vcpu.js';
import type { SimKvmVm } from './vm.js';

const P = 4096;
const PB = 4096n;
const BASE = 0x20_0000n;

class MapSptes {
  readonly m = new Map<number, number>();
  get(p: number) {
    return this.m.get(p);
  }
  has(p: number) {
    return this.m.has(p);
  }
  set(p: number, f: number) {
    this.m.set(p, f);
  }
  zap(lo: number, hi: number) {
    for (const p of [...this.m.keys()]) if (p >= lo && p < hi) this.m.delete(p);
  }
  get size() {
    return this.m.size;
  }
  entries() {
    return new Map([...this.m].sort((a, b) => a[0] - b[0]));
  }
}

type Op =
  | { t: 'touch'; page: number; n: number; priv: boolean | undefined }
  | { t: 'access'; page: number; priv: boolean | undefined }
  | { t: 'punch'; page: number; n: number }
  | { t: 'poison'; page: number }
  | { t: 'attr'; page: number; n: number; priv: boolean }
  | { t: 'slot'; id: number; page: number; n: number; off: number }
  | { t: 'delete'; id: number }
  | { t: 'release' };

function run(sw: boolean, mmap: boolean, ops: Op[], shim: boolean): unknown[] {
  const kvm = openSimKvm({ swProtectedVm: sw });
  const vm = kvm.createVm(sw ? KVM_X86_SW_PROTECTED_VM : 0) as SimKvmVm;
  const vcpu = vm.createVcpu(0) as SimVcpu;
  const flags = mmap ? (sw ? GUEST_MEMFD_FLAG_MMAP : GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED) : 0n;
  let fd: ReturnType<typeof vm.createGuestMemfd> | undefined = vm.createGuestMemfd({ size: 64 * P, flags });
  const anon = kvm.mmapAnonymous(64 * P);
  const patch = () => {
    if (!shim) return;
    for (const s of vm.state.slots.values()) {
      if (s.sptes instanceof SptePages) {
        expect(s.sptes.size).toBe(0);
        (s as unknown as { sptes: unknown }).sptes = new MapSptes();
      }
    }
  };
  const out: unknown[] = [];
  const step = (f: () => void) => {
    try {
      f();
      out.push('ok');
    } catch (e) {
      out.push(GuestMemError.is(e) ? e.code : String(e));
    }
    patch();
    out.push([0, 1, 2].map((id) => [...vm.sptesOf(id)]));
  };
  const slot = (id: number, page: number, n: number, off: number) =>
    vm.setUserMemoryRegion2({
      slot: id,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: BASE + BigInt(page) * PB,
      memorySize: n * P,
      userspace: { mapping: anon },
      guestMemfdOffset: BigInt(off) * PB,
      guestMemfd: fd!.fd,
    });
  step(() => slot(0, 0, 16, 0));
  step(() => slot(1, 20, 16, 30));
  for (const o of ops) {
    switch (o.t) {
      case 'touch':
        step(() => {
          const gpa = BASE + BigInt(o.page) * PB;
          const r = vcpu.guestTouch({ gpa, end: gpa + BigInt(o.n) * PB, write: true, value: 1, private: o.priv });
          if (r.error) throw r.error;
        });
        break;
      case 'access':
        step(() => void vcpu.guestAccess({ gpa: BASE + BigInt(o.page) * PB, len: 1, private: o.priv }));
        break;
      case 'punch':
        step(() => fd?.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o.page * P, o.n * P));
        break;
      case 'poison':
        step(() => (fd as unknown as { markPoisoned(o: number): void } | undefined)?.markPoisoned(o.page * P));
        break;
      case 'attr':
        step(() =>
          vm.setMemoryAttributes({
            address: BASE + BigInt(o.page) * PB,
            size: o.n * P,
            attributes: o.priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n,
            flags: 0,
          }),
        );
        break;
      case 'slot':
        step(() => fd && slot(o.id, o.page, o.n, o.off));
        break;
      case 'delete':
        step(() => vm.setUserMemoryRegion({ slot: o.id, flags: 0, guestPhysAddr: 0, memorySize: 0, userspace: { mapping: anon } }));
        break;
      case 'release':
        step(() => {
          fd?.close();
          fd = undefined;
        });
        break;
    }
  }
  vcpu.close();
  fd?.close();
  vm.close();
  kvm.close();
  return out;
}

describe('SPTE radix index = the Map it replaced', () => {
  it('same SPTEs after every step', () => {
    const priv = fc.constantFrom(undefined, true, false);
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ t: fc.constant('touch' as const), page: fc.nat(40), n: fc.integer({ min: 1, max: 40 }), priv }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('access' as const), page: fc.nat(40), priv }) },
      fc.record({ t: fc.constant('punch' as const), page: fc.nat(63), n: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ t: fc.constant('poison' as const), page: fc.nat(63) }),
      fc.record({ t: fc.constant('attr' as const), page: fc.nat(40), n: fc.integer({ min: 1, max: 20 }), priv: fc.boolean() }),
      fc.record({
        t: fc.constant('slot' as const),
        id: fc.nat(2),
        page: fc.nat(40),
        n: fc.integer({ min: 1, max: 16 }),
        off: fc.nat(48),
      }),
      fc.record({ t: fc.constant('delete' as const), id: fc.nat(2) }),
      fc.constant({ t: 'release' as const }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.array(op, { maxLength: 14 }), (sw, mmap, ops) => {
        expect(run(sw, mmap, ops, false)).toEqual(run(sw, mmap, ops, true));
      }),
      { numRuns: 300 },
    );
  });

  it('SptePages unit: zap/set/get = Map over random ranges incl. empty, reversed and out-of-range', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('set' as const), fc.nat(5000), fc.nat(2 ** 31 - 1)),
            fc.tuple(fc.constant('zap' as const), fc.integer({ min: -10, max: 5100 }), fc.integer({ min: -10, max: 5100 })),
          ),
          { maxLength: 60 },
        ),
        (ops) => {
          const a = new SptePages();
          const b = new MapSptes();
          for (const [k, x, y] of ops) {
            if (k === 'set') {
              a.set(x, y);
              b.set(x, y);
            } else {
              a.zap(x, y);
              b.zap(x, y);
            }
            expect([...a.entries()]).toEqual([...b.entries()]);
            expect(a.size).toBe(b.size);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
