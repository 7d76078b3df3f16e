import { ArenaFolioAllocator, type FolioAllocator } from '@guestmem/core';
import type { KvmProfile } from '../api.js';
import { SimAddressSpace } from './address-space.js';
import { SimFdTable } from './fd-table.js';
import { sysErr } from './errors.js';
import type { SimMapping } from './guest-memfd.js';
import type { SimAnonMapping } from './anon-memory.js';
import type { SimVmState } from './vm-state.js';
import { PROBE_HOST_CONFIG, SW_PROTECTED_CONFIG, type SimKernelConfig } from './vm-types.js';

/** Options of a simulated kernel (`openSimKvm`). */
export interface SimKernelOptions {
  /** Which kernel to reproduce (default `'6.18'`). */
  profile?: KvmProfile;
  /** Where every guest_memfd's folios come from (default: a private arena allocator). Share one to account globally. */
  allocator?: FolioAllocator;
  /**
   * Build the kernel with `CONFIG_KVM_SW_PROTECTED_VM=y` (default true): `KVM_X86_SW_PROTECTED_VM`
   * (type 1) in `KVM_CAP_VM_TYPES`, `KVM_SET_MEMORY_ATTRIBUTES` implemented. `false` gives exactly the
   * probe machine (`KVM_SET_MEMORY_ATTRIBUTES` → ENOTTY, type 1 → EINVAL), which is what the
   * differential suite compares with the real kernel.
   */
  swProtectedVm?: boolean;
  /**
   * Guest-physical address bits the MMU supports (default 52): a memslot whose last page lies at or
   * above `2^maxGpaBits` is EINVAL (`kvm_mmu_max_gfn()`, checked for new and moved slots). The
   * kernel derives it as `tdp_enabled ? kvm_host.maxphyaddr : 52`: 52 on a shadow-MMU host such as
   * the probe machine (PVM, `kvm.tdp_mmu=N`, although its CPUID reports 48 physical bits; probed:
   * a slot ending at 2^52 is accepted, one at 2^52 refused), the host's MAXPHYADDR with EPT/NPT.
   */
  maxGpaBits?: number;
  /**
   * What a guest data access to a gmem-only slot (guest_memfd with MMAP) whose file was released
   * gives. `'memory-fault'`: `kvm_gmem_get_pfn` fails → KVM_RUN -1 EFAULT with a
   * KVM_EXIT_MEMORY_FAULT record (hardware-virtualised hosts: the MMU fault path serves gmem-only
   * slots from the file). `'mmio'`: KVM_EXIT_MMIO, what the probe machine gives (PVM: guest memory
   * is reached through the slot's `userspace_addr`, and with nothing mapped there the access is
   * emulated as MMIO; measured by the differential guest tests, packages/kvm/src/diff/guest.diff.test.ts).
   * Default: `'mmio'` when `swProtectedVm` is false (the probe machine), else `'memory-fault'`.
   */
  releasedMemoryExit?: 'memory-fault' | 'mmio';
}

/**
 * The state one simulated kernel-plus-process owns: the fd table, the host address space, the page
 * allocator (like `Unevictable` in meminfo) and the live VMs. Each `openSimKvm()` gets its own.
 */
export class SimKernel {
  readonly profile: KvmProfile;
  readonly fds = new SimFdTable();
  readonly config: SimKernelConfig;
  /** See {@link SimKernelOptions.releasedMemoryExit}. */
  readonly releasedMemoryExit: 'memory-fault' | 'mmio';
  /** Host address space: guest_memfd mappings and anonymous memory (both usable as `userspace_addr`). */
  readonly addressSpace = new SimAddressSpace<SimMapping | SimAnonMapping>();
  readonly allocator: FolioAllocator;
  /** `kvm_mmu_max_gfn()`: the highest guest frame a memslot may reach (see {@link SimKernelOptions.maxGpaBits}). */
  readonly maxGfn: bigint;
  /** VMs not yet destroyed (a VM lives while its fd or any guest_memfd file of it lives). */
  readonly vms = new Set<SimVmState>();
  /** Live guest_memfd files (`struct file`), for introspection. */
  liveGuestMemfds = 0;
  private nextIno = 0x1000n;

  constructor(opts: SimKernelOptions = {}) {
    this.profile = opts.profile ?? '6.18';
    this.config = opts.swProtectedVm === false ? PROBE_HOST_CONFIG : SW_PROTECTED_CONFIG;
    this.releasedMemoryExit = opts.releasedMemoryExit ?? (opts.swProtectedVm === false ? 'mmio' : 'memory-fault');
    this.allocator = opts.allocator ?? new ArenaFolioAllocator();
    const bits = opts.maxGpaBits ?? 52;
    if (!Number.isInteger(bits) || bits < 13 || bits > 64)
      throw sysErr('EINVAL', 'openSimKvm', undefined, `maxGpaBits must be an integer in [13, 64], got ${bits}`, { maxGpaBits: bits });
    this.maxGfn = (1n << BigInt(bits - 12)) - 1n;
  }

  /** A fresh anon-inode number (distinct per guest_memfd, docs/kvm-guest-memfd.md §2.2 P4). */
  allocIno(): bigint {
    return this.nextIno++;
  }
}
