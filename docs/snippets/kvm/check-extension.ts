// KVM_CHECK_EXTENSION: ask the system fd (or a VM fd) what the kernel offers.
import assert from 'node:assert/strict';
import { KVM_CAP_GUEST_MEMFD, KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_USER_MEMORY2, openKvm } from '@guestmem/kvm';

// 'sim' runs anywhere; on a host with /dev/kvm, { driver: 'native' } gives the kernel's answers.
const kvm = openKvm({ driver: 'sim' });
assert.equal(kvm.checkExtension(KVM_CAP_GUEST_MEMFD), 1);
assert.equal(kvm.checkExtension(KVM_CAP_USER_MEMORY2), 1);
// A bit mask: GUEST_MEMFD_FLAG_MMAP (1) | GUEST_MEMFD_FLAG_INIT_SHARED (2) on Linux 6.18.
assert.equal(kvm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS), 3);
// An unknown capability answers 0, never an error.
assert.equal(kvm.checkExtension(100_000), 0);
kvm.close();
