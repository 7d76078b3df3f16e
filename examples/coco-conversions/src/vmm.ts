/**
 * The code under test: the private-memory half of a confidential-computing VMM, written against
 * KVM's uAPI exactly as it would run on an SEV-SNP/TDX host (`KvmVm`, `KvmGuestMemfd` from
 * `@guestmem/kvm`; nothing here is simulator-specific).
 *
 * It owns guest RAM as regions — a guest_memfd range for private pages plus ordinary host memory at
 * `userspace_addr` for shared pages — and handles the guest's two ways of converting a page:
 * - **explicit**: a `KVM_HC_MAP_GPA_RANGE` hypercall exit (SNP page-state change, TDX MapGPA) →
 *   {@link PrivateMemoryManager.mapGpaRange};
 * - **implicit**: a `KVM_EXIT_MEMORY_FAULT` (the guest touched a page in the other state) →
 *   {@link PrivateMemoryManager.handleMemoryFault}, as QEMU does.
 * After each conversion it frees the side that is no longer used (punch the guest_memfd when a page
 * goes shared, `MADV_DONTNEED` the host memory when it goes private), as Cloud Hypervisor and QEMU
 * do, so the VM never holds two copies of a page.
 */
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  MADV_DONTNEED,
  type KvmGuestMemfd,
  type KvmMemoryFaultExit,
  type KvmVm,
} from '@guestmem/kvm';

/** Host memory the VMM can discard (an anonymous mapping: `madvise`). */
export interface DiscardableMemory {
  madvise(offset: bigint | number, len: bigint | number, advice: number): void;
}

/** One range of guest RAM: one memslot with its private and shared backing. */
export interface RamRegion {
  readonly gpa: bigint;
  readonly size: bigint;
  /** Private side. */
  readonly memfd: KvmGuestMemfd;
  readonly memfdOffset: bigint;
  /** Shared side (the slot's `userspace_addr`). */
  readonly shared: DiscardableMemory;
}

/** Counters a test can assert on. */
export interface ConversionStats {
  toPrivate: number;
  toShared: number;
  punchedBytes: bigint;
  discardedBytes: bigint;
}

export class PrivateMemoryManager {
  readonly stats: ConversionStats = { toPrivate: 0, toShared: 0, punchedBytes: 0n, discardedBytes: 0n };
  private lastFault: string | undefined;

  /**
   * @param discard free the unused side after each conversion (default true). A VMM that must keep
   *   shared data across a round trip (the kernel selftest's handler) passes false.
   */
  constructor(
    private readonly vm: KvmVm,
    private readonly regions: readonly RamRegion[],
    private readonly opts: { discard?: boolean } = {},
  ) {}

  /** The guest's MAP_GPA_RANGE request: make `[gpa, gpa+size)` private or shared. */
  mapGpaRange(gpa: bigint, size: bigint, toPrivate: boolean): void {
    this.vm.setMemoryAttributes({ address: gpa, size, attributes: toPrivate ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n, flags: 0 });
    if (toPrivate) this.stats.toPrivate++;
    else this.stats.toShared++;
    if (this.opts.discard === false) return;
    for (const r of this.regions) {
      const lo = gpa > r.gpa ? gpa : r.gpa;
      const hi = gpa + size < r.gpa + r.size ? gpa + size : r.gpa + r.size;
      if (lo >= hi) continue;
      if (toPrivate) {
        r.shared.madvise(lo - r.gpa, hi - lo, MADV_DONTNEED);
        this.stats.discardedBytes += hi - lo;
      } else {
        r.memfd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r.memfdOffset + (lo - r.gpa), hi - lo);
        this.stats.punchedBytes += hi - lo;
      }
    }
  }

  /**
   * `KVM_EXIT_MEMORY_FAULT` (KVM_RUN returned -1 with EFAULT): convert the faulting range to the
   * kind the guest used, then let the vCPU retry. api.rst asks userspace to guard against the same
   * fault coming back: a repeat means the conversion did not help, and is reported instead of looping.
   */
  handleMemoryFault(exit: KvmMemoryFaultExit): void {
    const { flags, gpa, size } = exit.memoryFault;
    const key = `${flags}:${gpa}:${size}`;
    if (key === this.lastFault)
      throw new Error(`the same memory fault repeated at gpa 0x${gpa.toString(16)}: conversion did not resolve it`);
    this.lastFault = key;
    this.mapGpaRange(gpa, size, (flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0n);
  }

  /** The vCPU made progress: a later identical fault is a new one. */
  vcpuProgressed(): void {
    this.lastFault = undefined;
  }
}
