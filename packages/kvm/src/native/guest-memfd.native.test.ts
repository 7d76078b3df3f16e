import { describe } from 'vitest';
import { openKvm } from '../open.js';
import { defineGuestMemfdSelftests } from '../selftests/guest-memfd.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping guest_memfd selftests: ${probe.reason}`);

describe.skipIf(!probe.available)('native /dev/kvm: ported guest_memfd selftests', () => {
  defineGuestMemfdSelftests(() => openKvm({ driver: 'native' }));
});
