// GUNYAH_VM_SET_DTB_CONFIG and GUNYAH_VM_START: the DTB must lie inside one lent binding; starting
// hands it to the Resource Manager, which assigns the VMID. vCPUs run only after the start.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { MAP_FLAGS_V17 as F, openGunyah } from '@guestmem/gunyah';

const LEND_RW = F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE;
const DTB = 0x4000_0000n;

const gh = openGunyah({ driver: 'sim' });
const vm = gh.createVm();
// A DTB range that wraps around the address space is EOVERFLOW.
assert.throws(
  () => vm.setDtbConfig({ guestPhysAddr: 0xffff_ffff_ffff_f000n, size: 8192 }),
  (e) => e instanceof GuestMemError && e.code === 'EOVERFLOW',
);
const dtb = gh.createGuestMem({ flags: 0n, size: 4096 });
vm.mapMem({ guestAddr: DTB, flags: LEND_RW, guestMemFd: dtb.fd, offset: 0, size: 4096 });
vm.setDtbConfig({ guestPhysAddr: DTB, size: 4096 });
vm.start();
assert.equal(vm.status, 'running');
assert.ok(vm.vmid > 0);
vm.close();
dtb.close();
