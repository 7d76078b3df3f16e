/**
 * The guest-access shortcut (the last installed SPTE, `fastAccess` in guest-access.ts) must never change an
 * answer: the same operation sequences run on two kernels, one of which forgets the shortcut before
 * every access, and every result (bytes or error code) must be equal — across punch-hole, poison,
 * conversion, slot delete and re-create, slot move and file release.
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
import type { SimKvmVm } from './vm.js';

const P = 4096;
const GPA = 0x10_0000;

type Op =
  | { t: 'read'; page: number; off: number; len: number; big: boolean }
  | { t: 'write'; page: number; off: number; len: number; byte: number }
  | { t: 'punch'; page: number }
  | { t: 'poison'; page: number }
  | { t: 'attr'; page: number; priv: boolean }
  | { t: 'rebind'; move: boolean }
  | { t: 'release' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('read' as const), page: fc.nat(3), off: fc.nat(P - 1), len: fc.nat(16), big: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('write' as const), page: fc.nat(3), off: fc.nat(P - 1), len: fc.nat(16), byte: fc.nat(255) }),
  },
  fc.record({ t: fc.constant('punch' as const), page: fc.nat(3) }),
  fc.record({ t: fc.constant('poison' as const), page: fc.nat(3) }),
  fc.record({ t: fc.constant('attr' as const), page: fc.nat(3), priv: fc.boolean() }),
  fc.record({ t: fc.constant('rebind' as const), move: fc.boolean() }),
  fc.constant({ t: 'release' as const }),
);

function run(ops: Op[], swProtected: boolean, forget: boolean): unknown[] {
  const kvm = openSimKvm({ swProtectedVm: swProtected });
  const vm = kvm.createVm(swProtected ? KVM_X86_SW_PROTECTED_VM : 0) as SimKvmVm;
  let fd: ReturnType<typeof vm.createGuestMemfd> | undefined = vm.createGuestMemfd({
    size: 4 * P,
    flags: swProtected ? 0n : GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
  });
  const anon = kvm.mmapAnonymous(4 * P);
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
    if (forget) vm.state.tlb = undefined;
    const at = (page: number, off: number, len: number) => Math.min(gpa + page * P + off, gpa + 4 * P - Math.max(len, 1));
    switch (o.t) {
      case 'read':
        attempt(() => vm.guestAccess({ gpa: o.big ? BigInt(at(o.page, o.off, o.len)) : at(o.page, o.off, o.len), len: o.len }));
        break;
      case 'write':
        attempt(() => vm.guestAccess({ gpa: at(o.page, o.off, o.len), len: o.len, write: true, data: new Uint8Array(o.len).fill(o.byte) }));
        break;
      case 'punch':
        if (fd) attempt(() => fd!.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o.page * P, P));
        break;
      case 'poison':
        if (fd) attempt(() => (fd as unknown as { markPoisoned(o: number): void }).markPoisoned(o.page * P));
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
        bind();
        break;
      case 'release':
        fd?.close();
        fd = undefined;
        break;
    }
  }
  return out;
}

describe('simulated guest accesses: the SPTE shortcut changes no answer', () => {
  for (const swProtected of [false, true]) {
    it(`same results with and without the shortcut (${swProtected ? 'SW_PROTECTED VM' : 'default VM, probe-host kernel'})`, () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
          expect(run(ops, swProtected, false)).toEqual(run(ops, swProtected, true));
        }),
        { numRuns: 300 },
      );
    });
  }

  it('a page read through the shortcut reads zero right after a punch-hole', () => {
    const r = run(
      [
        { t: 'write', page: 1, off: 0, len: 8, byte: 7 },
        { t: 'read', page: 1, off: 0, len: 8, big: false },
        { t: 'punch', page: 1 },
        { t: 'read', page: 1, off: 0, len: 8, big: false },
      ],
      false,
      false,
    );
    expect(r).toEqual([[], [7, 7, 7, 7, 7, 7, 7, 7], 'ok', [0, 0, 0, 0, 0, 0, 0, 0]]);
  });
});
