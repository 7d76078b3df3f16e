// GUNYAH_CREATE_VM on /dev/gunyah: a VM fd; the Resource Manager assigns the VMID at start.
import assert from 'node:assert/strict';
import { openGunyah } from '@guestmem/gunyah';

const gh = openGunyah({ driver: 'sim' }); // there is no Gunyah hardware driver: the simulation only
const vm = gh.createVm();
assert.equal(vm.status, 'no-state');
assert.equal(vm.vmid, 0);
vm.close();
assert.equal(vm.status, 'closed');
