// KVM_SET_USER_MEMORY_REGION: the classic memslot over host memory only (no guest_memfd).
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { KVM_MEM_GUEST_MEMFD, openKvm } from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(0);
const ram = kvm.mmapAnonymous(8 * 4096);
vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 8 * 4096, userspace: { mapping: ram, offset: 0 } });
// The legacy ioctl cannot carry a guest_memfd: KVM_MEM_GUEST_MEMFD is EINVAL here.
assert.throws(
  () =>
    vm.setUserMemoryRegion({
      slot: 1,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: 0x10_0000,
      memorySize: 4096,
      userspace: { mapping: ram, offset: 0 },
    }),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);
ram.munmap();
vm.close();
kvm.close();
