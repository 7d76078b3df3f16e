/**
 * The MMU's highest guest frame as a profile value of the simulated kernel (`maxGpaBits`): the
 * differential suite pins the probe machine's 52 bits; these pin that the value is the profile's.
 */
import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { KVM_MEM_GUEST_MEMFD as GMEM } from '../uapi/constants.js';
import { openSimKvm, type SimKvmVm } from './index.js';

const K4 = 4096;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (GuestMemError.is(e)) return e.code;
    throw e;
  }
  return 'ok';
}

describe('kvm_mmu_max_gfn as a profile value', () => {
  it.each([
    [48, 1n << 48n],
    [52, 1n << 52n],
    [57, 1n << 57n],
  ])('maxGpaBits %i: the last page below 2^bits is accepted, the first page at 2^bits is EINVAL', (bits, limit) => {
    const kvm = openSimKvm({ maxGpaBits: bits });
    const vm = kvm.createVm() as SimKvmVm;
    const g = vm.createGuestMemfd({ size: 2 * K4, flags: 3n });
    const region = { flags: GMEM, memorySize: K4, guestMemfd: g.fd };
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...region, slot: 0, guestPhysAddr: limit - BigInt(K4), guestMemfdOffset: 0 }))).toBe(
      'ok',
    );
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...region, slot: 1, guestPhysAddr: limit, guestMemfdOffset: K4 }))).toBe('EINVAL');
    // The refused slot does not exist and its file range was unbound again.
    expect([...vm.state.slots.keys()]).toEqual([0]);
    expect(g.file.findBinding(1, 2)).toBeUndefined();
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...region, slot: 2, guestPhysAddr: 0, guestMemfdOffset: K4 }))).toBe('ok');
    g.close();
    vm.close();
    kvm.close();
  });

  it.each([12, 65, 52.5, Number.NaN])('maxGpaBits %s is refused with EINVAL', (bits) => {
    expect(codeOf(() => openSimKvm({ maxGpaBits: bits }))).toBe('EINVAL');
  });
});

describe('owned mappings on the simulated kernel', () => {
  it('a guest access through a slot whose mapping was unmapped faults (EFAULT) and reaches no memory', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm() as SimKvmVm;
    const m = kvm.mmapAnonymous(K4);
    m.fill(0, K4, 0x5a);
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: K4, userspace: { mapping: m } });
    expect(vm.guestRead(0, 1)).toEqual(Uint8Array.of(0x5a));
    m.munmap();
    expect(m.addressReserved).toBe(true);
    expect(codeOf(() => vm.guestRead(0, 1))).toBe('EFAULT');
    expect(codeOf(() => vm.guestWrite(0, Uint8Array.of(1)))).toBe('EFAULT');
    // Its memory is gone already; only the reservation remains until the slot goes.
    expect(kvm.stats()).toMatchObject({ mappings: 1, memory: { bytesInUse: 0 } });
    vm.close();
    expect(m.addressReserved).toBe(false);
    expect(kvm.stats()).toMatchObject({ mappings: 0 });
    kvm.close();
  });

  it('a mapping of another simulated kernel is refused with EINVAL before the ioctl', () => {
    const a = openSimKvm();
    const b = openSimKvm();
    const vm = a.createVm();
    const foreign = b.mmapAnonymous(K4);
    expect(
      codeOf(() => vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: K4, userspace: { mapping: foreign } })),
    ).toBe('EINVAL');
    expect((vm as SimKvmVm).state.slots.size).toBe(0);
    vm.close();
  });
});
