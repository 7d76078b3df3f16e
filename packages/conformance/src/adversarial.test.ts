import { GunyahAckHypervisor, GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import { Toyvisor } from '../../../examples/custom-backend/src/toyvisor.js';
import { type AdversarialTarget, defineAdversarialSuite, defineErrorAttacks, defineLifetimeAttacks } from './adversarial-suite.js';

function attackAll(target: AdversarialTarget): void {
  defineAdversarialSuite(target);
  defineLifetimeAttacks(target);
  defineErrorAttacks(target);
}

attackAll({ name: 'kvm-sim (SW_PROTECTED)', create: () => openKvmHypervisor({ driver: 'sim' }) });
attackAll({
  name: 'kvm-sim (swProtectedVm: false)',
  create: () => openKvmHypervisor({ driver: 'sim', swProtectedVm: false }),
});
attackAll({ name: 'gunyah-sim (v17)', create: () => new GunyahHypervisor() });
for (const generation of ['C', 'A', 'B'] as const) {
  attackAll({ name: `gunyah-ack-sim (generation ${generation})`, create: () => new GunyahAckHypervisor({ generation }) });
}
attackAll({ name: 'toyvisor', create: () => new Toyvisor() });
