#!/usr/bin/env node
import { GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import { runCocoDemo } from './demo.js';
import { runFaultDrivenGuest } from './fault-loop.js';

// 1. The guest's memory served by faults, one neutral VMM loop on both backends with private memory.
for (const hv of [openKvmHypervisor({ driver: 'sim' }), new GunyahHypervisor()]) {
  console.log(`== fault-driven guest on ${hv.id}`);
  try {
    runFaultDrivenGuest(hv);
  } finally {
    hv.close();
  }
}
// 2. The same flows one level down: a VMM's KVM_EXIT_MEMORY_FAULT handler on the uAPI.
console.log('\n== the uAPI-level handler (vmm.ts) on the simulated kernel');
runCocoDemo();
