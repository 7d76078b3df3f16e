import { defineConformanceSuite, defineGuestConformanceSuite } from '@guestmem/conformance';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

defineConformanceSuite({
  name: 'gunyah-sim (simulated Gunyah v17)',
  create: () => new GunyahHypervisor(),
  // Without guest cooperation a lent page the guest touched refuses reclaim, so conversion can fail.
  createRefusing: () => new GunyahHypervisor({ guestCooperates: false }),
});

defineGuestConformanceSuite({ name: 'gunyah-sim (simulated Gunyah v17)', create: () => new GunyahHypervisor() });
