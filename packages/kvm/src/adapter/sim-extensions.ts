/**
 * The simulated kernel's extensions for the neutral adapter: guest accesses through
 * `SimKvmVm.guestAccess` and poison injection (`SimGuestMemfd.markPoisoned`). (Anonymous host
 * memory for slots' shared side is `Kvm.mmapAnonymous`, on both drivers.)
 */
import { fileUsage } from '@guestmem/core';
import type { KvmGuestMemfd, KvmVm } from '../api.js';
import { SimGuestMemfd } from '../sim/guest-memfd.js';
import type { SimKvm } from '../sim/kvm.js';
import { SimKvmVm } from '../sim/vm.js';
import type { KvmGuestAccessDriver } from './kvm-hypervisor.js';

function simVm(vm: KvmVm): SimKvmVm {
  if (!(vm instanceof SimKvmVm)) throw new TypeError("the simulated kernel's extensions only drive simulated VMs");
  return vm;
}

/** {@link KvmGuestAccessDriver} for one simulated kernel. */
export function simKvmExtensions(_kvm: SimKvm): KvmGuestAccessDriver {
  return {
    guestRead: (vm, gpa, len) => simVm(vm).guestRead(gpa, len),
    guestWrite: (vm, gpa, data) => simVm(vm).guestWrite(gpa, data),
    markPoisoned: (memfd: KvmGuestMemfd, offset) => {
      if (!(memfd instanceof SimGuestMemfd)) throw new TypeError('not a simulated guest_memfd');
      memfd.markPoisoned(offset);
    },
    usage: (memfd: KvmGuestMemfd) => (memfd instanceof SimGuestMemfd ? fileUsage(memfd.file.core) : undefined),
  };
}
