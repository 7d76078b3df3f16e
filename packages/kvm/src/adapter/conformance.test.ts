import { defineConformanceSuite } from '@guestmem/conformance';
import { openKvm } from '../open.js';
import { KvmHypervisor } from './kvm-hypervisor.js';

defineConformanceSuite({
  name: 'kvm-sim (simulated 6.18 kernel)',
  create: () => new KvmHypervisor(openKvm({ driver: 'sim' })),
});
