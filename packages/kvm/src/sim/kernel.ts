import { ArenaFolioAllocator, type FolioAllocator } from '@guestmem/core';
import type { KvmProfile } from '../api.js';
import { SimAddressSpace } from './address-space.js';
import { SimFdTable } from './fd-table.js';
import type { SimMapping } from './guest-memfd.js';
import type { SimVmState } from './vm.js';

/** Options of a simulated kernel (`openSimKvm`). */
export interface SimKernelOptions {
  /** Which kernel to reproduce (default `'6.18'`). */
  profile?: KvmProfile;
  /** Where every guest_memfd's folios come from (default: a private arena allocator). Share one to account globally. */
  allocator?: FolioAllocator;
}

/**
 * The state one simulated kernel-plus-process owns: the fd table, the host address space, the page
 * allocator (like `Unevictable` in meminfo) and the live VMs. Each `openSimKvm()` gets its own.
 */
export class SimKernel {
  readonly profile: KvmProfile;
  readonly fds = new SimFdTable();
  readonly addressSpace = new SimAddressSpace<SimMapping>();
  readonly allocator: FolioAllocator;
  /** VMs not yet destroyed (a VM lives while its fd or any guest_memfd file of it lives). */
  readonly vms = new Set<SimVmState>();
  /** Live guest_memfd files (`struct file`), for introspection. */
  liveGuestMemfds = 0;
  private nextIno = 0x1000n;

  constructor(opts: SimKernelOptions = {}) {
    this.profile = opts.profile ?? '6.18';
    this.allocator = opts.allocator ?? new ArenaFolioAllocator();
  }

  /** A fresh anon-inode number (distinct per guest_memfd, research §2.2 P4). */
  allocIno(): bigint {
    return this.nextIno++;
  }
}
