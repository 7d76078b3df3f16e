#!/usr/bin/env node
/**
 * `pnpm start`: selects toyvisor through DI like any backend, runs a few neutral-API steps on it and
 * prints what happened, ending with the VM's memory report.
 */
import 'reflect-metadata';
import { GuestMemError, HYPERVISOR, registerCore } from '@guestmem/core';
import { container } from 'tsyringe';
import { registerToyvisor } from './toyvisor.js';

const c = container.createChildContainer();
registerCore(c, { hypervisor: 'toyvisor' });
registerToyvisor(c);
const h = c.resolve(HYPERVISOR);
console.log(`selected ${h.id}: ${h.capabilities.list().join(', ')}`);

const vm = h.createVm();
const mem = vm.createGuestMemory({ size: 64 * 1024, hostMappable: true, initiallyShared: true });
vm.bind({ memory: mem, offset: 0, gpa: 0x10_0000, size: 64 * 1024, access: 'shared' });
const view = mem.map();
view.write(0, new TextEncoder().encode('hello from the host'));
console.log(`guest reads: "${new TextDecoder().decode(vm.guestRead(0x10_0000, 19))}"`);

vm.convert({ gpa: 0x10_0000, size: 4096 }, 'private');
try {
  view.read(0, 1);
  console.log('!! the host read private memory');
} catch (e) {
  if (!(e instanceof GuestMemError)) throw e;
  console.log(`host read of the now-private page: ${e.code}`);
}
console.log(`guest reads the converted page as zero: ${vm.guestRead(0x10_0000, 4).join(' ')}`);
const r = vm.memoryReport();
console.log(`memory report: allocated ${r.totals.allocatedBytes} B, private/shared pages ${r.totals.privatePages}/${r.totals.sharedPages}`);
view.unmap();
h.close();
