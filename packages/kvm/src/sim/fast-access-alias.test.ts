/**
 * kvm-sim `fastAccess` (shortcut hit) against the full path (`vm.state.tlb` cleared) for a guest
 * write whose `data` is a view into guest memory overlapping the destination: both copy with
 * memmove semantics at every length. Regressions from the outside review: 17–32-byte writes once
 * differed (the full path's small copies went forward byte by byte), and a bigint length threw a
 * TypeError on a shortcut hit instead of the full path's EINVAL.
 */
import { describe, expect, it } from 'vitest';
import { GUEST_MEMFD_FLAG_MMAP, KVM_MEM_GUEST_MEMFD, KVM_X86_SW_PROTECTED_VM } from '../uapi/constants.js';
import { openSimKvm } from './kvm.js';
import type { SimGuestMemfd } from './guest-memfd.js';
import type { SimKvmVm } from './vm.js';

const P = 4096;
const GPA = 0x10_0000;

/** A VM with one gmem-only slot of 4 pages at GPA (guest_memfd with MMAP). */
function gmemVm(swProtected: boolean): { vm: SimKvmVm; fd: SimGuestMemfd; forget: () => void } {
  const kvm = openSimKvm({ swProtectedVm: swProtected });
  const vm = kvm.createVm(swProtected ? KVM_X86_SW_PROTECTED_VM : 0) as SimKvmVm;
  const fd = vm.createGuestMemfd({ size: 4 * P, flags: GUEST_MEMFD_FLAG_MMAP }) as SimGuestMemfd;
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: 4 * P,
    userspace: { mapping: kvm.mmapAnonymous(4 * P) },
    guestMemfdOffset: 0,
    guestMemfd: fd.fd,
  });
  const state = (vm as unknown as { state: { tlb: unknown } }).state;
  return { vm, fd, forget: () => void (state.tlb = undefined) };
}

function run(fast: boolean, len: number, shift: number): number[] {
  const { vm, fd, forget } = gmemVm(true);
  vm.guestWrite(
    GPA,
    Uint8Array.from({ length: 64 }, (_, i) => i + 1),
  ); // full path, installs the TLB
  const core = fd.file.core;
  const view = core.allocator.view(core.pageIndex.load(0));
  if (!fast) forget();
  vm.guestWrite(GPA + shift, view.subarray(0, len));
  if (!fast) forget();
  return [...vm.guestRead(GPA, 64)];
}

describe('kvm-sim shortcut with a data view into guest memory', () => {
  for (const len of [8, 16, 17, 24, 32, 33]) {
    it(`write of ${len} bytes from guest [0,${len}) to guest [1,${len + 1}): shortcut = full path`, () => {
      const fast = run(true, len, 1);
      expect(fast).toEqual(run(false, len, 1));
      // memmove: byte 0 stays, bytes 1..len are the old bytes 0..len-1, the rest untouched.
      expect(fast).toEqual(Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : i <= len ? i : i + 1)));
    });
  }
});

describe('kvm-sim shortcut with a bigint length (outside the typed domain)', () => {
  it('guestRead(gpa, 4n) answers as the full path does (EINVAL), not TypeError', () => {
    const answer = (fast: boolean) => {
      const { vm, forget } = gmemVm(false);
      vm.guestRead(GPA, 1); // installs the TLB
      if (!fast) forget();
      try {
        return vm.guestRead(GPA, 4n as unknown as number);
      } catch (e) {
        return (e as { code?: string }).code ?? (e as Error).constructor.name;
      }
    };
    expect(answer(true)).toEqual(answer(false));
  });
});
