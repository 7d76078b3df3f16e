import { defineConformanceSuite, defineGuestConformanceSuite } from '@guestmem/conformance';
import { GunyahAckHypervisor } from './gunyah-ack-hypervisor.js';

defineConformanceSuite({
  name: 'gunyah-ack-sim (simulated Gunyah, Android Common Kernel 6.12 line)',
  create: () => new GunyahAckHypervisor(),
});

defineGuestConformanceSuite({
  name: 'gunyah-ack-sim (simulated Gunyah, Android Common Kernel 6.12 line)',
  create: () => new GunyahAckHypervisor(),
});

defineConformanceSuite({
  name: 'gunyah-ack-sim generation A (android14-6.1)',
  create: () => new GunyahAckHypervisor({ generation: 'A' }),
});

defineConformanceSuite({
  name: 'gunyah-ack-sim generation B (6.6 line)',
  create: () => new GunyahAckHypervisor({ generation: 'B' }),
});
