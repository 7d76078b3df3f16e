import { GunyahAckHypervisor, GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import { Toyvisor } from '../../../examples/custom-backend/src/toyvisor.js';
import { defineAdversarialSuite } from './adversarial-suite.js';

defineAdversarialSuite({ name: 'kvm-sim (SW_PROTECTED)', create: () => openKvmHypervisor({ driver: 'sim' }) });
defineAdversarialSuite({
  name: 'kvm-sim (swProtectedVm: false)',
  create: () => openKvmHypervisor({ driver: 'sim', swProtectedVm: false }),
});
defineAdversarialSuite({ name: 'gunyah-sim (v17)', create: () => new GunyahHypervisor() });
for (const generation of ['C', 'A', 'B'] as const) {
  defineAdversarialSuite({ name: `gunyah-ack-sim (generation ${generation})`, create: () => new GunyahAckHypervisor({ generation }) });
}
defineAdversarialSuite({ name: 'toyvisor', create: () => new Toyvisor() });
