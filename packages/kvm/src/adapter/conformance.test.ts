import { defineConformanceSuite, defineGuestConformanceSuite } from '@guestmem/conformance';
import { openKvmHypervisor } from './register.js';

// The default simulated kernel: 6.18 with CONFIG_KVM_SW_PROTECTED_VM, so the suite's confidential
// cases run on a KVM_X86_SW_PROTECTED_VM.
defineConformanceSuite({
  name: 'kvm-sim (simulated 6.18 kernel, SW_PROTECTED VMs)',
  create: () => openKvmHypervisor({ driver: 'sim' }),
});

// The probe machine's configuration (no memory attributes): what the native suite sees here.
defineConformanceSuite({
  name: 'kvm-sim (simulated 6.18 kernel as built on the probe machine)',
  create: () => openKvmHypervisor({ driver: 'sim', swProtectedVm: false }),
});

defineGuestConformanceSuite({ name: 'kvm-sim (SW_PROTECTED kernel)', create: () => openKvmHypervisor({ driver: 'sim' }) });
defineGuestConformanceSuite({
  name: 'kvm-sim (as built on the probe machine)',
  create: () => openKvmHypervisor({ driver: 'sim', swProtectedVm: false }),
});
