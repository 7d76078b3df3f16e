// KVM_CREATE_VCPU, KVM_SET_SREGS/KVM_SET_REGS and KVM_RUN: real guest code, so the native driver
// only (the simulated kernel has no instruction emulator). Skips with the reason elsewhere.
import assert from 'node:assert/strict';
import { KVM_EXIT_HLT, asNativeVm, enterRealMode, openKvm, probeNativeKvm } from '@guestmem/kvm';

const probe = probeNativeKvm();
if (!probe.available) {
  console.warn(`run-vcpu snippet skipped: ${probe.reason}`);
} else {
  const kvm = openKvm({ driver: 'native' });
  const vm = asNativeVm(kvm.createVm(0));
  const ram = kvm.mmapAnonymous(4096);
  ram.write(0, new Uint8Array([0xf4])); // hlt
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 4096, userspace: { mapping: ram, offset: 0 } });
  const vcpu = vm.createVcpu(0);
  enterRealMode(vcpu, 0, 0); // CS:IP = 0000:0000, KVM_SET_SREGS + KVM_SET_REGS
  const exit = vcpu.run({ timeoutMs: 5000 });
  assert.equal(exit.reason, KVM_EXIT_HLT);
  vcpu.close();
  vm.close();
  ram.munmap();
  kvm.close();
}
