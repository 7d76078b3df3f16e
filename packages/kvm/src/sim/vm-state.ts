/**
 * `struct kvm`: the VM object behind a VM fd, its references and lifetime (docs/kvm-guest-memfd.md §2.12), its
 * memslots and its memory attributes.
 */
import { RangeStateMap } from '@guestmem/core';
import type { SimGuestTlb } from './guest-access.js';
import type { SimKernel } from './kernel.js';
import type { SimMemslot } from './memslot.js';
import type { SimVmType } from './vm-types.js';

/**
 * `struct kvm`. Its references: the VM file, plus one per live guest_memfd file (the file pins the
 * VM, docs/kvm-guest-memfd.md §2.12). The last reference destroys it and frees its memslots.
 */
export class SimVmState {
  private users = 1;
  destroyed = false;
  /** Ids of the vCPUs created (a vCPU stays with its VM until the VM is destroyed, even after its fd is closed). */
  readonly vcpuIds = new Set<number>();
  /** Memslots of address space 0 by slot id. */
  readonly slots = new Map<number, SimMemslot>();
  /**
   * `kvm->mem_attr_array`: PRIVATE per gfn (true = private). All gfns start shared (api.rst 4.140);
   * run-length encoded, so a whole 2^52-frame range costs one run.
   */
  readonly attributes = new RangeStateMap<boolean>(false);
  /** The guest-access shortcut's last page (see `guest-access.ts`); checked against the SPTE on every use. */
  tlb: SimGuestTlb | undefined;

  constructor(
    readonly kernel: SimKernel,
    readonly vmType: SimVmType,
  ) {
    kernel.vms.add(this);
  }

  get(): void {
    this.users++;
  }

  put(): void {
    if (--this.users > 0) return;
    // kvm_destroy_vm → kvm_free_memslots: every slot is unbound (no live file can still be bound:
    // each would have pinned the VM).
    for (const slot of this.slots.values()) {
      slot.unbind();
      slot.releaseHostMapping();
    }
    this.slots.clear();
    this.destroyed = true;
    this.kernel.vms.delete(this);
  }

  /** The slot whose GPA range contains `gfn`. */
  slotAt(gfn: bigint): SimMemslot | undefined {
    for (const s of this.slots.values()) if (s.baseGfn <= gfn && gfn < s.endGfn) return s;
    return undefined;
  }
}
