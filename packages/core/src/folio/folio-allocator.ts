import { gmErr } from '../errors/guest-mem-error.js';
import { PAGE_SIZE } from '../types/brands.js';

/**
 * A folio is the unit of backing memory: order 0 (one 4 KiB page) or order 9 (a 2 MiB huge folio,
 * 512 contiguous pages). Folios are integer handles (page frame numbers into the allocator's
 * arenas), never JS objects, and are never migrated, swapped or evicted: nothing can move one.
 */
export type FolioOrder = 0 | 9;

/** Allocator accounting, like the `Unevictable` line of /proc/meminfo. */
export interface FolioStats {
  /** Bytes held by live folios. */
  readonly bytesInUse: number;
  /** Highest `bytesInUse` ever seen. */
  readonly peakBytes: number;
  /** The allocation limit (`Infinity` when unlimited); allocation beyond it fails with ENOMEM. */
  readonly limitBytes: number;
  /** Live folios of each order. */
  readonly folios: { readonly order0: number; readonly order9: number };
  /** Bytes of poisoned pages taken out of service forever (never handed out again). */
  readonly quarantinedBytes: number;
  /** Bytes of arena memory reserved from the JS heap. */
  readonly arenaBytes: number;
  /** Successful allocations since creation. */
  readonly allocations: number;
}

/**
 * Hands out folios. Injectable under the `FOLIO_ALLOCATOR` token so tests can swap in
 * {@link FaultInjectingAllocator}.
 *
 * Contract:
 * - A new folio is **not** zeroed and **not** uptodate: zeroing happens at {@link prepare}, as in the
 *   kernel. No one may read a folio's bytes before it is prepared; {@link view} enforces that.
 * - Freeing clears uptodate, so a recycled folio must be prepared (zeroed) again before anyone sees
 *   it: a freed folio is never handed out with old contents visible.
 * - A poisoned folio is quarantined when freed: it is never handed out again.
 */
export interface FolioAllocator {
  /** Allocates a folio; throws `ENOMEM` (GuestMemError) when over the limit or out of memory. */
  alloc(order: FolioOrder): number;
  /** Like {@link alloc} but returns -1 instead of throwing (bulk paths). */
  tryAlloc(order: FolioOrder): number;
  /** Returns a folio. Freeing twice throws. */
  free(folio: number): void;
  orderOf(folio: number): FolioOrder;
  isUptodate(folio: number): boolean;
  /** Zeroes the whole folio and marks it uptodate (idempotent). */
  prepare(folio: number): void;
  /** Clears uptodate without zeroing (a prepare hook that failed). */
  clearUptodate(folio: number): void;
  isPoisoned(folio: number): boolean;
  setPoisoned(folio: number): void;
  /** Bytes of an uptodate folio (`length` = folio size). Throws if the folio is not uptodate. */
  view(folio: number): Uint8Array;
  stats(): FolioStats;
}

/** Options of {@link ArenaFolioAllocator}. */
export interface ArenaAllocatorOptions {
  /** Maximum bytes in live folios; default unlimited. */
  limitBytes?: number;
  /** Arena size in MiB (a multiple of 2); default 64. */
  arenaMiB?: number;
}

const F_ALLOCATED = 1;
const F_UPTODATE = 2;
const F_POISONED = 4;
const F_HUGE_HEAD = 8;
const HUGE_PAGES = 512;

/**
 * The default allocator: large `ArrayBuffer` arenas cut into 2 MiB chunks; order-9 folios take a
 * whole chunk, order-0 folios are carved from split chunks. Metadata is one byte per page (flags)
 * plus free stacks, all typed arrays.
 *
 * A chunk split into 4 KiB pages goes back to the huge pool when all its pages are free and an
 * order-9 allocation would otherwise need a new arena (a simple compaction pass).
 */
export class ArenaFolioAllocator implements FolioAllocator {
  private readonly arenaPages: number;
  private readonly arenaShift: number;
  private readonly limit: number;
  private arenas: Uint8Array[] = [];
  private flags = new Uint8Array(0);
  private free0 = new Int32Array(1024);
  private free0Len = 0;
  private chunks = new Int32Array(64);
  private chunksLen = 0;
  /** Free order-0 pages per chunk, for chunks that were split (else 0). */
  private chunkFree = new Uint16Array(0);
  private splitChunk = new Uint8Array(0);
  private inUse = 0;
  private peak = 0;
  private live0 = 0;
  private live9 = 0;
  private quarantined = 0;
  private allocs = 0;

  constructor(opts: ArenaAllocatorOptions = {}) {
    const mib = opts.arenaMiB ?? 64;
    if (!(mib >= 2 && (mib & (mib - 1)) === 0)) throw new RangeError(`arenaMiB must be a power of two ≥ 2: ${mib}`);
    this.arenaPages = (mib * 1024 * 1024) / PAGE_SIZE;
    this.arenaShift = Math.log2(this.arenaPages);
    this.limit = opts.limitBytes ?? Infinity;
  }

  alloc(order: FolioOrder): number {
    const f = this.tryAlloc(order);
    if (f < 0) {
      throw gmErr('ENOMEM', 'alloc', 'core', `folio of order ${order}: ${this.inUse} bytes in use, limit ${this.limit}`, {
        info: { order, bytesInUse: this.inUse, limitBytes: this.limit },
      });
    }
    return f;
  }

  tryAlloc(order: FolioOrder): number {
    const bytes = order === 9 ? HUGE_PAGES * PAGE_SIZE : PAGE_SIZE;
    if (this.inUse + bytes > this.limit) return -1;
    let pfn: number;
    if (order === 0) {
      if (this.free0Len === 0 && !this.splitOneChunk()) return -1;
      pfn = this.free0[--this.free0Len]!;
      this.chunkFree[pfn >>> 9]!--;
      this.flags[pfn] = F_ALLOCATED;
      this.live0++;
    } else {
      if (this.chunksLen === 0 && !this.reclaimSplitChunks() && !this.addArena()) return -1;
      pfn = this.chunks[--this.chunksLen]!;
      this.flags[pfn] = F_ALLOCATED | F_HUGE_HEAD;
      this.live9++;
    }
    this.inUse += bytes;
    if (this.inUse > this.peak) this.peak = this.inUse;
    this.allocs++;
    return pfn;
  }

  free(folio: number): void {
    const fl = this.flags[folio];
    if (fl === undefined || !(fl & F_ALLOCATED)) throw new Error(`ArenaFolioAllocator: double free or bad folio ${folio}`);
    const huge = (fl & F_HUGE_HEAD) !== 0;
    this.inUse -= huge ? HUGE_PAGES * PAGE_SIZE : PAGE_SIZE;
    if (huge) this.live9--;
    else this.live0--;
    if (fl & F_POISONED) {
      // Hardware-poisoned memory is never reused: keep the flags, forget the folio.
      this.flags[folio] = F_POISONED;
      this.quarantined += huge ? HUGE_PAGES * PAGE_SIZE : PAGE_SIZE;
      return;
    }
    this.flags[folio] = 0;
    if (huge) {
      this.pushChunk(folio);
    } else {
      if (this.free0Len === this.free0.length) this.free0 = growI32(this.free0);
      this.free0[this.free0Len++] = folio;
      this.chunkFree[folio >>> 9]!++;
    }
  }

  orderOf(folio: number): FolioOrder {
    return this.flags[folio]! & F_HUGE_HEAD ? 9 : 0;
  }

  isUptodate(folio: number): boolean {
    return (this.flags[folio]! & F_UPTODATE) !== 0;
  }

  prepare(folio: number): void {
    if (this.flags[folio]! & F_UPTODATE) return;
    this.raw(folio).fill(0);
    this.flags[folio]! |= F_UPTODATE;
  }

  clearUptodate(folio: number): void {
    this.flags[folio]! &= ~F_UPTODATE;
  }

  isPoisoned(folio: number): boolean {
    return (this.flags[folio]! & F_POISONED) !== 0;
  }

  setPoisoned(folio: number): void {
    this.flags[folio]! |= F_POISONED;
  }

  view(folio: number): Uint8Array {
    if (!(this.flags[folio]! & F_UPTODATE)) throw new Error(`ArenaFolioAllocator: folio ${folio} is not uptodate; prepare it first`);
    return this.raw(folio);
  }

  stats(): FolioStats {
    return {
      bytesInUse: this.inUse,
      peakBytes: this.peak,
      limitBytes: this.limit,
      folios: { order0: this.live0, order9: this.live9 },
      quarantinedBytes: this.quarantined,
      arenaBytes: this.arenas.length * this.arenaPages * PAGE_SIZE,
      allocations: this.allocs,
    };
  }

  /** Bytes of allocator metadata (flags and free stacks). */
  get metadataBytes(): number {
    return this.flags.byteLength + this.free0.byteLength + this.chunks.byteLength + this.chunkFree.byteLength + this.splitChunk.byteLength;
  }

  private raw(folio: number): Uint8Array {
    const arena = this.arenas[folio >>> this.arenaShift]!;
    const off = (folio & (this.arenaPages - 1)) * PAGE_SIZE;
    const len = this.flags[folio]! & F_HUGE_HEAD ? HUGE_PAGES * PAGE_SIZE : PAGE_SIZE;
    return arena.subarray(off, off + len);
  }

  private splitOneChunk(): boolean {
    if (this.chunksLen === 0 && !this.addArena()) return false;
    const head = this.chunks[--this.chunksLen]!;
    while (this.free0Len + HUGE_PAGES > this.free0.length) this.free0 = growI32(this.free0);
    // Push in reverse so pages come out in ascending order.
    for (let p = head + HUGE_PAGES - 1; p >= head; p--) this.free0[this.free0Len++] = p;
    this.chunkFree[head >>> 9] = HUGE_PAGES;
    this.splitChunk[head >>> 9] = 1;
    return true;
  }

  /** Moves split chunks whose pages are all free back to the huge pool. */
  private reclaimSplitChunks(): boolean {
    let any = false;
    const whole = new Uint8Array(this.splitChunk.length);
    for (let c = 0; c < this.splitChunk.length; c++) {
      if (this.splitChunk[c] && this.chunkFree[c] === HUGE_PAGES) {
        whole[c] = 1;
        any = true;
      }
    }
    if (!any) return false;
    let w = 0;
    for (let r = 0; r < this.free0Len; r++) {
      const p = this.free0[r]!;
      if (!whole[p >>> 9]) this.free0[w++] = p;
    }
    this.free0Len = w;
    for (let c = 0; c < whole.length; c++) {
      if (!whole[c]) continue;
      this.splitChunk[c] = 0;
      this.chunkFree[c] = 0;
      this.pushChunk(c * HUGE_PAGES);
    }
    return true;
  }

  private pushChunk(head: number): void {
    if (this.chunksLen === this.chunks.length) this.chunks = growI32(this.chunks);
    this.chunks[this.chunksLen++] = head;
  }

  private addArena(): boolean {
    let arena: Uint8Array;
    try {
      arena = new Uint8Array(this.arenaPages * PAGE_SIZE);
    } catch {
      return false;
    }
    const base = this.arenas.length * this.arenaPages;
    this.arenas.push(arena);
    const pages = base + this.arenaPages;
    const flags = new Uint8Array(pages);
    flags.set(this.flags);
    this.flags = flags;
    const nchunks = pages / HUGE_PAGES;
    const cf = new Uint16Array(nchunks);
    cf.set(this.chunkFree);
    this.chunkFree = cf;
    const sc = new Uint8Array(nchunks);
    sc.set(this.splitChunk);
    this.splitChunk = sc;
    for (let p = pages - HUGE_PAGES; p >= base; p -= HUGE_PAGES) this.pushChunk(p);
    return true;
  }
}

function growI32(a: Int32Array): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}
