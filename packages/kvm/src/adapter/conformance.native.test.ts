import { defineConformanceSuite, defineGuestConformanceSuite } from '@guestmem/conformance';
import { probeNativeKvm } from '../native/probe.js';
import { openKvmHypervisor } from './register.js';

const probe = probeNativeKvm();
defineConformanceSuite({
  name: 'kvm (native /dev/kvm)',
  create: () => openKvmHypervisor({ driver: 'native' }),
  skip: probe.available ? false : probe.reason,
});

defineGuestConformanceSuite({
  name: 'kvm (native /dev/kvm)',
  create: () => openKvmHypervisor({ driver: 'native' }),
  skip: probe.available ? false : probe.reason,
});
