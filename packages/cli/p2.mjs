import { GuestProgram, buildGuestImage, loadGuest, runGuest, ArenaFolioAllocator } from '@guestmem/core';
import { KvmHypervisor, openSimKvm } from '@guestmem/kvm';
import { GunyahHypervisor } from '@guestmem/gunyah';
const which = process.argv[2];
const h = which === 'g' ? new GunyahHypervisor() : new KvmHypervisor(openSimKvm({ swProtectedVm: false }));
const vm = h.createVm();
const img = vm.createGuestMemory({ size: 2<<20, hostMappable: true, initiallyShared: true });
vm.bind({ memory: img, offset: 0, gpa: 0, size: 2<<20, access: 'shared' });
const S = 256n << 20n;
const mem = vm.createGuestMemory({ size: S, hostMappable: true, initiallyShared: true });
vm.bind({ memory: mem, offset: 0, gpa: 4n<<30n, size: S, access: 'shared' });
for (let rep = 0; rep < 4; rep++) {
const vcpu = vm.createVcpu();
loadGuest(vm, vcpu, buildGuestImage(new GuestProgram().touch(4n<<30n, S, 'write', 1).hlt()));
const t0 = performance.now();
runGuest(vm, vcpu);
console.log(((performance.now()-t0)*1e6/Number(S/4096n)).toFixed(0), 'ns/page');
}
const b = new Uint8Array(8);
for (let rep = 0; rep < 3; rep++) { const t0=performance.now(); for (let i=0;i<200000;i++) vm.guestRead((4n<<30n)+BigInt((i&511)*8), 8); console.log('read8', ((performance.now()-t0)*1e6/200000).toFixed(0)); }
