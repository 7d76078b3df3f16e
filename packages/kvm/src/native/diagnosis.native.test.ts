/**
 * A refusal from the real kernel reads `failed with EINVAL` and nothing more; the native driver adds
 * the most likely rule in the simulator's words, marked as its own diagnosis, errno unchanged.
 */
import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openKvm } from '../open.js';
import { KVM_MEM_GUEST_MEMFD } from '../uapi/constants.js';
import { NATIVE_BACKEND } from './errors.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping diagnosis tests: ${probe.reason}`);

const P = 4096;

function refusal(fn: () => void): GuestMemError {
  try {
    fn();
  } catch (e) {
    if (GuestMemError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe.skipIf(!probe.available)('native diagnosis of refused memslot ioctls', () => {
  it.each([
    [
      'a guest_memfd range already bound',
      'EINVAL',
      'guest-memfd-range-bound',
      { slot: 1, guestPhysAddr: 0x100000, memorySize: P, guestMemfdOffset: 0 },
    ],
    ['a range past EOF', 'EINVAL', 'past-eof', { slot: 1, guestPhysAddr: 0x100000, memorySize: 2 * P, guestMemfdOffset: P }],
    ['an unaligned GPA', 'EINVAL', 'gpa-alignment', { slot: 1, guestPhysAddr: 0x100800, memorySize: P, guestMemfdOffset: P }],
    ['an overlapping GPA range', 'EEXIST', 'gpa-overlap', { slot: 1, guestPhysAddr: 0, memorySize: P, guestMemfdOffset: P }],
    [
      'a slot above the highest guest frame',
      'EINVAL',
      'above-max-gfn',
      { slot: 1, guestPhysAddr: 1n << 52n, memorySize: P, guestMemfdOffset: P },
    ],
  ] as const)('%s: the kernel errno %s, diagnosed as %s', (_name, code, rule, region) => {
    const kvm = openKvm({ driver: 'native' });
    const vm = kvm.createVm();
    const g = vm.createGuestMemfd({ size: 2 * P, flags: 3n });
    try {
      vm.setUserMemoryRegion2({
        slot: 0,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0,
        memorySize: P,
        guestMemfd: g.fd,
        guestMemfdOffset: 0,
      });
      const e = refusal(() => vm.setUserMemoryRegion2({ flags: KVM_MEM_GUEST_MEMFD, guestMemfd: g.fd, ...region }));
      expect(e).toMatchObject({ code, backend: NATIVE_BACKEND, syscall: 'ioctl(KVM_SET_USER_MEMORY_REGION2)' });
      expect(e.info.diagnosis).toMatchObject({ rule, by: 'guestmem' });
      expect(e.message).toMatch(new RegExp(`failed with ${code} .*guestmem diagnosis: .*\\(rule ${rule}\\)`));
    } finally {
      g.close();
      vm.close();
      kvm.close();
    }
  });
});
