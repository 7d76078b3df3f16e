/**
 * A memslot (`struct kvm_memory_slot`): its GPA range, its guest_memfd binding and the guest
 * mappings ("SPTEs") installed through it, with the zap operations invalidation uses (docs/kvm-guest-memfd.md §2.6–§2.8).
 */
import { PageIndex } from '@guestmem/core';
import type { SlotReferencedMapping } from '../slot-memory.js';
import type { SimGmemFile } from './guest-memfd.js';

/** A memslot (`struct kvm_memory_slot`). Replaced, never mutated, by MOVE and FLAGS_ONLY changes. */
export class SimMemslot {
  /** `slot->gmem`: the bound file (NULL once the file is released: an orphan) and first file page. */
  gmem: { file: SimGmemFile | null; readonly pgoff: number } | null = null;
  /** `KVM_MEMSLOT_GMEM_ONLY`: set at bind iff the file has GUEST_MEMFD_FLAG_MMAP (§2.6 step 11). */
  gmemOnly = false;
  /** The owned mapping behind `userspaceAddr` when the slot came from the safe API (pinned while the slot lives). */
  hostMapping: SlotReferencedMapping | null = null;
  /** Installed guest mappings ("SPTEs"): slot page → folio handle. */
  readonly sptes = new SptePages();

  constructor(
    readonly id: number,
    readonly flags: number,
    readonly baseGfn: bigint,
    readonly npages: number,
    readonly userspaceAddr: bigint,
  ) {}

  /** Zaps the SPTEs of file pages `[first, end)` (kvm_gmem_invalidate_begin's gfn range math). */
  zapFilePages(first: number, end: number): void {
    if (!this.gmem) return;
    const lo = Math.max(first, this.gmem.pgoff) - this.gmem.pgoff;
    const hi = Math.min(end, this.gmem.pgoff + this.npages) - this.gmem.pgoff;
    this.sptes.zap(lo, hi);
  }

  /** Zaps the SPTEs of guest frames `[first, end)` (`kvm_unmap_gfn_range`). */
  zapGfns(first: bigint, end: bigint): void {
    const lo = first > this.baseGfn ? Number(first - this.baseGfn) : 0;
    const hi = end < this.endGfn ? Number(end - this.baseGfn) : this.npages;
    this.sptes.zap(lo, hi);
  }

  zapAll(): void {
    this.sptes.zap(0, this.npages);
  }

  /** The file was released: the slot stays, bound to nothing. */
  orphan(): void {
    if (this.gmem) this.gmem.file = null;
  }

  /** `kvm_gmem_unbind` (on delete): a no-op for orphans; never frees file memory (§2.6 B47/B48). */
  unbind(): void {
    this.gmem?.file?.unbind(this);
    if (this.gmem) this.gmem.file = null;
  }

  /** The slot is gone (deleted, or its VM destroyed): its host mapping's range may be released. */
  releaseHostMapping(): void {
    this.hostMapping?.unpinForSlot();
    this.hostMapping = null;
  }

  get endGfn(): bigint {
    return this.baseGfn + BigInt(this.npages);
  }
}

/**
 * A slot's SPTEs: slot page → folio handle, in core's radix {@link PageIndex} (a guest touching
 * 1 GiB installs 262,144 of them; a `Map` costs about 100 ns per insert at that size).
 */
export class SptePages {
  readonly #index = new PageIndex();

  /** The folio mapped at slot page `page`, or undefined. */
  get(page: number): number | undefined {
    const f = this.#index.load(page);
    return f < 0 ? undefined : f;
  }

  has(page: number): boolean {
    return this.#index.load(page) >= 0;
  }

  /** Installs the SPTE of `page` (replacing one already there). */
  set(page: number, folio: number): void {
    this.#index.store(page, folio);
  }

  /** Zaps the SPTEs of slot pages `[first, end)`. */
  zap(first: number, end: number): void {
    if (first < end && this.#index.size > 0) this.#index.eraseRange(first, end);
  }

  get size(): number {
    return this.#index.size;
  }

  /** Installed SPTEs, by slot page (a copy, in page order). */
  entries(): Map<number, number> {
    const out = new Map<number, number>();
    this.#index.forEach(0, 2 ** 52, (page, folio) => out.set(page, folio));
    return out;
  }
}
