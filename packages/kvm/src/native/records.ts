/**
 * What the native driver created, as the kernel holds it: VMs (with their references and memslots)
 * and guest_memfd files (with their size, flags and bound ranges). Two uses, both off the hot path
 * (records change only in memslot ioctls and on create/close):
 * - owned mappings: a slot created through the safe API pins its mapping's address range until the
 *   slot is deleted or the kernel destroys the VM (`slot-memory.ts`);
 * - diagnosis: after the kernel refuses a memslot ioctl, the simulator's rules are judged against
 *   this record to name the most likely rule (`diagnosis.ts`).
 *
 * The references mirror the kernel's (docs/kvm-guest-memfd.md §2.12): the VM fd, every guest_memfd file (which pins
 * its VM while any fd or file mapping of it is open), every vCPU fd. They are counted from what this
 * driver opened; an fd duplicated or passed on by other means is invisible here (documented limit).
 */
import type { SlotReferencedMapping } from '../slot-memory.js';

/** One memslot as this driver created it. */
export interface NativeSlotRecord {
  readonly id: number;
  flags: number;
  baseGfn: bigint;
  readonly npages: number;
  readonly userspaceAddr: bigint;
  /** The owned mapping behind `userspaceAddr` (safe API), pinned while the slot lives. */
  mapping: SlotReferencedMapping | undefined;
  /** The bound guest_memfd file and page range; null once the file was released (an orphan slot). */
  gmem: { readonly file: NativeGmemFileRecord; readonly first: number; readonly end: number } | null;
}

/** `struct kvm`, as far as this driver can see it. */
export class NativeVmRecord {
  #refs = 1;
  destroyed = false;
  readonly slots = new Map<number, NativeSlotRecord>();
  constructor(readonly type: number) {}

  get(): void {
    this.#refs++;
  }

  /** Drops one reference; the last one destroys the VM, which frees its memslots (and their pins). */
  put(): void {
    if (--this.#refs > 0) return;
    this.destroyed = true;
    for (const slot of this.slots.values()) releaseSlot(slot);
    this.slots.clear();
  }
}

/** A guest_memfd file (`struct file`): one per KVM_CREATE_GUEST_MEMFD, shared by its dups. */
export class NativeGmemFileRecord {
  /** fds (the creating one and dups) plus file mappings. */
  #refs = 1;
  /** Bound page ranges by slot id. */
  readonly bindings = new Map<number, NativeSlotRecord>();
  constructor(
    readonly vm: NativeVmRecord,
    readonly size: bigint,
    readonly flags: bigint,
  ) {
    // The file pins its VM (kvm_get_kvm in __kvm_gmem_create).
    vm.get();
  }

  get(): void {
    this.#refs++;
  }

  /** Drops one reference; the last one releases the file: bound slots become orphans, the VM pin goes. */
  put(): void {
    if (--this.#refs > 0) return;
    for (const slot of this.bindings.values()) slot.gmem = null;
    this.bindings.clear();
    this.vm.put();
  }

  /** The id of a slot bound to file pages overlapping `[first, end)`. */
  boundSlotIn(first: number, end: number): number | undefined {
    for (const s of this.bindings.values()) if (s.gmem && s.gmem.first < end && first < s.gmem.end) return s.id;
    return undefined;
  }
}

/** The slot is gone: unbind it from its file and release its mapping's pin. */
export function releaseSlot(slot: NativeSlotRecord): void {
  slot.gmem?.file.bindings.delete(slot.id);
  slot.gmem = null;
  slot.mapping?.unpinForSlot();
  slot.mapping = undefined;
}

/** guest_memfd files by the fd numbers this driver holds for them (the `guest_memfd` field of REGION2). */
export const gmemFds = new Map<number, NativeGmemFileRecord>();
