import { GunyahAckHypervisor } from '@guestmem/gunyah';
const MIB = 1 << 20;
const h = new GunyahAckHypervisor({ generation: 'C' });
const vm = h.createVm();
const mem = vm.createGuestMemory({ size: 65536n, hostMappable: true, initiallyShared: true });
const g = 4 * 2 ** 30;
vm.bind({ memory: mem, offset: 0, gpa: BigInt(g), size: 65536n, access: 'shared' });
const img = vm.createGuestMemory({ size: 2 * MIB, hostMappable: true, initiallyShared: true });
vm.bind({ memory: img, offset: 0, gpa: 0, size: 2 * MIB, access: 'shared' });
const data = new Uint8Array(8).fill(7);
vm.guestWrite(g, data);
const raw = vm.raw;
const N = 500_000;
for (let r = 0; r < 4; r++) {
  let t1 = performance.now();
  for (let i = 0; i < N; i++) raw.guestAccess('write', BigInt(g + (i & 511) * 8), new Uint8Array(data));
  let t2 = performance.now();
  for (let i = 0; i < N; i++) raw.guestAccess('read', BigInt(g + (i & 511) * 8), new Uint8Array(8));
  let t3 = performance.now();
  const f = (a, b) => (((b - a) * 1e6) / N).toFixed(0);
  console.log('raw write', f(t1, t2), 'raw read', f(t2, t3));
}
h.close();
