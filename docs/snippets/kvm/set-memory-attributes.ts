// KVM_SET_MEMORY_ATTRIBUTES: mark guest frames private (or shared again) on a VM type that has
// private memory. Offered here by the simulated kernel built with CONFIG_KVM_SW_PROTECTED_VM.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { KVM_CAP_MEMORY_ATTRIBUTES, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_X86_SW_PROTECTED_VM, openKvm } from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(KVM_X86_SW_PROTECTED_VM);
assert.equal(BigInt(vm.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES)), KVM_MEMORY_ATTRIBUTE_PRIVATE);
vm.setMemoryAttributes({ address: 0x1_0000_0000n, size: 2 * 4096, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 });
vm.setMemoryAttributes({ address: 0x1_0000_0000n, size: 4096, attributes: 0, flags: 0 }); // back to shared
// Unaligned ranges and unknown attribute bits are EINVAL.
assert.throws(
  () => vm.setMemoryAttributes({ address: 0x1_0000_0800n, size: 4096, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 }),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);
vm.close();
kvm.close();
