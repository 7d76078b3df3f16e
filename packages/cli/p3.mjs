import { KvmHypervisor, openSimKvm } from '@guestmem/kvm';
import { GunyahHypervisor } from '@guestmem/gunyah';
const which = process.argv[2];
const h = which === 'g' ? new GunyahHypervisor() : new KvmHypervisor(openSimKvm({ swProtectedVm: false }));
const vm = h.createVm();
const mem = vm.createGuestMemory({ size: 65536, hostMappable: true, initiallyShared: true });
vm.bind({ memory: mem, offset: 0, gpa: 4n<<30n, size: 65536, access: 'shared' });
const d = new Uint8Array(8).fill(1);
vm.guestWrite(4n<<30n, d);
for (let rep = 0; rep < 6; rep++) { let t0=performance.now(); for (let i=0;i<500000;i++) vm.guestRead(4294967296+(i&511)*8, 8); const r=((performance.now()-t0)*1e6/500000).toFixed(0);
 t0=performance.now(); for (let i=0;i<500000;i++) vm.guestWrite(4294967296+(i&511)*8, d); console.log('read8', r, 'write8', ((performance.now()-t0)*1e6/500000).toFixed(0)); }
