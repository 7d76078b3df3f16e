/**
 * Port of the kernel selftest `x86/private_mem_kvm_exits_test.c` (docs/kvm-guest-memfd.md §3.4) to the simulated
 * kernel. The C guest loops reading `EXITS_TEST_GVA`; here each loop iteration is one simulated
 * vCPU read (`guestAccess`), and "KVM_RUN returns" is that read throwing. The assertions are the C
 * test's: `KVM_RUN` fails with errno EFAULT, `exit_reason == KVM_EXIT_MEMORY_FAULT` (39),
 * `memory_fault.flags == KVM_MEMORY_EXIT_FLAG_PRIVATE`, `gpa == EXITS_TEST_GPA`, `size == 4096`.
 */
import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import {
  KVM_CAP_VM_TYPES,
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  KVM_MEM_GUEST_MEMFD,
  KVM_X86_SW_PROTECTED_VM,
} from '../uapi/constants.js';
import { memoryFaultExit, openSimKvm, type SimKvm, type SimKvmVm } from './index.js';

const EXITS_TEST_GPA = 0xc000_0000n;
const EXITS_TEST_NPAGES = 1;
const EXITS_TEST_SIZE = EXITS_TEST_NPAGES * 4096;
const EXITS_TEST_SLOT = 10;

/** `vm_create_shape_with_one_vcpu(protected_vm_shape, …)`. */
function protectedVm(): { kvm: SimKvm; vm: SimKvmVm } {
  const kvm = openSimKvm();
  // TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)).
  expect(kvm.checkExtension(KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM)).not.toBe(0);
  return { kvm, vm: kvm.createVm(KVM_X86_SW_PROTECTED_VM) as SimKvmVm };
}

/**
 * `run_vcpu_get_exit_reason` around `guest_repeatedly_read`: runs the read loop (at most `maxIters`
 * reads, calling `between` after each) until KVM_RUN fails; asserts the failure is EFAULT and
 * returns the exit record.
 */
function runUntilExit(vm: SimKvmVm, between: (iteration: number) => void = () => {}, maxIters = 100) {
  for (let i = 0; i < maxIters; i++) {
    try {
      vm.guestAccess({ gpa: EXITS_TEST_GPA, len: 8 });
    } catch (e) {
      expect(e).toBeInstanceOf(GuestMemError);
      // TEST_ASSERT(errno == EFAULT, KVM_IOCTL_ERROR(KVM_RUN, r)).
      expect((e as GuestMemError).code).toBe('EFAULT');
      expect((e as GuestMemError).syscall).toBe('ioctl(KVM_RUN)');
      return { exit: memoryFaultExit(e), iterations: i };
    }
    between(i);
  }
  throw new Error('the guest never exited');
}

describe('private_mem_kvm_exits_test (SW_PROTECTED, docs/kvm-guest-memfd.md §3.4)', () => {
  it('test_private_access_memslot_deleted: deleting the private slot under a reading guest gives EFAULT + MEMORY_FAULT(PRIVATE, gpa, 4096)', () => {
    const { kvm, vm } = protectedVm();
    // vm_userspace_mem_region_add(VM_MEM_SRC_ANONYMOUS, GPA, slot 10, 1 page, KVM_MEM_GUEST_MEMFD):
    // anonymous shared backing plus a fresh guest_memfd for the private side.
    const hva = kvm.mmapAnonymous(EXITS_TEST_SIZE);
    const memfd = vm.createGuestMemfd({ size: EXITS_TEST_SIZE, flags: 0n });
    vm.setUserMemoryRegion2({
      slot: EXITS_TEST_SLOT,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: EXITS_TEST_GPA,
      memorySize: EXITS_TEST_SIZE,
      userspace: { mapping: hva },
      guestMemfdOffset: 0,
      guestMemfd: memfd.fd,
    });
    // vm_mem_set_private: request to access the page privately.
    vm.setMemoryAttributes({ address: EXITS_TEST_GPA, size: EXITS_TEST_SIZE, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 });
    // The vCPU thread reads in a loop; the main thread deletes the slot while it runs.
    const { exit, iterations } = runUntilExit(vm, (i) => {
      if (i === 2)
        vm.setUserMemoryRegion2({
          slot: EXITS_TEST_SLOT,
          flags: 0,
          guestPhysAddr: EXITS_TEST_GPA,
          memorySize: 0,
          guestMemfdOffset: 0,
          guestMemfd: 0,
        });
    });
    expect(iterations).toBe(3); // the reads before the delete were served from guest_memfd
    expect(exit?.exitReason).toBe(KVM_EXIT_MEMORY_FAULT);
    expect(exit?.memoryFault.flags).toBe(KVM_MEMORY_EXIT_FLAG_PRIVATE);
    expect(exit?.memoryFault.gpa).toBe(EXITS_TEST_GPA);
    expect(exit?.memoryFault.size).toBe(BigInt(EXITS_TEST_SIZE));
    // kvm_vm_free.
    memfd.close();
    hva.munmap();
    vm.close();
    expect(kvm.stats()).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0, memory: { bytesInUse: 0 } });
  });

  it('test_private_access_memslot_not_private: a private access to a plain (non-guest_memfd) slot gives EFAULT + MEMORY_FAULT(PRIVATE, gpa, 4096)', () => {
    const { kvm, vm } = protectedVm();
    // Add a non-private memslot (flags = 0).
    const hva = kvm.mmapAnonymous(EXITS_TEST_SIZE);
    vm.setUserMemoryRegion2({
      slot: EXITS_TEST_SLOT,
      flags: 0,
      guestPhysAddr: EXITS_TEST_GPA,
      memorySize: EXITS_TEST_SIZE,
      userspace: { mapping: hva },
      guestMemfdOffset: 0,
      guestMemfd: 0,
    });
    vm.setMemoryAttributes({ address: EXITS_TEST_GPA, size: EXITS_TEST_SIZE, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 });
    const { exit, iterations } = runUntilExit(vm);
    expect(iterations).toBe(0);
    expect(exit).toEqual({
      exitReason: KVM_EXIT_MEMORY_FAULT,
      memoryFault: { flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: EXITS_TEST_GPA, size: BigInt(EXITS_TEST_SIZE) },
    });
    hva.munmap();
    vm.close();
    expect(kvm.stats()).toMatchObject({ vms: 0, mappings: 0, memory: { bytesInUse: 0 } });
  });
});
