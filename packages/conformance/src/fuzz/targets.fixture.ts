/**
 * The backends the fuzzer runs on (test-side only: the conformance package itself depends on core
 * alone). Native KVM is in `fuzz.native.test.ts`, which runs in the native project.
 */
import { GunyahAckHypervisor, GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor, probeNativeKvm } from '@guestmem/kvm';
import { Toyvisor } from '../../../../examples/custom-backend/src/toyvisor.js';
import type { DeviationId } from './deviations.js';
import type { FuzzTarget } from './runner.js';

/**
 * The KVM adapter's pending deviations and its allowed GPA limit (the same on the simulated and the
 * real kernel). Every other former deviation is now kept by all backends (see regressions.test.ts).
 */
export const KVM_PENDING: DeviationId[] = ['file-overlap-einval', 'shared-data-lives-in-binding', 'gpa-above-host-phys-bits'];

/** What the Gunyah adapters (v17 and ACK) still do differently (see deviations.ts). */
const GUNYAH_PENDING: DeviationId[] = [
  'huge-bind-needs-2mib',
  'reserved-dtb-gpa',
  'map-refused-while-lent',
  'guest-fault-while-host-mapped',
  'unbind-sanitizes-private',
];

export const SIM_TARGETS: FuzzTarget[] = [
  { name: 'kvm-sim (SW_PROTECTED VMs)', create: () => openKvmHypervisor({ driver: 'sim' }), tolerate: KVM_PENDING },
  {
    name: 'kvm-sim (swProtectedVm: false)',
    create: () => openKvmHypervisor({ driver: 'sim', swProtectedVm: false }),
    tolerate: KVM_PENDING,
  },
  { name: 'gunyah-sim', create: () => new GunyahHypervisor(), tolerate: GUNYAH_PENDING },
  // ACK: no 'unbind', 'punch-hole' or conversion; the model expects EOPNOTSUPP (changing nothing) for those.
  { name: 'gunyah-ack-sim (generation C)', create: () => new GunyahAckHypervisor({ generation: 'C' }), tolerate: GUNYAH_PENDING },
  { name: 'toyvisor', create: () => new Toyvisor(), tolerate: [] },
];

export function nativeTarget(): FuzzTarget {
  const probe = probeNativeKvm();
  return {
    name: 'kvm (native /dev/kvm)',
    create: () => openKvmHypervisor({ driver: 'native' }),
    skip: probe.available ? false : probe.reason,
    tolerate: KVM_PENDING,
  };
}

/** Sequences per target: 1,000 in the test command, more with FUZZ_SEQUENCES (the `fuzz` script). */
export const SEQUENCES = Number(process.env.FUZZ_SEQUENCES ?? 1000);
