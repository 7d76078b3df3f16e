/**
 * `guestTouch` and the guest-access shortcut (`fastAccess`, which trusts "the SPTE still maps the
 * same folio" to mean "nothing changed since the full path resolved this page", the page's
 * private/shared kind included). Regression from the outside review: on a SW_PROTECTED VM with a
 * gmem-only (MMAP) guest_memfd, a page converted private → shared and re-faulted by a bulk touch as
 * shared with the same folio left the shortcut saying private, so a later access declaring
 * `private: true` was served instead of exiting with KVM_EXIT_MEMORY_FAULT (and the symmetric case).
 * A bulk run now forgets the shortcut.
 *
 * Reference: the same sequence with the touch made of per-page `guestAccess` calls (what
 * `guestTouch` promises to be).
 */
import { GuestMemError } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_SW_PROTECTED_VM,
} from '../uapi/constants.js';
import { openSimKvm } from './kvm.js';
import type { SimVcpu } from './vcpu.js';
import type { SimKvmVm } from './vm.js';

const P = 4096;
const GPA = 0x10_0000n;
const PAGES = 6;

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

const show = (e: unknown) => {
  if (e === undefined) return undefined;
  if (!GuestMemError.is(e)) throw e;
  return { code: e.code, info: e.info };
};

type Op =
  | { t: 'access'; page: number; write: boolean; priv: boolean | undefined }
  | { t: 'touch'; page: number; pages: number; write: boolean; priv: boolean | undefined }
  | { t: 'attr'; page: number; priv: boolean }
  | { t: 'punch'; page: number };

function setup() {
  const kvm = openSimKvm({ swProtectedVm: true });
  const vm = kvm.createVm(KVM_X86_SW_PROTECTED_VM) as SimKvmVm;
  const vcpu = vm.createVcpu(0) as SimVcpu;
  // MMAP: every access to the slot (private or shared) is served by guest_memfd (gmem-only slot).
  const fd = vm.createGuestMemfd({ size: PAGES * P, flags: GUEST_MEMFD_FLAG_MMAP });
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: PAGES * P,
    userspace: { mapping: kvm.mmapAnonymous(PAGES * P) },
    guestMemfdOffset: 0,
    guestMemfd: fd.fd,
  });
  const attr = (page: number, priv: boolean) =>
    vm.setMemoryAttributes({
      address: GPA + BigInt(page * P),
      size: P,
      attributes: priv ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n,
      flags: 0,
    });
  return { kvm, vm, vcpu, fd, attr };
}

function run(ops: Op[], bulk: boolean): unknown[] {
  const { kvm, vm, vcpu, fd, attr } = setup();
  const out: unknown[] = [];
  for (const o of ops) {
    try {
      switch (o.t) {
        case 'access':
          vcpu.guestAccess({ gpa: GPA + BigInt(o.page * P + 7), len: 1, write: o.write, data: Uint8Array.of(0x5a), private: o.priv });
          out.push('ok');
          break;
        case 'touch': {
          const gpa = GPA + BigInt(o.page * P);
          const end = gpa + BigInt(o.pages * P);
          const r = bulk
            ? vcpu.guestTouch({ gpa, end, write: o.write, value: 3, private: o.priv })
            : touchPerPage(vcpu, gpa, end, o.write, 3, o.priv);
          out.push({ at: r.at, error: show(r.error) });
          break;
        }
        case 'attr':
          attr(o.page, o.priv);
          out.push('ok');
          break;
        case 'punch':
          fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o.page * P, P);
          out.push('ok');
          break;
      }
    } catch (e) {
      out.push(show(e));
    }
  }
  vcpu.close();
  fd.close();
  vm.close();
  kvm.close();
  return out;
}

describe('guestTouch and the fastAccess tlb (SW_PROTECTED + gmem-only slot)', () => {
  it('minimal: private access, convert to shared, bulk touch, declared-private access must exit', () => {
    const ops: Op[] = [
      { t: 'attr', page: 0, priv: true },
      { t: 'access', page: 0, write: false, priv: true }, // full path: tlb = {page 0, private}
      { t: 'attr', page: 0, priv: false }, // zaps the SPTE; the folio stays in the file
      { t: 'touch', page: 0, pages: 1, write: false, priv: undefined }, // SPTE back (same folio), tlb untouched
      { t: 'access', page: 0, write: true, priv: true }, // a private access to a shared gfn
    ];
    const perPage = run(ops, false);
    // The reference: EFAULT with a KVM_EXIT_MEMORY_FAULT record flagged PRIVATE.
    expect((perPage[4] as { code: string }).code).toBe('EFAULT');
    expect(run(ops, true)).toEqual(perPage);
  });

  it('symmetric: shared access, convert to private, bulk touch, declared-shared access must exit', () => {
    const ops: Op[] = [
      { t: 'access', page: 2, write: false, priv: false },
      { t: 'attr', page: 2, priv: true },
      { t: 'touch', page: 2, pages: 1, write: false, priv: undefined },
      { t: 'access', page: 2, write: false, priv: false },
    ];
    const perPage = run(ops, false);
    expect((perPage[3] as { code: string }).code).toBe('EFAULT');
    expect(run(ops, true)).toEqual(perPage);
  });

  it('property: bulk touch = per-page accesses for any sequence with declared kinds', () => {
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        t: fc.constant('access' as const),
        page: fc.nat(PAGES - 1),
        write: fc.boolean(),
        priv: fc.constantFrom(undefined, true, false),
      }),
      fc.record({
        t: fc.constant('touch' as const),
        page: fc.nat(PAGES - 1),
        pages: fc.integer({ min: 1, max: PAGES }),
        write: fc.boolean(),
        priv: fc.constantFrom(undefined, true, false),
      }),
      fc.record({ t: fc.constant('attr' as const), page: fc.nat(PAGES - 1), priv: fc.boolean() }),
      fc.record({ t: fc.constant('punch' as const), page: fc.nat(PAGES - 1) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 14 }), (ops) => {
        expect(run(ops, true)).toEqual(run(ops, false));
      }),
      { numRuns: 300 },
    );
  });
});
