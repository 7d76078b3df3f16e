// KVM_SET_USER_MEMORY_REGION2: a memslot whose private side is a guest_memfd range
// (KVM_MEM_GUEST_MEMFD) and whose shared side is host memory at userspace_addr.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { KVM_MEM_GUEST_MEMFD, KVM_X86_SW_PROTECTED_VM, openKvm } from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(KVM_X86_SW_PROTECTED_VM);
const size = 16 * 4096;
const gmem = vm.createGuestMemfd({ size, flags: 0n });
const ram = kvm.mmapAnonymous(size); // the shared side
vm.setUserMemoryRegion2({
  slot: 0,
  flags: KVM_MEM_GUEST_MEMFD,
  guestPhysAddr: 0x1_0000_0000n,
  memorySize: size,
  userspace: { mapping: ram, offset: 0 },
  guestMemfdOffset: 0,
  guestMemfd: gmem.fd,
});
// One guest_memfd range can back only one slot at a time (the kernel answers EINVAL, not EEXIST).
assert.throws(
  () =>
    vm.setUserMemoryRegion2({
      slot: 1,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: 0x2_0000_0000n,
      memorySize: 4096,
      userspace: { mapping: ram, offset: 0 },
      guestMemfdOffset: 0,
      guestMemfd: gmem.fd,
    }),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);
// memory_size 0 deletes the slot.
vm.setUserMemoryRegion2({
  slot: 0,
  flags: KVM_MEM_GUEST_MEMFD,
  guestPhysAddr: 0x1_0000_0000n,
  memorySize: 0,
  guestMemfdOffset: 0,
  guestMemfd: gmem.fd,
});
ram.munmap();
gmem.close();
vm.close();
kvm.close();
