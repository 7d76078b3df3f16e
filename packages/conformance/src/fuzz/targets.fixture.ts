/**
 * The backends the fuzzer runs on (test-side only: the conformance package itself depends on core
 * alone). Native KVM is in `fuzz.native.test.ts`, which runs in the native project.
 */
import { GunyahHypervisor } from '@guestmem/gunyah';
import { KvmHypervisor, openKvm, probeNativeKvm } from '@guestmem/kvm';
import { Toyvisor } from '../../../../examples/custom-backend/src/toyvisor.js';
import type { DeviationId } from './deviations.js';
import type { FuzzTarget } from './runner.js';

/** Deviations every backend shows today (see deviations.ts). */
const PENDING_EVERYWHERE: DeviationId[] = ['views-survive-hypervisor-close', 'error-backend-id', 'range-errno', 'map-past-end-succeeds'];

/** The KVM adapter's pending ones (the same on the simulated and the real kernel). */
export const KVM_PENDING: DeviationId[] = [...PENDING_EVERYWHERE, 'punch-past-end-succeeds', 'file-overlap-einval', 'binding-at-2^64-refused', 'shared-data-lives-in-binding', 'shared-keeps-private-bytes'];

export const SIM_TARGETS: FuzzTarget[] = [
  { name: 'kvm-sim (SW_PROTECTED VMs)', create: () => new KvmHypervisor(openKvm({ driver: 'sim' })), tolerate: KVM_PENDING },
  { name: 'kvm-sim (swProtectedVm: false)', create: () => new KvmHypervisor(openKvm({ driver: 'sim', swProtectedVm: false })), tolerate: KVM_PENDING },
  { name: 'gunyah-sim', create: () => new GunyahHypervisor(), tolerate: [...PENDING_EVERYWHERE, 'guest-access-bad-gpa-efault', 'huge-bind-needs-2mib', 'punch-past-end-succeeds', 'private-by-default-host-readable', 'lent-untouched-host-accessible', 'shared-keeps-private-bytes', 'reserved-dtb-gpa', 'map-refused-while-lent', 'guest-fault-while-host-mapped', 'unbind-sanitizes-private'] },
  { name: 'toyvisor', create: () => new Toyvisor(), tolerate: [...PENDING_EVERYWHERE, 'guest-access-bad-gpa-efault', 'punch-past-end-succeeds', 'shared-keeps-private-bytes', 'private-by-default-host-readable'] },
];

export function nativeTarget(): FuzzTarget {
  const probe = probeNativeKvm();
  return {
    name: 'kvm (native /dev/kvm)',
    create: () => new KvmHypervisor(openKvm({ driver: 'native' })),
    skip: probe.available ? false : probe.reason,
    tolerate: [...KVM_PENDING, 'gpa-above-host-phys-bits'],
  };
}

/** Sequences per target: 1,000 in the test command, more with FUZZ_SEQUENCES (the `fuzz` script). */
export const SEQUENCES = Number(process.env.FUZZ_SEQUENCES ?? 1000);
