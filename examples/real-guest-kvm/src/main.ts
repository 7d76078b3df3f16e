#!/usr/bin/env node
import { probeNativeKvm } from '@guestmem/kvm';
import { runRealGuest } from './real-guest.js';

const probe = probeNativeKvm();
if (!probe.available) {
  console.log(`real-guest-kvm needs a native /dev/kvm with guest_memfd: ${probe.reason}`);
  process.exit(0);
}
runRealGuest();
