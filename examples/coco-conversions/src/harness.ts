/**
 * A test harness around the simulated kernel: a `KVM_X86_SW_PROTECTED_VM` with guest RAM laid out
 * the way a CoCo VMM lays it out (one guest_memfd for private pages, anonymous host memory for shared
 * pages, one GUEST_MEMFD memslot), a vCPU whose accesses go through the kernel's fault rules, and
 * the host's view of shared memory.
 *
 * The vCPU's run loop is the VMM's: an access that ends in `KVM_EXIT_MEMORY_FAULT` is handed to the
 * {@link PrivateMemoryManager} under test, and the access is retried, exactly like a VMM re-entering
 * `KVM_RUN`.
 */
import { KVM_MEM_GUEST_MEMFD, KVM_X86_SW_PROTECTED_VM, type KvmMemoryFaultExit } from '@guestmem/kvm';
import { memoryFaultExit, openSimKvm, type SimAnonMapping, type SimGuestMemfd, type SimKvm, type SimKvmVm } from '@guestmem/kvm/sim';
import { PrivateMemoryManager } from './vmm.js';

export const RAM_GPA = 0x1_0000_0000n;
const PAGE = 4096;

export interface HarnessOptions {
  /** Guest RAM size in bytes (default 16 pages). */
  ramSize?: number;
  /** Passed to the manager under test. */
  discard?: boolean;
  /** Build your own manager (e.g. a subclass with a bug you want the tests to catch). */
  manager?: (vm: SimKvmVm, regions: ConstructorParameters<typeof PrivateMemoryManager>[1]) => PrivateMemoryManager;
}

export class CocoHarness {
  readonly kvm: SimKvm;
  readonly vm: SimKvmVm;
  readonly memfd: SimGuestMemfd;
  /** The shared side: anonymous host memory at the slot's userspace_addr. */
  readonly ram: SimAnonMapping;
  readonly manager: PrivateMemoryManager;
  readonly ramSize: number;
  /** Every KVM_EXIT_MEMORY_FAULT the vCPU took, in order. */
  readonly faults: KvmMemoryFaultExit[] = [];

  constructor(opts: HarnessOptions = {}) {
    this.ramSize = opts.ramSize ?? 16 * PAGE;
    this.kvm = openSimKvm();
    this.vm = this.kvm.createVm(KVM_X86_SW_PROTECTED_VM);
    this.memfd = this.vm.createGuestMemfd({ size: this.ramSize, flags: 0n });
    this.ram = this.kvm.mmapAnonymous(this.ramSize);
    this.vm.setUserMemoryRegion2({
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: RAM_GPA,
      memorySize: this.ramSize,
      userspace: { mapping: this.ram },
      guestMemfdOffset: 0,
      guestMemfd: this.memfd.fd,
    });
    const regions = [{ gpa: RAM_GPA, size: BigInt(this.ramSize), memfd: this.memfd, memfdOffset: 0n, shared: this.ram }];
    this.manager = opts.manager ? opts.manager(this.vm, regions) : new PrivateMemoryManager(this.vm, regions, { discard: opts.discard });
  }

  /**
   * One vCPU access as an SNP/TDX guest makes it: `private` says which kind the guest used (its
   * C-bit / shared bit). Memory-fault exits go to the manager and the access is retried; any other
   * failure (EHWPOISON, MMIO, …) is thrown to the caller.
   */
  access(gpa: bigint, len: number, kind: 'private' | 'shared', write?: number): Uint8Array {
    for (;;) {
      try {
        const out = this.vm.guestAccess({ gpa, len, private: kind === 'private', write: write !== undefined, fill: write });
        this.manager.vcpuProgressed();
        return out;
      } catch (e) {
        const exit = memoryFaultExit(e);
        // api.rst: only EFAULT/EHWPOISON come with a memory-fault record; EHWPOISON is not a conversion request.
        if (!exit || (e as { code?: string }).code !== 'EFAULT') throw e;
        this.faults.push(exit);
        this.manager.handleMemoryFault(exit);
      }
    }
  }

  /** What the host (device emulation, a compromised VMM…) sees at `gpa`: the shared side only. */
  hostRead(gpa: bigint, len: number): Uint8Array {
    return this.ram.read(Number(gpa - RAM_GPA), len);
  }

  /** Host bytes held right now (guest_memfd + anonymous memory), as the allocator accounts them. */
  bytesInUse(): number {
    return this.kvm.stats().memory.bytesInUse;
  }

  close(): void {
    this.vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
    this.ram.munmap();
    this.memfd.close();
    this.vm.close();
  }
}
