/** The simulated vCPU's lifetime: it pins its VM past the VM fd, as the kernel's vCPU file does. */
import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openSimKvm, type SimKvmVm } from './index.js';

const K4 = 4096;
const code = (fn: () => unknown): string => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (GuestMemError.is(e)) return e.code;
    throw e;
  }
};

describe('SimVcpu', () => {
  it('keeps the VM, its slots and guest memory alive after the VM fd is closed; the VM goes with the last vCPU', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm() as SimKvmVm;
    const m = kvm.mmapAnonymous(K4);
    m.fill(0, K4, 0x21);
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: K4, userspace: { mapping: m } });
    const a = vm.createVcpu(0);
    const b = vm.createVcpu(1);
    vm.close();
    expect(kvm.stats().vms).toBe(1);
    expect(a.guestAccess({ gpa: 0, len: 2 })).toEqual(Uint8Array.of(0x21, 0x21));
    a.close();
    expect(kvm.stats().vms).toBe(1);
    b.guestAccess({ gpa: 1, len: 1, write: true, fill: 0x7 });
    expect(m.read(0, 2)).toEqual(Uint8Array.of(0x21, 0x7));
    b.close();
    expect(kvm.stats().vms).toBe(0);
    expect(code(() => b.guestAccess({ gpa: 0, len: 1 }))).toBe('EBADF');
    m.munmap();
    kvm.close();
    expect(kvm.stats()).toMatchObject({ vms: 0, mappings: 0, fds: 3 });
  });

  it('ids: [0, 4096) only, and an id stays taken after its fd is closed (EEXIST)', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm() as SimKvmVm;
    // -1 is the u64 2^64 - 1 (as the native driver passes it); a non-integer is the codec's ERANGE on both drivers.
    expect([-1, 4096, 2n ** 32n, 0.5].map((id) => code(() => vm.createVcpu(id)))).toEqual(['EINVAL', 'EINVAL', 'EINVAL', 'ERANGE']);
    vm.createVcpu(4095).close();
    expect(code(() => vm.createVcpu(4095))).toBe('EEXIST');
    vm.close();
    kvm.close();
  });
});
