// KVM_CREATE_VM: a VM fd of a machine type that KVM_CAP_VM_TYPES lists.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { KVM_CAP_VM_TYPES, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM, openKvm } from '@guestmem/kvm';

const kvm = openKvm({ driver: 'sim' }); // built with CONFIG_KVM_SW_PROTECTED_VM
const types = kvm.checkExtension(KVM_CAP_VM_TYPES);
assert.ok(types & (1 << KVM_X86_DEFAULT_VM));
assert.ok(types & (1 << KVM_X86_SW_PROTECTED_VM));

const vm = kvm.createVm(KVM_X86_SW_PROTECTED_VM);
assert.equal(vm.type, KVM_X86_SW_PROTECTED_VM);
vm.close();

// A type the kernel does not offer fails with EINVAL.
assert.throws(
  () => kvm.createVm(KVM_X86_TDX_VM),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);
kvm.close();
