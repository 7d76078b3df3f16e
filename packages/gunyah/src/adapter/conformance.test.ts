import { defineConformanceSuite } from '@guestmem/conformance';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

defineConformanceSuite({ name: 'gunyah-sim (simulated Gunyah v17)', create: () => new GunyahHypervisor() });
