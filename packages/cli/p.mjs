import { GuestProgram, buildGuestImage, loadGuest, runGuest, ArenaFolioAllocator } from '@guestmem/core';
import { KvmHypervisor, openSimKvm } from '@guestmem/kvm';
import { GunyahHypervisor } from '@guestmem/gunyah';
const which = process.argv[2];
const allocator = new ArenaFolioAllocator();
for (let rep = 0; rep < 3; rep++) {
const h = which === 'g' ? new GunyahHypervisor({ allocator }) : new KvmHypervisor(openSimKvm({ swProtectedVm: false, allocator }));
const vm = h.createVm();
const img = vm.createGuestMemory({ size: 2<<20, hostMappable: true, initiallyShared: true });
vm.bind({ memory: img, offset: 0, gpa: 0, size: 2<<20, access: 'shared' });
const S = 256n << 20n;
const mem = vm.createGuestMemory({ size: S, hostMappable: true, initiallyShared: true });
vm.bind({ memory: mem, offset: 0, gpa: 4n<<30n, size: S, access: 'shared' });
const vcpu = vm.createVcpu();
loadGuest(vm, vcpu, buildGuestImage(new GuestProgram().touch(4n<<30n, S, 'write', 1).hlt()));
const t0 = performance.now();
runGuest(vm, vcpu);
console.log(((performance.now()-t0)*1e6/Number(S/4096n)).toFixed(0), 'ns/page');
h.close();
}
