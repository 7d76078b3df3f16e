import { GuestMemError, gmErr } from '../errors/guest-mem-error.js';
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
  /** Allocates up to `count` order-0 folios into `out`; returns how many (fewer when out of memory). */
  allocMany(out: Int32Array, count: number): number;
  /** Returns a folio. Freeing twice throws. */
  free(folio: number): void;
  /** Returns `folios[0…count)` (the bulk-punch path). */
  freeMany(folios: Int32Array, count: number): void;
  orderOf(folio: number): FolioOrder;
  isUptodate(folio: number): boolean;
  /** Zeroes the whole folio and marks it uptodate (idempotent). */
  prepare(folio: number): void;
  /**
   * {@link prepare} of `folios[0…count)`: the same result, with adjacent folios zeroed together
   * (the bulk fault path).
   */
  prepareMany(folios: Int32Array, count: number): void;
  /** Clears uptodate without zeroing (a prepare hook that failed). */
  clearUptodate(folio: number): void;
  isPoisoned(folio: number): boolean;
  setPoisoned(folio: number): void;
  /** Bytes of an uptodate folio (`length` = folio size). Throws if the folio is not uptodate. */
  view(folio: number): Uint8Array;
  /**
   * The whole arena holding an uptodate folio (throws if it is not uptodate), for hot paths that
   * must not allocate a view per access; the folio's bytes start at {@link arenaOffset}.
   */
  arenaOf(folio: number): Uint8Array;
  /** Byte offset of `folio` inside {@link arenaOf}`(folio)`. */
  arenaOffset(folio: number): number;
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
 * `allocator.alloc(order)` for a file or memory of `backend`: an allocation failure (raised by the
 * shared allocator, which serves every backend, as `'core'`) is re-raised as `backend`'s, for `op`,
 * with the allocator's error as `cause`.
 */
export function allocFolioFor(allocator: FolioAllocator, order: FolioOrder, op: string, backend: string): number {
  try {
    return allocator.alloc(order);
  } catch (e) {
    if (!(e instanceof GuestMemError) || e.backend === backend) throw e;
    throw new GuestMemError({ code: e.code, op, backend, syscall: e.syscall, detail: e.message, info: e.info, cause: e });
  }
}

/**
 * The default allocator: large `ArrayBuffer` arenas cut into 2 MiB chunks; order-9 folios take a
 * whole chunk, order-0 folios are carved from split chunks (lowest free page first, found in a
 * per-chunk free bitmap). Metadata is about 1.2 bytes per page (a flags byte plus one bitmap bit),
 * all typed arrays. A split chunk goes back to the huge pool as soon as all its pages are free.
 */
export class ArenaFolioAllocator implements FolioAllocator {
  /** Largest arena, in pages; arenas start at 2 MiB and double up to this. */
  private readonly arenaPages: number;
  private readonly limit: number;
  private arenas: Uint8Array[] = [];
  private arenaBase: number[] = [];
  private totalPages = 0;
  /** Arena number of every 2 MiB chunk. */
  private chunkArena = new Uint16Array(0);
  /** Per-page flags (F_*): the only per-page metadata besides the free bitmap. */
  private flags = new Uint8Array(0);
  /** One bit per page of a split chunk: set = free. */
  private freeBits = new Uint32Array(0);
  /** Whole free 2 MiB chunks (head page numbers). */
  private chunks = new Int32Array(64);
  private chunksLen = 0;
  /** Split chunks that may have free pages (chunk numbers); stale entries are skipped. */
  private partial = new Int32Array(64);
  private partialLen = 0;
  private inPartial = new Uint8Array(0);
  /** Free pages per split chunk; a chunk whose 512 pages are all free goes back to `chunks`. */
  private chunkFree = new Uint16Array(0);
  private splitChunk = new Uint8Array(0);
  /** Lowest bitmap word of a chunk that may hold a free bit. */
  private chunkHint = new Uint8Array(0);
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
      pfn = this.takePage();
      if (pfn < 0) return -1;
      this.flags[pfn] = F_ALLOCATED;
      this.live0++;
    } else {
      if (this.chunksLen === 0 && !this.addArena()) return -1;
      pfn = this.chunks[--this.chunksLen]!;
      this.flags[pfn] = F_ALLOCATED | F_HUGE_HEAD;
      this.live9++;
    }
    this.inUse += bytes;
    if (this.inUse > this.peak) this.peak = this.inUse;
    this.allocs++;
    return pfn;
  }

  /** Takes the lowest free page of a partly used chunk, splitting a whole chunk when none has one. */
  private takePage(): number {
    const c = this.pickChunk();
    if (c < 0) return -1;
    for (let w = this.chunkHint[c]!; w < 16; w++) {
      const at = c * 16 + w;
      const bits = this.freeBits[at]!;
      if (bits === 0) continue;
      const b = 31 - Math.clz32(bits & -bits);
      this.freeBits[at] = (bits & ~(1 << b)) >>> 0;
      this.chunkHint[c] = w;
      this.chunkFree[c]!--;
      return c * HUGE_PAGES + w * 32 + b;
    }
    throw new Error('ArenaFolioAllocator: free count and bitmap disagree');
  }

  /** A split chunk with free pages (splitting a whole chunk, or adding an arena, when none has one); -1 when out of memory. */
  private pickChunk(): number {
    while (this.partialLen > 0) {
      const top = this.partial[this.partialLen - 1]!;
      if (this.splitChunk[top] && this.chunkFree[top]! > 0) return top;
      this.partialLen--;
      this.inPartial[top] = 0;
    }
    if (this.chunksLen === 0 && !this.addArena()) return -1;
    const c = this.chunks[--this.chunksLen]! >>> 9;
    this.freeBits.fill(0xffffffff, c * 16, c * 16 + 16);
    this.chunkFree[c] = HUGE_PAGES;
    this.splitChunk[c] = 1;
    this.chunkHint[c] = 0;
    this.pushPartial(c);
    return c;
  }

  /**
   * Bulk allocation of order-0 folios into `out[0…)`: up to `count`, fewer when the limit or memory
   * runs out (returns how many). Drains each chunk's free bitmap a word at a time, so a bulk
   * fallocate pays one bookkeeping update per run instead of per page.
   */
  allocMany(out: Int32Array, count: number): number {
    const room = this.limit === Infinity ? count : Math.max(0, Math.floor((this.limit - this.inUse) / PAGE_SIZE));
    const want = Math.min(count, room, out.length);
    let n = 0;
    while (n < want) {
      const c = this.pickChunk();
      if (c < 0) break;
      const flags = this.flags;
      const bits = this.freeBits;
      let taken = 0;
      let w = this.chunkHint[c]!;
      for (; w < 16 && n < want; w++) {
        let word = bits[c * 16 + w]!;
        while (word !== 0 && n < want) {
          const b = 31 - Math.clz32(word & -word);
          word = (word & (word - 1)) >>> 0;
          const f = c * HUGE_PAGES + w * 32 + b;
          flags[f] = F_ALLOCATED;
          out[n++] = f;
          taken++;
        }
        bits[c * 16 + w] = word;
        if (word !== 0) break;
      }
      this.chunkHint[c] = Math.min(w, 15);
      this.chunkFree[c] -= taken;
    }
    this.inUse += n * PAGE_SIZE;
    if (this.inUse > this.peak) this.peak = this.inUse;
    this.live0 += n;
    this.allocs += n;
    return n;
  }

  free(folio: number): void {
    const fl = this.flags[folio];
    if (fl === undefined || !(fl & F_ALLOCATED))
      throw gmErr('EINVAL', 'free', 'core', `double free or not a folio: ${folio}`, { info: { folio } });
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
      return;
    }
    const c = folio >>> 9;
    const w = (folio >>> 5) & 15;
    this.freeBits[c * 16 + w] = (this.freeBits[c * 16 + w]! | (1 << (folio & 31))) >>> 0;
    if (w < this.chunkHint[c]!) this.chunkHint[c] = w;
    this.pagesFreed(c, 1);
  }

  /** Accounts `n` pages of split chunk `c` as free again; a wholly free chunk returns to the huge pool. */
  private pagesFreed(c: number, n: number): void {
    this.chunkFree[c] += n;
    if (this.chunkFree[c] === HUGE_PAGES) {
      this.splitChunk[c] = 0;
      this.chunkFree[c] = 0;
      this.pushChunk(c * HUGE_PAGES);
    } else if (!this.inPartial[c]) {
      this.pushPartial(c);
    }
  }

  /**
   * Bulk free. A punch frees folios that were mostly allocated together, so runs of plain order-0
   * folios in the same 2 MiB chunk are returned with one counter update per run; anything else
   * (huge, poisoned, or not a live folio) goes through {@link free}.
   */
  freeMany(folios: Int32Array, count: number): void {
    const flags = this.flags;
    const bits = this.freeBits;
    let i = 0;
    while (i < count) {
      const first = folios[i]!;
      const fl = flags[first];
      if (fl !== F_ALLOCATED && fl !== (F_ALLOCATED | F_UPTODATE)) {
        this.free(first);
        i++;
        continue;
      }
      const c = first >>> 9;
      let freed = 0;
      let minWord = 16;
      while (i < count) {
        const f = folios[i]!;
        const g = flags[f];
        if (f >>> 9 !== c || (g !== F_ALLOCATED && g !== (F_ALLOCATED | F_UPTODATE))) break;
        flags[f] = 0;
        const w = (f >>> 5) & 15;
        bits[c * 16 + w] = (bits[c * 16 + w]! | (1 << (f & 31))) >>> 0;
        if (w < minWord) minWord = w;
        freed++;
        i++;
      }
      this.inUse -= freed * PAGE_SIZE;
      this.live0 -= freed;
      if (minWord < this.chunkHint[c]!) this.chunkHint[c] = minWord;
      this.pagesFreed(c, freed);
    }
  }

  orderOf(folio: number): FolioOrder {
    return this.flags[folio]! & F_HUGE_HEAD ? 9 : 0;
  }

  isUptodate(folio: number): boolean {
    return (this.flags[folio]! & F_UPTODATE) !== 0;
  }

  prepare(folio: number): void {
    const fl = this.flags[folio]!;
    if (fl & F_UPTODATE) return;
    const off = this.arenaOffset(folio);
    this.arenas[this.chunkArena[folio >>> 9]!]!.fill(0, off, off + (fl & F_HUGE_HEAD ? HUGE_PAGES * PAGE_SIZE : PAGE_SIZE));
    this.flags[folio] = fl | F_UPTODATE;
  }

  prepareMany(folios: Int32Array, count: number): void {
    const flags = this.flags;
    let i = 0;
    while (i < count) {
      const first = folios[i]!;
      const fl = flags[first]!;
      if (fl & F_UPTODATE || fl & F_HUGE_HEAD) {
        this.prepare(first);
        i++;
        continue;
      }
      // A run of adjacent order-0 folios of one chunk (so of one arena), none uptodate: one fill.
      let j = i + 1;
      while (j < count && folios[j] === first + (j - i) && folios[j]! >>> 9 === first >>> 9 && !(flags[folios[j]!]! & F_UPTODATE)) j++;
      const off = this.arenaOffset(first);
      this.arenas[this.chunkArena[first >>> 9]!]!.fill(0, off, off + (j - i) * PAGE_SIZE);
      for (let k = i; k < j; k++) flags[folios[k]!]! |= F_UPTODATE;
      i = j;
    }
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
    if (!(this.flags[folio]! & F_UPTODATE)) throw notUptodate(folio);
    return this.raw(folio);
  }

  arenaOf(folio: number): Uint8Array {
    if (!(this.flags[folio]! & F_UPTODATE)) throw notUptodate(folio);
    return this.arenas[this.chunkArena[folio >>> 9]!]!;
  }

  arenaOffset(folio: number): number {
    return (folio - this.arenaBase[this.chunkArena[folio >>> 9]!]!) * PAGE_SIZE;
  }

  stats(): FolioStats {
    return {
      bytesInUse: this.inUse,
      peakBytes: this.peak,
      limitBytes: this.limit,
      folios: { order0: this.live0, order9: this.live9 },
      quarantinedBytes: this.quarantined,
      arenaBytes: this.totalPages * PAGE_SIZE,
      allocations: this.allocs,
    };
  }

  /** Bytes of allocator metadata (flags, bitmap, chunk stacks and per-chunk counters). */
  get metadataBytes(): number {
    return (
      this.flags.byteLength +
      this.freeBits.byteLength +
      this.chunks.byteLength +
      this.partial.byteLength +
      this.inPartial.byteLength +
      this.chunkFree.byteLength +
      this.splitChunk.byteLength +
      this.chunkHint.byteLength +
      this.chunkArena.byteLength
    );
  }

  private raw(folio: number): Uint8Array {
    const off = this.arenaOffset(folio);
    const len = this.flags[folio]! & F_HUGE_HEAD ? HUGE_PAGES * PAGE_SIZE : PAGE_SIZE;
    return this.arenas[this.chunkArena[folio >>> 9]!]!.subarray(off, off + len);
  }

  private pushPartial(c: number): void {
    if (this.partialLen === this.partial.length) this.partial = growI32(this.partial);
    this.partial[this.partialLen++] = c;
    this.inPartial[c] = 1;
  }

  private pushChunk(head: number): void {
    if (this.chunksLen === this.chunks.length) this.chunks = growI32(this.chunks);
    this.chunks[this.chunksLen++] = head;
  }

  /**
   * Adds an arena. Sizes double from 2 MiB up to `arenaMiB`, so a small guest does not pay the
   * metadata of a large arena.
   */
  private addArena(): boolean {
    const size = Math.min(this.arenaPages, HUGE_PAGES * 2 ** this.arenas.length);
    let arena: Uint8Array;
    try {
      arena = new Uint8Array(size * PAGE_SIZE);
    } catch {
      return false;
    }
    const base = this.totalPages;
    this.arenas.push(arena);
    this.arenaBase.push(base);
    const pages = base + size;
    this.totalPages = pages;
    const nchunks = pages / HUGE_PAGES;
    this.flags = grow(this.flags, pages);
    this.freeBits = grow(this.freeBits, nchunks * 16);
    this.inPartial = grow(this.inPartial, nchunks);
    this.chunkFree = grow(this.chunkFree, nchunks);
    this.splitChunk = grow(this.splitChunk, nchunks);
    this.chunkHint = grow(this.chunkHint, nchunks);
    this.chunkArena = grow(this.chunkArena, nchunks);
    this.chunkArena.fill(this.arenas.length - 1, base / HUGE_PAGES, nchunks);
    for (let p = pages - HUGE_PAGES; p >= base; p -= HUGE_PAGES) this.pushChunk(p);
    return true;
  }
}

/** Reading a folio before it is prepared would show a recycled folio's old bytes: refused. */
function notUptodate(folio: number) {
  return gmErr('EFAULT', 'view', 'core', `folio ${folio} is not uptodate; prepare it first`, { info: { folio } });
}

function grow<T extends Uint8Array | Uint16Array | Uint32Array>(a: T, length: number): T {
  const b = new (a.constructor as new (n: number) => T)(length);
  b.set(a);
  return b;
}

function growI32(a: Int32Array): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}
