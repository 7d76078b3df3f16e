import { guardLeak, unguard } from '../lifetime/leak-guard.js';
import { gmErr, type ErrnoCode } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator, allocFolioFor, type FolioAllocator } from '../folio/folio-allocator.js';
import { PageIndex, type ErasedValues } from '../page-index/page-index.js';
import { SMALL_COPY_MAX, copySmall } from '../types/bytes.js';
import { MAX_PAGE_INDEX, PAGE_SIZE, PAGE_SIZE_N, rangeStart, toBig } from '../types/brands.js';
import type { AllocateOptions, FileBinding, GetFolioOptions, GuestMemOps, PageRange } from './types.js';

/** Largest file size core accepts: the largest page-aligned signed 64-bit offset (loff_t). */
export const MAX_FILE_SIZE = (1n << 63n) - PAGE_SIZE_N;

/** Copies up to this many bytes with a plain loop: cheaper than a typed-array builtin call. */
const SMALL_COPY = SMALL_COPY_MAX;
const COPY_OUT = 0;
const COPY_IN = 1;
const FILL = 2;
type TransferMode = typeof COPY_OUT | typeof COPY_IN | typeof FILL;
const DEFAULT_GET: GetFolioOptions = Object.freeze({});

/** Options of {@link GuestMemFile.bind}. */
export interface BindRangeOptions {
  /** The errno an overlap gives (the backend's choice: KVM EINVAL, Gunyah EEXIST). Default EINVAL. */
  overlapCode?: ErrnoCode;
  /** The operation named in errors (default 'bind'). */
  op?: string;
  /**
   * Accept a range that reaches past EOF (up to page 2^52). Real uAPIs let that happen: KVM 6.18's
   * signed-overflow offset check, Gunyah v17's unchecked offsets. Such pages hold no memory, but
   * the binding is indexed, overlap-checked and invalidated like any other.
   */
  allowPastEof?: boolean;
}

/** Options of {@link GuestMemFile.create}. */
export interface GuestMemFileOptions {
  /** Where folios come from; default: a private {@link ArenaFolioAllocator}. Share one to account globally. */
  allocator?: FolioAllocator;
  /** Upper bound on the size (default {@link MAX_FILE_SIZE}). */
  maxSize?: bigint;
  /** Folio order used when a page is faulted in (default 0). */
  defaultOrder?: 0 | 9;
}

let nextFileId = 1;

/**
 * A guest-memory file: the hypervisor-neutral core of KVM's guest_memfd and Gunyah's guest-mem
 * file (`__kvm_gmem_create` + `kvm_gmem_allocate` + punch + bindings + lifetime).
 *
 * - A size set at creation (changed only by {@link setSize}, for backends whose files can be
 *   truncated) and opaque backend `flags`.
 * - Pages live in a {@link PageIndex} of folio handles; a page is absent, allocated (not uptodate) or
 *   uptodate (zeroed at prepare, then holding data). Every page reads zero the first time it is seen.
 * - A bindings interval index maps file page ranges to owners (KVM memslots, Gunyah VM mappings).
 * - Reference counted: `create` returns one reference; the last {@link release} drops every binding,
 *   frees every folio and calls `ops.release`.
 *
 * Offsets and lengths are bytes (`bigint | number`); page-level methods take page indices.
 * Policy (which flags exist, who may bind, what the host may touch) belongs to the backend's
 * {@link GuestMemOps}.
 */
export class GuestMemFile<Owner = unknown> {
  readonly id = nextFileId++;
  private sizeBytes: bigint;
  private pageCount: number;
  readonly allocator: FolioAllocator;
  readonly defaultOrder: 0 | 9;
  private readonly index = new PageIndex();
  /** Reused buffer of folios for a bulk allocate. */
  private readonly allocBatch = new Int32Array(256);
  /** Reused collector of folios a punch removes (freed in one batch). */
  private readonly erased: ErasedValues = { values: new Int32Array(64), count: 0 };
  /** Folios {@link faultIn} has yet to prepare. */
  private readonly pendingPrepare = new Int32Array(512);
  private bindings: Array<FileBinding<Owner>> = [];
  private refCount = 1;

  private constructor(
    size: bigint,
    readonly flags: bigint,
    readonly ops: GuestMemOps<Owner>,
    opts: GuestMemFileOptions,
  ) {
    this.sizeBytes = size;
    this.pageCount = Number(size / PAGE_SIZE_N);
    this.allocator = opts.allocator ?? new ArenaFolioAllocator();
    this.defaultOrder = opts.defaultOrder ?? 0;
    if (opts.allocator) {
      // Safety net: a file dropped without its last release() gives its folios back to the shared
      // allocator when collected (a private allocator is collected with the file anyway).
      const index = this.index;
      const allocator = this.allocator;
      guardLeak(this, {
        kind: `${ops.backend} guest-memory file`,
        what: `${ops.backend} guest-memory file ${this.id} (${size} bytes)`,
        release: () => index.clear((_i, folio) => allocator.free(folio)),
      });
    }
  }

  /**
   * Creates a file of `size` bytes. `size` must be > 0, page-aligned and ≤ the maximum, else
   * `EINVAL` (hypervisor-specific flag checks come first, in the backend). Nothing is allocated.
   */
  static create<Owner = unknown>(
    size: bigint | number,
    flags: bigint | number,
    ops: GuestMemOps<Owner>,
    opts: GuestMemFileOptions = {},
  ): GuestMemFile<Owner> {
    const sz = toBig(size, 'create', ops.backend);
    const max = opts.maxSize ?? MAX_FILE_SIZE;
    if (sz <= 0n || sz % PAGE_SIZE_N !== 0n || sz > max) {
      throw gmErr('EINVAL', 'create', ops.backend, `size ${sz} must be > 0, a multiple of ${PAGE_SIZE} and ≤ ${max}`, {
        info: { size: sz, max },
      });
    }
    return new GuestMemFile(sz, toBig(flags, 'create', ops.backend), ops, opts);
  }

  /** Size in bytes (`i_size`). */
  get size(): bigint {
    return this.sizeBytes;
  }

  /** Size in pages. */
  get pages(): number {
    return this.pageCount;
  }

  /**
   * Changes the size (`truncate_setsize`): growing adds holes; shrinking frees every page past the
   * new end — a huge folio across the new end keeps its memory with the part past it zeroed — and
   * calls `ops.invalidateBegin/End` (reason 'punch') over the dropped range. `size` must be
   * page-aligned, > 0 and ≤ {@link MAX_FILE_SIZE} (EINVAL). Backend policy (who may truncate,
   * what must be reclaimed first) is the caller's; bindings are not touched.
   */
  setSize(size: bigint | number): void {
    this.assertLive('setSize');
    const sz = toBig(size, 'setSize', this.ops.backend);
    if (sz <= 0n || sz % PAGE_SIZE_N !== 0n || sz > MAX_FILE_SIZE) {
      throw gmErr('EINVAL', 'setSize', this.ops.backend, `size ${sz} must be > 0, a multiple of ${PAGE_SIZE} and ≤ ${MAX_FILE_SIZE}`);
    }
    const oldPages = this.pageCount;
    const newPages = Number(sz / PAGE_SIZE_N);
    if (newPages < oldPages) {
      const range: PageRange = { first: newPages, end: oldPages };
      this.ops.invalidateBegin?.(this, range, 'punch');
      try {
        this.removePages(newPages, oldPages);
      } finally {
        this.ops.invalidateEnd?.(this, range, 'punch');
      }
    }
    this.sizeBytes = sz;
    this.pageCount = newPages;
  }

  // ---------------------------------------------------------------- lifetime

  get refs(): number {
    return this.refCount;
  }

  get released(): boolean {
    return this.refCount === 0;
  }

  /** Takes a reference (a dup'd fd, a mapping, a Gunyah binding). Throws `EBADF` once released. */
  acquire(): this {
    this.assertLive('acquire');
    this.refCount++;
    return this;
  }

  /**
   * Drops a reference. The last one invalidates and drops every binding (`ops.bindingDropped`),
   * frees every folio and calls `ops.release`. Returns true when this call released the file.
   */
  release(): boolean {
    this.assertLive('release');
    if (--this.refCount > 0) return false;
    unguard(this);
    // Every binding is invalidated, including any a backend bound past EOF.
    const all: PageRange = { first: 0, end: Math.max(this.pages, this.bindings.at(-1)?.end ?? 0) };
    // Every step runs even when a backend hook throws: a released file must never keep memory.
    // The first hook error is rethrown once everything is freed.
    let failure: unknown;
    const step = (fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        failure ??= e;
      }
    };
    step(() => this.ops.invalidateBegin?.(this, all, 'release'));
    const dropped = this.bindings;
    this.bindings = [];
    for (const b of dropped) step(() => this.ops.bindingDropped?.(this, b.owner, { first: b.first, end: b.end }));
    this.index.clear((_i, folio) => this.allocator.free(folio));
    step(() => this.ops.invalidateEnd?.(this, all, 'release'));
    step(() => this.ops.release?.(this));
    if (failure !== undefined) throw failure;
    return true;
  }

  private assertLive(op: string): void {
    if (this.refCount === 0) throw gmErr('EBADF', op, this.ops.backend, `guest-memory file ${this.id} was released`);
  }

  // ---------------------------------------------------------------- allocation

  /**
   * Allocates backing for every absent page of `[offset, offset+len)`; present pages are kept. The
   * range must be page-aligned, `len > 0` and inside the file, else `EINVAL`. Allocation is
   * all-or-nothing per page: on `ENOMEM`, or `EINTR` when `signal` is aborted, pages allocated
   * before stay (as the kernel does) and the error's `info.stoppedAt` names the first page not done.
   * New folios are not zeroed yet: they are zeroed when first prepared (guest or host fault).
   */
  allocate(offset: bigint | number, len: bigint | number, opts: AllocateOptions = {}): void {
    this.assertLive('allocate');
    const { first, end } = this.checkRange('allocate', offset, len, true);
    const order = opts.order ?? 0;
    const signal = opts.signal;
    let failed: ErrnoCode | undefined;
    // Folios come from the allocator in batches; whatever a batch has left at the end goes back.
    const batch = this.allocBatch;
    let have = 0;
    let next = 0;
    let short = false;
    const produce = (index: number): number => {
      if (signal?.aborted) {
        failed = 'EINTR';
        return -1;
      }
      if (next === have) {
        // A batch that came back short means the allocator failed there: stop at this page,
        // exactly as a failing single allocation would.
        if (short) {
          failed = 'ENOMEM';
          return -1;
        }
        const want = Math.min(batch.length, end - index);
        have = this.allocator.allocMany(batch, want);
        next = 0;
        short = have < want;
        if (have === 0) {
          failed = 'ENOMEM';
          return -1;
        }
      }
      return batch[next++]!;
    };
    let i = first;
    while (i < end) {
      if (order === 9 && i % 512 === 0 && i + 512 <= end && this.index.nextPresent(i, i + 512) < 0) {
        if (signal?.aborted) {
          failed = 'EINTR';
          break;
        }
        const f = this.allocator.tryAlloc(9);
        if (f >= 0) {
          this.index.store(i, f, 9);
          i += 512;
          continue;
        }
        // No huge folio: fall back to 4 KiB pages for this block.
      }
      const blockEnd = order === 9 ? Math.min(end, i - (i % 512) + 512) : end;
      const stop = this.index.fillAbsent(i, blockEnd, produce);
      if (stop < blockEnd) {
        i = stop;
        break;
      }
      i = blockEnd;
    }
    if (next < have) this.allocator.freeMany(batch.subarray(next, have), have - next);
    if (failed) {
      throw gmErr(failed, 'allocate', this.ops.backend, `stopped at page ${i} of [${first}, ${end})`, {
        info: { stoppedAt: i, first, end },
      });
    }
  }

  /**
   * Removes the backing of `[offset, offset+len)`; the range must be page-aligned and `len > 0`,
   * parts beyond EOF are ignored. Asks `ops.mayReclaim` first (a refusal is thrown and nothing
   * changes), then calls `ops.invalidateBegin`, frees the folios, calls `ops.invalidateEnd`. A huge
   * folio only partly inside the range keeps its memory and has the punched part zeroed.
   * Afterwards every page of the range reads zero through any view.
   */
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.assertLive('punchHole');
    const { first, end } = this.checkRange('punchHole', offset, len, false);
    // Pages past EOF hold no memory, but bindings a backend placed there are still invalidated,
    // as the kernel's punch does (it never clips the invalidated range to i_size).
    const bindEnd = Math.max(this.pages, this.bindings.at(-1)?.end ?? 0);
    const range: PageRange = {
      first: this.unclippedPage(toBig(offset)),
      end: Math.min(this.unclippedPage(toBig(offset) + toBig(len)), bindEnd),
    };
    if (range.first >= range.end) return;
    const refusal = this.ops.mayReclaim?.(this, range) ?? null;
    if (refusal) throw refusal;
    this.ops.invalidateBegin?.(this, range, 'punch');
    try {
      if (first < end) this.removePages(first, end);
    } finally {
      this.ops.invalidateEnd?.(this, range, 'punch');
    }
  }

  /** Page of a validated byte offset, not clipped to EOF (capped at the page index range). */
  private unclippedPage(byteOffset: bigint): number {
    const page = byteOffset / PAGE_SIZE_N;
    return page > BigInt(MAX_PAGE_INDEX + 1) ? MAX_PAGE_INDEX + 1 : Number(page);
  }

  private removePages(first: number, end: number): void {
    let lo = first;
    let hi = end;
    // Huge folios sticking out of the range: zero the covered part, keep the folio. A poisoned one
    // is dropped whole instead (eraseRange takes any entry it touches): its memory is never
    // written again, and the punch is what clears the poison.
    const head = this.index.load(first);
    if (head >= 0 && this.index.orderOf(first) === 9 && first % 512 !== 0 && !this.allocator.isPoisoned(head)) {
      const base = first - (first % 512);
      this.zeroPart(head, first - base, Math.min(end, base + 512) - base);
      lo = base + 512;
    }
    if (hi > lo && hi % 512 !== 0) {
      const tail = this.index.load(hi - 1);
      if (tail >= 0 && this.index.orderOf(hi - 1) === 9 && !this.allocator.isPoisoned(tail)) {
        const base = hi - 1 - ((hi - 1) % 512);
        this.zeroPart(tail, Math.max(lo, base) - base, hi - base);
        hi = base;
      }
    }
    if (hi > lo) {
      const erased = this.erased;
      erased.count = 0;
      this.index.eraseRange(lo, hi, erased);
      this.allocator.freeMany(erased.values, erased.count);
    }
  }

  private zeroPart(folio: number, fromPage: number, toPage: number): void {
    if (!this.allocator.isUptodate(folio)) return; // will be zeroed whole at prepare
    this.allocator.view(folio).fill(0, fromPage * PAGE_SIZE, toPage * PAGE_SIZE);
  }

  /**
   * The fault path (`kvm_gmem_get_pfn`): the folio backing page `index`, as its handle (the head of a
   * huge folio; the page is `head + index % 512`). Creates it when absent (unless `create: false`,
   * which gives -1), and prepares it (zero + `ops.prepare`, once) unless `prepare: false`.
   * A poisoned page gives `EHWPOISON`; allocation failure `ENOMEM`; an index past EOF `EINVAL`.
   */
  getFolio(index: number, opts: GetFolioOptions = DEFAULT_GET): number {
    this.assertLive('getFolio');
    if (!(Number.isInteger(index) && index >= 0 && index < this.pages)) {
      throw gmErr('EINVAL', 'getFolio', this.ops.backend, `page ${index} is outside the file (${this.pages} pages)`);
    }
    let folio = this.index.load(index);
    const created = folio < 0;
    if (created) {
      if (opts.create === false) return -1;
      const order = opts.order ?? this.defaultOrder;
      if (
        order === 9 &&
        this.index.nextPresent(index - (index % 512), index - (index % 512) + 512) < 0 &&
        index - (index % 512) + 512 <= this.pages
      ) {
        folio = this.allocator.tryAlloc(9);
        if (folio >= 0) this.index.store(index, folio, 9);
      }
      if (folio < 0) {
        folio = allocFolioFor(this.allocator, 0, 'getFolio', this.ops.backend);
        this.index.store(index, folio, 0);
      }
    } else if (this.allocator.isPoisoned(folio)) {
      throw gmErr('EHWPOISON', 'getFolio', this.ops.backend, `page ${index} is poisoned`, { info: { index } });
    }
    if (opts.prepare !== false && !this.allocator.isUptodate(folio)) {
      this.allocator.prepare(folio);
      try {
        this.ops.prepare?.(this, index, folio);
      } catch (e) {
        // A failed fault changes nothing: a folio created by this call goes away again.
        this.allocator.clearUptodate(folio);
        if (created) {
          this.index.erase(index);
          this.allocator.free(folio);
        }
        throw e;
      }
    }
    return folio;
  }

  /**
   * {@link getFolio} of pages `first`, `first + 1`, … below `end`, in that order, stopping at the
   * first that fails: the same allocations (in the same order), the same preparation and the same
   * errors as the calls one by one. Returns `{ stop: end }`, or the failing page and its error (pages
   * before it were faulted in). Absent order-0 pages are zeroed together (one fill per run of
   * adjacent folios) rather than one by one, which is the point: a guest touching a range.
   * `folios`, when given, receives the handle {@link getFolio} returned for each page faulted in
   * (`folios[i - first]`).
   */
  faultIn(first: number, end: number, folios?: Int32Array): { stop: number; error?: unknown } {
    if (!(first < end)) return { stop: end };
    try {
      this.assertLive('getFolio');
    } catch (error) {
      return { stop: first, error };
    }
    if (this.defaultOrder !== 0 || this.ops.prepare) {
      for (let i = first; i < end; i++) {
        try {
          const folio = this.getFolio(i);
          if (folios) folios[i - first] = folio;
        } catch (error) {
          return { stop: i, error };
        }
      }
      return { stop: end };
    }
    const pending = this.pendingPrepare;
    const alloc = this.allocator;
    let n = 0;
    let i = first;
    let error: unknown;
    for (; i < end; i++) {
      if (!(Number.isInteger(i) && i >= 0 && i < this.pages)) {
        error = gmErr('EINVAL', 'getFolio', this.ops.backend, `page ${i} is outside the file (${this.pages} pages)`);
        break;
      }
      let folio = this.index.load(i);
      if (folio < 0) {
        try {
          folio = allocFolioFor(alloc, 0, 'getFolio', this.ops.backend);
        } catch (e) {
          error = e;
          break;
        }
        this.index.store(i, folio, 0);
      } else if (alloc.isPoisoned(folio)) {
        error = gmErr('EHWPOISON', 'getFolio', this.ops.backend, `page ${i} is poisoned`, { info: { index: i } });
        break;
      }
      if (folios) folios[i - first] = folio;
      if (alloc.isUptodate(folio)) continue;
      if (n === pending.length) {
        alloc.prepareMany(pending, n);
        n = 0;
      }
      pending[n++] = folio;
    }
    alloc.prepareMany(pending, n);
    return error === undefined ? { stop: end } : { stop: i, error };
  }

  /** True when page `index` has backing. */
  isPresent(index: number): boolean {
    return this.index.load(index) >= 0;
  }

  /** True when page `index` has backing that is uptodate (prepared). */
  isUptodate(index: number): boolean {
    const f = this.index.load(index);
    return f >= 0 && this.allocator.isUptodate(f);
  }

  /** Order of the folio backing `index` (0 or 9), or -1 when absent. */
  folioOrder(index: number): 0 | 9 | -1 {
    return this.index.orderOf(index);
  }

  /** Pages with backing (a huge folio counts 512). */
  get pagesPresent(): number {
    return this.index.indicesCovered;
  }

  /** Visits every backed page range: `(firstPage, folio, order)` in page order. */
  forEachFolio(first: number, end: number, visit: (index: number, folio: number, order: 0 | 9) => void): void {
    this.index.forEach(first, end, visit);
  }

  /** The page index itself, for backends that keep marks (read-mostly; do not store folios in it). */
  get pageIndex(): PageIndex {
    return this.index;
  }

  // ---------------------------------------------------------------- poison

  /**
   * Marks page `index` hardware-poisoned (memory-failure injection). The page is allocated if it was
   * absent; guest mappings of its folio are invalidated (`reason 'poison'`); afterwards
   * {@link getFolio} gives `EHWPOISON` and host access `SIGBUS`. The unit is the folio: poisoning a
   * page of a 2 MiB folio poisons all 512 pages, and a punch touching any of them drops the whole
   * folio, which clears the poison. Poisoned folios are quarantined by the allocator, never reused.
   * Poisoning a poisoned page again does nothing; an index outside the file is `EINVAL`.
   */
  markPoisoned(index: number): void {
    this.assertLive('markPoisoned');
    if (!(Number.isInteger(index) && index >= 0 && index < this.pages)) {
      throw gmErr('EINVAL', 'markPoisoned', this.ops.backend, `page ${index} is outside the file (${this.pages} pages)`);
    }
    if (this.isPoisoned(index)) return;
    const folio = this.getFolio(index, { prepare: false });
    const order = this.index.orderOf(index);
    const first = order === 9 ? index - (index % 512) : index;
    const range: PageRange = { first, end: first + (order === 9 ? 512 : 1) };
    this.ops.invalidateBegin?.(this, range, 'poison');
    this.allocator.setPoisoned(folio);
    this.ops.invalidateEnd?.(this, range, 'poison');
  }

  /** True when page `index` belongs to a poisoned folio. */
  isPoisoned(index: number): boolean {
    const folio = this.index.load(index);
    return folio >= 0 && this.allocator.isPoisoned(folio);
  }

  // ---------------------------------------------------------------- data access

  /**
   * Copies `length` bytes at byte `offset` out of the file, faulting pages in (allocate + prepare).
   * No policy: backends call this for guest accesses; host access goes through {@link HostMapping}.
   * Offsets may be bigints (files larger than 2^53 bytes); lengths are numbers.
   */
  read(offset: number | bigint, length: number, out?: Uint8Array, outOffset = 0): Uint8Array {
    const buf = out ?? new Uint8Array(this.checkLength('read', length));
    this.transfer(COPY_OUT, offset, length, buf, outOffset, 0);
    return buf;
  }

  /** Copies `data` into the file at byte `offset`, faulting pages in. */
  write(offset: number | bigint, data: Uint8Array, dataOffset = 0, length = data.length - dataOffset): void {
    this.transfer(COPY_IN, offset, length, data, dataOffset, 0);
  }

  /** Fills `length` bytes at `offset` with `byte`, faulting pages in. */
  fill(offset: number | bigint, length: number, byte: number): void {
    this.transfer(FILL, offset, length, undefined, 0, byte);
  }

  private checkLength(op: string, length: number): number {
    if (!(Number.isSafeInteger(length) && length >= 0))
      throw gmErr('EINVAL', op, this.ops.backend, `length ${length} must be a whole number ≥ 0`);
    return length;
  }

  /**
   * The one data path: page by page over `[offset, offset+length)`, faulting each page in
   * (allocate + prepare) and copying between it and `buf[bufOffset…]`, or filling it with `byte`.
   * Fails before touching any page if the range leaves the file. Pages are addressed by index and
   * in-page offset (exact numbers even when the byte offset is a bigint beyond 2^53). No closures
   * or views are allocated per page: this is the hot path of every host and simulated guest access.
   */
  private transfer(
    mode: TransferMode,
    offset: number | bigint,
    length: number,
    buf: Uint8Array | undefined,
    bufOffset: number,
    byte: number,
  ): void {
    this.assertLive('access');
    this.checkLength('access', length);
    const start = rangeStart(offset, length, this.size, this.pages, 'access', this.ops.backend);
    if (!start) {
      throw gmErr('EINVAL', 'access', this.ops.backend, `[${String(offset)}, +${length}) is outside the file (${this.size} bytes)`);
    }
    let { index, inPage } = start;
    const alloc = this.allocator;
    let done = 0;
    while (done < length) {
      const folio = this.getFolio(index);
      const orderOfFolio = alloc.orderOf(folio);
      const inFolio = orderOfFolio === 9 ? (index % 512) * PAGE_SIZE : 0;
      const at = alloc.arenaOffset(folio) + inFolio + inPage;
      const arena = alloc.arenaOf(folio);
      let n = Math.min(length - done, PAGE_SIZE - inPage);
      // Long accesses: extend over following pages whose folios sit right after this one in the
      // same arena (a file filled in order usually is), so one copy moves the whole run. Each
      // page is still faulted in, in order, exactly as the loop would.
      let pending: unknown;
      if (n === PAGE_SIZE - inPage && done + n < length && orderOfFolio === 0) {
        while (done + n < length) {
          // A present, prepared, healthy page is what getFolio would return as it is.
          let next = this.index.load(index + 1);
          try {
            if (next < 0 || !alloc.isUptodate(next) || alloc.isPoisoned(next)) next = this.getFolio(index + 1);
          } catch (e) {
            // The loop would copy what it has, then fail on this page: do the same.
            pending = e;
            break;
          }
          if (alloc.orderOf(next) !== 0 || alloc.arenaOf(next) !== arena || alloc.arenaOffset(next) !== at + n) {
            // Not contiguous: the next iteration handles it (already faulted in, so no side effect twice).
            break;
          }
          index++;
          const add = Math.min(length - done - n, PAGE_SIZE);
          n += add;
          if (add < PAGE_SIZE) break;
        }
      }
      const b = bufOffset + done;
      if (mode === FILL) {
        if (n <= SMALL_COPY) for (let k = 0; k < n; k++) arena[at + k] = byte;
        else arena.fill(byte, at, at + n);
      } else if (mode === COPY_OUT) {
        if (n <= SMALL_COPY) copySmall(buf!, b, arena, at, n);
        else buf!.set(arena.subarray(at, at + n), b);
      } else if (n <= SMALL_COPY) {
        copySmall(arena, at, buf!, b, n);
      } else {
        arena.set(buf!.subarray(b, b + n), at);
      }
      if (pending !== undefined) throw pending;
      done += n;
      index++;
      inPage = 0;
    }
  }

  // ---------------------------------------------------------------- bindings

  /**
   * Records that `[first, end)` (pages) is bound to `owner`. Any overlap with an existing binding
   * throws `opts.overlapCode` (the backend's errno: KVM uses EINVAL, Gunyah EEXIST) and changes nothing.
   */
  bind(first: number, end: number, owner: Owner, opts: BindRangeOptions = {}): void {
    const op = opts.op ?? 'bind';
    const overlapCode = opts.overlapCode ?? 'EINVAL';
    this.assertLive(op);
    const limit = opts.allowPastEof ? MAX_PAGE_INDEX + 1 : this.pages;
    if (!(Number.isInteger(first) && Number.isInteger(end) && first >= 0 && end > first && end <= limit)) {
      throw gmErr('EINVAL', op, this.ops.backend, `bad binding range [${first}, ${end}) for a file of ${this.pages} pages`);
    }
    const at = this.lowerBound(first);
    const prev = this.bindings[at - 1];
    const next = this.bindings[at];
    const clash = (prev && prev.end > first ? prev : undefined) ?? (next && next.first < end ? next : undefined);
    if (clash) {
      throw gmErr(overlapCode, op, this.ops.backend, `pages [${first}, ${end}) overlap the binding [${clash.first}, ${clash.end})`, {
        info: { first, end, existing: { first: clash.first, end: clash.end } },
      });
    }
    this.bindings.splice(at, 0, { owner, first, end });
  }

  /** The first binding overlapping pages `[first, end)`, if any (lets a backend check before binding). */
  findOverlap(first: number, end: number): FileBinding<Owner> | undefined {
    return this.bindingsIn(first, end)[0];
  }

  /** Removes every binding of `owner`; returns the removed ranges. */
  unbind(owner: Owner): FileBinding<Owner>[] {
    const removed = this.bindings.filter((b) => b.owner === owner);
    if (removed.length) this.bindings = this.bindings.filter((b) => b.owner !== owner);
    return removed;
  }

  /** Shrinks or moves `owner`'s single binding to `[first, end)` (Gunyah head/tail unmap). */
  resizeBinding(owner: Owner, first: number, end: number): void {
    const i = this.bindings.findIndex((b) => b.owner === owner);
    if (i < 0) throw gmErr('EINVAL', 'resizeBinding', this.ops.backend, 'no such binding');
    const old = this.bindings[i]!;
    if (first < old.first || end > old.end || first >= end) {
      throw gmErr('EINVAL', 'resizeBinding', this.ops.backend, `[${first}, ${end}) is not inside [${old.first}, ${old.end})`);
    }
    this.bindings[i] = { owner, first, end };
  }

  /** Bindings intersecting `[first, end)`, ordered by first page. */
  bindingsIn(first: number, end: number): FileBinding<Owner>[] {
    const out: FileBinding<Owner>[] = [];
    for (let i = Math.max(0, this.lowerBound(first) - 1); i < this.bindings.length; i++) {
      const b = this.bindings[i]!;
      if (b.first >= end) break;
      if (b.end > first) out.push(b);
    }
    return out;
  }

  /** The binding covering page `index`, if any. */
  bindingAt(index: number): FileBinding<Owner> | undefined {
    return this.bindingsIn(index, index + 1)[0];
  }

  /** All bindings, ordered. */
  get allBindings(): readonly FileBinding<Owner>[] {
    return this.bindings;
  }

  private lowerBound(first: number): number {
    let lo = 0;
    let hi = this.bindings.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.bindings[mid]!.first < first) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Validates a byte range and converts it to pages. `inside`: the range must end within the file
   * (allocate); otherwise it is clipped to EOF (punch).
   */
  private checkRange(op: string, offset: bigint | number, len: bigint | number, inside: boolean): PageRange {
    const off = toBig(offset, op, this.ops.backend);
    const ln = toBig(len, op, this.ops.backend);
    if (off < 0n || ln <= 0n || off % PAGE_SIZE_N !== 0n || ln % PAGE_SIZE_N !== 0n || (inside && off + ln > this.size)) {
      throw gmErr(
        'EINVAL',
        op,
        this.ops.backend,
        `offset ${off}, len ${ln}: need len > 0, both multiples of ${PAGE_SIZE}${inside ? `, end ≤ size ${this.size}` : ''}`,
        {
          info: { offset: off, len: ln, size: this.size },
        },
      );
    }
    const pagesBig = BigInt(this.pages);
    const first = off / PAGE_SIZE_N;
    const end = (off + ln) / PAGE_SIZE_N;
    return { first: Number(first < pagesBig ? first : pagesBig), end: Number(end < pagesBig ? end : pagesBig) };
  }
}
