// GUNYAH_VM_MAP_MEM: bind a guest-memory range at a guest address, shared with the host or lent
// to the guest; with GUNYAH_MEM_UNMAP (and the same flags) remove it again.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { MAP_FLAGS_V17 as F, openGunyah } from '@guestmem/gunyah';

const SHARE_RW = F.GUNYAH_MEM_FORCE_SHARE | F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE;
const LEND_RW = F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE;

const gh = openGunyah({ driver: 'sim' });
const vm = gh.createVm();
// vCPUs run once the VM is started, which needs its DTB inside a lent binding (see vm-start.ts).
const dtb = gh.createGuestMem({ flags: 0n, size: 4096 });
vm.mapMem({ guestAddr: 0x4000_0000n, flags: LEND_RW, guestMemFd: dtb.fd, offset: 0, size: 4096 });
vm.setDtbConfig({ guestPhysAddr: 0x4000_0000n, size: 4096 });
const shared = gh.createGuestMem({ flags: 0n, size: 4096 });
const lent = gh.createGuestMem({ flags: 0n, size: 4096 });
vm.mapMem({ guestAddr: 0x8_0000n, flags: SHARE_RW, guestMemFd: shared.fd, offset: 0, size: 4096 });
vm.mapMem({ guestAddr: 0xa000_0000n, flags: LEND_RW, guestMemFd: lent.fd, offset: 0, size: 4096 });
assert.deepEqual(
  vm.bindings().map((b) => b.guestAddr),
  [0x8_0000n, 0x4000_0000n, 0xa000_0000n],
);

vm.start();

// Shared: host and guest see the same bytes.
const m = shared.mmap({ offset: 0, length: 4096 });
m.write(0, new Uint8Array([7]));
const read = vm.vcpu(0).read(0x8_0000n, 1);
assert.equal(read.status, 'done');
assert.deepEqual((read as { data: Uint8Array }).data, new Uint8Array([7]));
m.unmap();

// Lent: once the guest touched it, the host can no longer map it.
assert.equal(vm.vcpu(0).write(0xa000_0000n, new Uint8Array([1])).status, 'done');
assert.throws(
  () => lent.mmap({ offset: 0, length: 4096 }).read(0, 1),
  (e) => e instanceof GuestMemError,
);

// A second binding of the same file range is EEXIST; unmapping takes the binding's exact flags
// (a binding can be removed while the VM runs).
assert.throws(
  () => vm.mapMem({ guestAddr: 0x10_0000n, flags: SHARE_RW, guestMemFd: shared.fd, offset: 0, size: 4096 }),
  (e) => e instanceof GuestMemError && e.code === 'EEXIST',
);
vm.mapMem({ guestAddr: 0x8_0000n, flags: SHARE_RW | F.GUNYAH_MEM_UNMAP, guestMemFd: shared.fd, offset: 0, size: 4096 });
assert.equal(vm.bindings().length, 2);
vm.close();
dtb.close();
shared.close();
lent.close();
