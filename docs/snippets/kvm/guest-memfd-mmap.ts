// mmap(2) on a guest_memfd: only with GUEST_MEMFD_FLAG_MMAP, MAP_SHARED; without INIT_SHARED every
// page is private and a host access is SIGBUS (a HostAccessFault here, never a dead process).
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  openKvm,
} from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(0);
const shared = vm.createGuestMemfd({ size: 8192, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
const m = shared.mmap({ length: 8192, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
assert.deepEqual(m.read(0, 4), new Uint8Array(4)); // zero on first use
m.write(4096, new Uint8Array([1, 2, 3]));
assert.deepEqual(m.read(4096, 3), new Uint8Array([1, 2, 3]));
m.munmap();
assert.throws(
  () => shared.mmap({ length: 8192, prot: PROT_READ, flags: MAP_PRIVATE }),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);

const priv = vm.createGuestMemfd({ size: 8192, flags: GUEST_MEMFD_FLAG_MMAP });
const p = priv.mmap({ length: 8192, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
assert.throws(
  () => p.read(0, 1),
  (e) => e instanceof GuestMemError && e.code === 'SIGBUS',
);
p.munmap();
for (const f of [shared, priv]) f.close();
vm.close();
kvm.close();
