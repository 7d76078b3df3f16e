import { HostAccessFault, gmErr } from '../errors/guest-mem-error.js';
import type { HostAccessKind, HostAccessVerdict } from '../file/types.js';
import { ArenaFolioAllocator, allocFolioFor, type FolioAllocator } from '../folio/folio-allocator.js';
import { PageIndex } from '../page-index/page-index.js';
import { SMALL_COPY_MAX, copySmall } from '../types/bytes.js';
import { PAGE_SIZE, PAGE_SIZE_N, rangeStart, toBig } from '../types/brands.js';

/**
 * What backs a range of host user memory:
 * - `'anonymous'`: `mmap(MAP_PRIVATE|MAP_ANONYMOUS)`;
 * - `'shmem'`: a memfd or tmpfs file mapped `MAP_SHARED`;
 * - `'file'`: a regular (disk) file mapped `MAP_SHARED` — page cache that is *not* swap-backed.
 */
export type UserMemoryKind = 'anonymous' | 'shmem' | 'file';

/** Policy hooks of a {@link UserMemory}: core owns the pages, the backend says what the host may touch. */
export interface UserMemoryOps {
  /** Backend id used in errors raised on this memory's behalf. */
  readonly backend: string;
  /**
   * Asked before every host access to page `index` through the memory's own mapping. Missing hook:
   * `'allow'`. A backend whose hypervisor took the page from the host answers `'sigbus'`.
   */
  hostAccess?(memory: UserMemory, index: number, kind: HostAccessKind): HostAccessVerdict;
}

/** Options of {@link UserMemory.create}. */
export interface UserMemoryOptions {
  /** Bytes: > 0 and page-aligned. */
  size: bigint | number;
  /** Default `'anonymous'`. */
  kind?: UserMemoryKind;
  /**
   * Transparent huge pages (`MADV_HUGEPAGE`): a page faulted in a 2 MiB-aligned block that lies
   * inside the memory and holds nothing yet gets a 2 MiB folio. Default false.
   */
  hugePages?: boolean;
  /** Where folios come from; default a private {@link ArenaFolioAllocator}. */
  allocator?: FolioAllocator;
  ops?: UserMemoryOps;
}

/** The folio backing a page: its handle, order and the page index of its head. */
export interface UserFolio {
  readonly folio: number;
  readonly order: 0 | 9;
  readonly head: number;
}

let nextId = 1;
const HUGE = 512;

/**
 * Host user memory: the second kind of memory object core serves, next to {@link GuestMemFile}.
 * It is what a VMM gets from `mmap` (anonymous or shared memory) and what hypervisors without a
 * guest-memory file hand to the guest *by address* (`userspace_addr`).
 *
 * - Pages are created and zeroed on first touch (invariant 1), from a {@link FolioAllocator}.
 * - The host reads and writes through the memory's own mapping ({@link read}/{@link write}/
 *   {@link fill}), asking `ops.hostAccess` per page; a refusal is a {@link HostAccessFault}.
 * - {@link pin} is `pin_user_pages(FOLL_LONGTERM)`: a device (a hypervisor's stage 2) takes the
 *   folio and accesses it through the returned {@link UserPagePin}, not through the host mapping.
 * - {@link discard} is `MADV_DONTNEED` / `FALLOC_FL_PUNCH_HOLE`: the range reads zero afterwards.
 *   A *pinned* folio is detached, not freed: the pinner keeps the old page and its data (the
 *   long-term-pin hazard of Linux), and the folio goes back to the allocator at its last unpin.
 * - Reference counted: the creator holds one reference, each mapping one more; the last
 *   {@link release} frees every folio nobody pins.
 *
 * Nothing here is hypervisor-specific: pin accounting (`RLIMIT_MEMLOCK`) is the caller's
 * ({@link LockedMemoryAccount}), and what the host may touch is the backend's hook.
 */
const COPY_OUT = 0;
const COPY_IN = 1;
const FILL = 2;
type HostCopyMode = typeof COPY_OUT | typeof COPY_IN | typeof FILL;

export class UserMemory {
  readonly id = nextId++;
  readonly size: bigint;
  readonly pages: number;
  readonly kind: UserMemoryKind;
  readonly hugePages: boolean;
  readonly allocator: FolioAllocator;
  readonly ops: UserMemoryOps;
  private readonly index = new PageIndex();
  /** Pin count per folio handle. */
  private readonly pinCount = new Map<number, number>();
  /** Pinned folios no longer in the memory (discarded or released while pinned). */
  private readonly detached = new Set<number>();
  private refCount = 1;

  private constructor(size: bigint, opts: UserMemoryOptions, ops: UserMemoryOps) {
    this.size = size;
    this.pages = Number(size / PAGE_SIZE_N);
    this.kind = opts.kind ?? 'anonymous';
    this.hugePages = opts.hugePages ?? false;
    this.allocator = opts.allocator ?? new ArenaFolioAllocator();
    this.ops = ops;
  }

  /** Creates `size` bytes of user memory; nothing is allocated. `EINVAL` for a size that is 0, unaligned or past 2^63. */
  static create(opts: UserMemoryOptions): UserMemory {
    const ops = opts.ops ?? { backend: 'core' };
    const size = toBig(opts.size, 'mmap', ops.backend);
    if (size <= 0n || size % PAGE_SIZE_N !== 0n || size >= 1n << 63n) {
      throw gmErr('EINVAL', 'mmap', ops.backend, `size ${size} must be > 0, a multiple of ${PAGE_SIZE} and below 2^63`);
    }
    return new UserMemory(size, opts, ops);
  }

  /** Anonymous and shmem pages are swap-backed (`folio_test_swapbacked`); page cache of a regular file is not. */
  get swapBacked(): boolean {
    return this.kind !== 'file';
  }

  // ---------------------------------------------------------------- lifetime

  get refs(): number {
    return this.refCount;
  }
  get released(): boolean {
    return this.refCount === 0;
  }

  /** Takes a reference (a mapping). `EBADF` once released. */
  acquire(): this {
    this.assertLive('acquire');
    this.refCount++;
    return this;
  }

  /** Drops a reference; the last one frees every folio nobody pins (pinned ones at their last unpin). */
  release(): boolean {
    this.assertLive('release');
    if (--this.refCount > 0) return false;
    this.index.clear((_i, folio) => this.dropFolio(folio));
    return true;
  }

  // ---------------------------------------------------------------- pages

  /** True when page `index` has a folio. */
  isPresent(index: number): boolean {
    return this.index.load(index) >= 0;
  }

  /** Pages with a folio (a 2 MiB folio counts 512). */
  get pagesPresent(): number {
    return this.index.indicesCovered;
  }

  /**
   * Visits every present folio once (a 2 MiB folio at its head page), in page order; the cost is
   * that of the present folios, not of the memory's size.
   */
  forEachFolio(visit: (head: number, folio: number, order: 0 | 9) => void): void {
    this.index.forEach(0, this.pages, (i, folio, order) => visit(i, folio, order === 9 ? 9 : 0));
  }

  /** The folio behind page `index`, if present. */
  folioAt(index: number): UserFolio | undefined {
    const folio = this.index.load(index);
    if (folio < 0) return undefined;
    const order = this.index.orderOf(index) === 9 ? 9 : 0;
    return { folio, order, head: order === 9 ? index - (index % HUGE) : index };
  }

  /**
   * The page fault: the folio behind page `index`, created and zeroed when absent. A 2 MiB folio
   * when the memory uses huge pages and the page's aligned block is inside the memory and empty.
   * `ENOMEM` from the allocator, `EFAULT` for an index outside the memory.
   */
  fault(index: number, op = 'fault'): UserFolio {
    this.faultHandle(index, op);
    return this.folioAt(index)!;
  }

  /** {@link fault} returning the folio handle only (the host data path's, allocation-free). */
  private faultHandle(index: number, op: string): number {
    this.assertLive(op);
    if (!(Number.isInteger(index) && index >= 0 && index < this.pages)) {
      throw gmErr('EFAULT', op, this.ops.backend, `page ${index} is outside the ${this.pages}-page memory`);
    }
    let folio = this.index.load(index);
    if (folio < 0) {
      const base = index - (index % HUGE);
      if (this.hugePages && base + HUGE <= this.pages && this.index.nextPresent(base, base + HUGE) < 0) {
        folio = this.allocator.tryAlloc(9);
        if (folio >= 0) this.index.store(index, folio, 9);
      }
      if (folio < 0) {
        folio = allocFolioFor(this.allocator, 0, op, this.ops.backend);
        this.index.store(index, folio, 0);
      }
    }
    this.allocator.prepare(folio); // zero on first use (idempotent)
    return folio;
  }

  /**
   * `MADV_POPULATE_WRITE`: faults every page of `[offset, offset+len)` in. Pages faulted before an
   * `ENOMEM` stay, as in the kernel.
   */
  populate(offset: bigint | number, len: bigint | number): void {
    const { first, end } = this.range('populate', offset, len);
    for (let i = first; i < end; ) {
      const f = this.fault(i, 'populate');
      i = f.head + (f.order === 9 ? HUGE : 1);
    }
  }

  /**
   * `MADV_DONTNEED` (anonymous) / `FALLOC_FL_PUNCH_HOLE` (shmem): drops the folios of
   * `[offset, offset+len)` — whole folios, so a 2 MiB folio the range touches goes entirely. The
   * range reads zero afterwards. A pinned folio is detached, not freed (see the class comment).
   */
  discard(offset: bigint | number, len: bigint | number): void {
    const { first, end } = this.range('discard', offset, len);
    const gone: number[] = [];
    this.index.eraseRange(first, end, (_i, folio) => gone.push(folio));
    for (const f of gone) this.dropFolio(f);
  }

  // ---------------------------------------------------------------- host access

  /** Host read through the memory's mapping. */
  read(offset: bigint | number, len: number): Uint8Array {
    // A length the memory cannot hold is refused by hostAccess (EFAULT), before any allocation.
    const out = new Uint8Array(Number.isSafeInteger(len) && len > 0 && BigInt(len) <= this.size ? len : 0);
    this.hostAccess(COPY_OUT, offset, len, out, 0, 0);
    return out;
  }

  /** Host read into `dst[dstOffset…]` (to its end); the same rules as {@link read}, without a new array. */
  readInto(offset: bigint | number, dst: Uint8Array, dstOffset = 0): void {
    if (!(Number.isSafeInteger(dstOffset) && dstOffset >= 0 && dstOffset <= dst.length)) {
      throw gmErr('EINVAL', 'host read', this.ops.backend, `dstOffset ${String(dstOffset)} is outside the ${dst.length}-byte buffer`);
    }
    this.hostAccess(COPY_OUT, offset, dst.length - dstOffset, dst, dstOffset, 0);
  }

  /** Host write through the memory's mapping; pages before a faulting one keep what was written. */
  write(offset: bigint | number, data: Uint8Array): void {
    this.hostAccess(COPY_IN, offset, data.length, data, 0, 0);
  }

  /** Host `memset`. */
  fill(offset: bigint | number, len: number, byte: number): void {
    this.hostAccess(FILL, offset, len, undefined, 0, byte);
  }

  /** The folio handle behind page `index`, or -1 (no allocation, unlike {@link folioAt}). */
  folioHandleAt(index: number): number {
    return this.index.load(index);
  }

  /**
   * The one host data path: page by page, asking `ops.hostAccess` for each page before touching
   * it (a refusal is a {@link HostAccessFault} after the pages before it were accessed), faulting
   * it in, and copying. Runs of pages whose folios sit next to each other in one arena move in one
   * copy. No closure or view per page.
   */
  private hostAccess(
    mode: HostCopyMode,
    offset: bigint | number,
    len: number,
    buf: Uint8Array | undefined,
    bufOffset: number,
    byte: number,
  ): void {
    const kind: HostAccessKind = mode === COPY_OUT ? 'read' : 'write';
    const op = mode === COPY_OUT ? 'host read' : 'host write';
    this.assertLive(op);
    const start = rangeStart(offset, len, this.size, this.pages, op, this.ops.backend);
    if (!start) throw gmErr('EFAULT', op, this.ops.backend, `[${String(offset)}, +${len}) is outside the ${this.size}-byte memory`);
    let { index, inPage } = start;
    const alloc = this.allocator;
    const policy = this.ops.hostAccess;
    let done = 0;
    // A page the run below already asked about and faulted in, but could not join (not adjacent).
    let askedIndex = -1;
    let askedFolio = -1;
    while (done < len) {
      let refused = false;
      let folio: number;
      if (index === askedIndex) folio = askedFolio;
      else {
        if (policy !== undefined && policy(this, index, kind) === 'sigbus') throw this.refusal(op, kind, index, inPage);
        folio = this.faultHandle(index, op);
      }
      const head = this.index.orderOf(index) === 9 ? index - (index % HUGE) : index;
      const arena = alloc.arenaOf(folio);
      const at = alloc.arenaOffset(folio) + (index - head) * PAGE_SIZE + inPage;
      let n = Math.min(len - done, PAGE_SIZE - inPage);
      // Extend over following pages the policy allows whose folios continue this one in the arena.
      // Each page is still asked about and faulted in, in order; what stops the run (a refusal, a
      // fault error) comes after the copy of the pages before it, as page by page.
      let pending: unknown;
      let full = n === PAGE_SIZE - inPage;
      while (full && done + n < len) {
        const next = index + 1;
        if (policy !== undefined && policy(this, next, kind) === 'sigbus') {
          refused = true;
          break;
        }
        let nf: number;
        try {
          nf = this.faultHandle(next, op);
        } catch (e) {
          pending = e;
          break;
        }
        const nHead = this.index.orderOf(next) === 9 ? next - (next % HUGE) : next;
        if (alloc.arenaOf(nf) !== arena || alloc.arenaOffset(nf) + (next - nHead) * PAGE_SIZE !== at + n) {
          askedIndex = next;
          askedFolio = nf;
          break;
        }
        index = next;
        const add = Math.min(len - done - n, PAGE_SIZE);
        n += add;
        full = add === PAGE_SIZE;
      }
      const b = bufOffset + done;
      // Small copies without views (see copySmall).
      if (mode === COPY_OUT) {
        if (n <= SMALL_COPY_MAX) copySmall(buf!, b, arena, at, n);
        else buf!.set(arena.subarray(at, at + n), b);
      } else if (mode === COPY_IN) {
        if (n <= SMALL_COPY_MAX) copySmall(arena, at, buf!, b, n);
        else arena.set(buf!.subarray(b, b + n), at);
      } else arena.fill(byte, at, at + n);
      if (pending !== undefined) throw pending;
      done += n;
      index++;
      inPage = 0;
      if (refused) throw this.refusal(op, kind, index, 0);
    }
  }

  private refusal(op: string, kind: HostAccessKind, index: number, inPage: number): HostAccessFault {
    return new HostAccessFault({
      op,
      backend: this.ops.backend,
      offset: BigInt(index) * PAGE_SIZE_N + BigInt(inPage),
      detail: `the backend does not let the host ${kind} page ${index}`,
    });
  }

  // ---------------------------------------------------------------- pins

  /**
   * `pin_user_pages(FOLL_LONGTERM)` of page `index`: faults it in and pins its whole folio. The pin
   * keeps the folio alive through {@link discard} and {@link release}; data goes through the pin.
   */
  pin(index: number, op = 'pin'): UserPagePin {
    const f = this.fault(index, op);
    this.pinCount.set(f.folio, (this.pinCount.get(f.folio) ?? 0) + 1);
    return new UserPagePin(this, f, index);
  }

  /** Number of live pins on the folio behind page `index` (0 when absent). */
  pinsAt(index: number): number {
    const f = this.index.load(index);
    return f < 0 ? 0 : (this.pinCount.get(f) ?? 0);
  }

  /** Pins over all folios, including detached ones. */
  get pinnedFolios(): number {
    return this.pinCount.size;
  }

  /** Folios detached by a discard or release and kept alive by pins. */
  get detachedFolios(): number {
    return this.detached.size;
  }

  /** @internal called by {@link UserPagePin.unpin}. */
  unpinFolio(folio: number): void {
    const n = (this.pinCount.get(folio) ?? 0) - 1;
    if (n > 0) return void this.pinCount.set(folio, n);
    this.pinCount.delete(folio);
    if (this.detached.delete(folio)) this.allocator.free(folio);
  }

  /** @internal data access of a pinner. */
  folioBytes(folio: number): Uint8Array {
    return this.allocator.view(folio);
  }

  private dropFolio(folio: number): void {
    if (this.pinCount.has(folio)) this.detached.add(folio);
    else this.allocator.free(folio);
  }

  // ---------------------------------------------------------------- helpers

  private range(op: string, offset: bigint | number, len: bigint | number): { first: number; end: number } {
    this.assertLive(op);
    const off = toBig(offset, op, this.ops.backend);
    const ln = toBig(len, op, this.ops.backend);
    if (off < 0n || ln <= 0n || off % PAGE_SIZE_N !== 0n || ln % PAGE_SIZE_N !== 0n || off + ln > this.size) {
      throw gmErr('EINVAL', op, this.ops.backend, `offset ${off}, len ${ln}: need page-aligned, len > 0, inside ${this.size} bytes`);
    }
    return { first: Number(off / PAGE_SIZE_N), end: Number((off + ln) / PAGE_SIZE_N) };
  }

  private assertLive(op: string): void {
    if (this.refCount === 0) throw gmErr('EBADF', op, this.ops.backend, `user memory ${this.id} was released`);
  }
}

/**
 * One long-term pin (`pin_user_pages(FOLL_LONGTERM)` of one page, holding its whole folio): what a
 * device keeps while the page is in its hands. Reads and writes go to the pinned folio, whatever
 * the memory's mapping shows now.
 */
export class UserPagePin {
  private live = true;
  constructor(
    readonly memory: UserMemory,
    /** The pinned folio (its head page index as it was when pinned). */
    readonly folio: UserFolio,
    /** The page that was pinned. */
    readonly page: number,
  ) {}

  get pinned(): boolean {
    return this.live;
  }

  /** Pages of the folio (1 or 512). */
  get nrPages(): number {
    return this.folio.order === 9 ? HUGE : 1;
  }

  /** The folio's bytes at byte `at` of the folio (device-side access: no host policy). */
  read(at: number, len: number, out: Uint8Array = new Uint8Array(len), outOffset = 0): Uint8Array {
    this.assertPinned();
    out.set(this.memory.folioBytes(this.folio.folio).subarray(at, at + len), outOffset);
    return out;
  }

  write(at: number, data: Uint8Array): void {
    this.assertPinned();
    this.memory.folioBytes(this.folio.folio).set(data, at);
  }

  fill(at: number, len: number, byte: number): void {
    this.assertPinned();
    this.memory.folioBytes(this.folio.folio).fill(byte, at, at + len);
  }

  /** `unpin_user_page` (idempotent). The folio is freed here if the memory no longer holds it. */
  unpin(): void {
    if (!this.live) return;
    this.live = false;
    this.memory.unpinFolio(this.folio.folio);
  }

  private assertPinned(): void {
    if (!this.live) throw gmErr('EFAULT', 'pinned access', this.memory.ops.backend, 'the page was unpinned');
  }
}
