import { defineConformanceSuite, defineGuestConformanceSuite } from '@guestmem/conformance';
import { openKvm } from '../open.js';
import { probeNativeKvm } from '../native/probe.js';
import { KvmHypervisor } from './kvm-hypervisor.js';

const probe = probeNativeKvm();
defineConformanceSuite({
  name: 'kvm (native /dev/kvm)',
  create: () => new KvmHypervisor(openKvm({ driver: 'native' })),
  skip: probe.available ? false : probe.reason,
});

defineGuestConformanceSuite({ name: 'kvm (native /dev/kvm)', create: () => new KvmHypervisor(openKvm({ driver: 'native' })), skip: probe.available ? false : probe.reason });
