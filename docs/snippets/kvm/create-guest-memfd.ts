// KVM_CREATE_GUEST_MEMFD: a file of guest-private memory, sized once, owned by one VM.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, openKvm } from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(0);
const gmem = vm.createGuestMemfd({ size: 2 * 1024 * 1024, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
assert.equal(gmem.size, 2n * 1024n * 1024n);
assert.equal(gmem.fstat().size, 2n * 1024n * 1024n);
// The size must be a non-zero multiple of the page size.
assert.throws(
  () => vm.createGuestMemfd({ size: 4097, flags: 0n }),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);
gmem.close();
vm.close();
kvm.close();
