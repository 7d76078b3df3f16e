// fallocate(2) on a guest_memfd: allocate (KEEP_SIZE) and punch holes; a punched page reads zero.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  openKvm,
} from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(0);
const gmem = vm.createGuestMemfd({ size: 4 * 4096, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, 4 * 4096);
const m = gmem.mmap({ length: 4 * 4096, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
m.write(0, new Uint8Array([0xaa, 0xbb]));
gmem.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
assert.deepEqual(m.read(0, 2), new Uint8Array([0, 0]));
// guest_memfd never changes size: fallocate without KEEP_SIZE is EOPNOTSUPP.
assert.throws(
  () => gmem.fallocate(0, 0, 4096),
  (e) => e instanceof GuestMemError && e.code === 'EOPNOTSUPP',
);
m.munmap();
gmem.close();
vm.close();
kvm.close();
