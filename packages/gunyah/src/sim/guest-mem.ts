import { GuestMemError, MAX_PAGE_INDEX, PAGE_SIZE, PAGE_SIZE_N, toBig } from '@guestmem/core';
import type { GunyahGuestMem, GunyahHostMapping } from '../api.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, GHMF_ALLOW_HUGEPAGE, type MapFlags } from '../uapi/index.js';
import { GuestMemFile, HostMapping, type GuestMemOps, type PageRange } from './core-seam.js';
import { BACKEND, RECLAIM_REFUSED, err, withSyscall } from './errors.js';
import { isLent, isProvided, pageTransition, type PageState } from './page-state.js';
import type { SimDevice } from './device.js';
import type { SimVm } from './vm.js';
import { guardedHandle, unguard } from './leak-guard.js';

const HUGE = 512;
/** `MAX_LFS_FILESIZE` on 64-bit: the VFS answers EFBIG past it. */
const MAX_LFS = (1n << 63n) - 1n;
/** Every mode bit the VFS knows (`FALLOC_FL_SUPPORTED_MASK`); others are EOPNOTSUPP. */
const FALLOC_SUPPORTED_MASK = 0x7f;
/** Creation stamps of bindings (see {@link SimBinding.seq}). */
let nextSeq = 0;

/**
 * One `GUNYAH_VM_MAP_MEM` binding: `nr` pages of `mem` from page `off`, at guest frame `gfn` of
 * `vm`. Page numbers are plain numbers (2^52 covers every 64-bit address).
 */
export class SimBinding {
  /**
   * Creation order. The kernel keeps a file's bindings on `i_private_list` newest first, and walks
   * that stop at their first hit (UNMAP lookup, mmap reclaim) depend on it; core's index is ordered
   * by file offset, so {@link SimGuestMem.bindingsNewestFirst} re-sorts by this.
   */
  readonly seq = nextSeq++;
  constructor(
    readonly vm: SimVm,
    readonly mem: SimGuestMem,
    public gfn: number,
    public off: number,
    public nr: number,
    /** raw flags word without UNMAP, compared verbatim on unbind */
    readonly rawFlags: number,
    readonly flags: MapFlags,
    readonly lend: boolean,
  ) {}
  get offEnd(): number {
    return this.off + this.nr;
  }
  gfnOf(index: number): number {
    return index - this.off + this.gfn;
  }
  indexOf(gfn: number): number {
    return gfn - this.gfn + this.off;
  }
}

/**
 * End of a binding in core's index. Core indexes pages below 2^52 only, and a u64 offset + size can
 * end past that; those pages never hold memory, and every binding *starts* below 2^52, so clipping
 * the end there keeps core's overlap answers exact. `SimBinding.nr` keeps the real length.
 */
const indexEnd = (b: SimBinding): number => Math.min(b.offEnd, MAX_PAGE_INDEX + 1);

/** A folio currently in some VM's stage 2 (the driver's `mm` tree entry plus PG_private). */
export interface ProvidedFolio {
  readonly head: number;
  readonly nr: number;
  readonly binding: SimBinding;
}

/** Which reclaims may override a guest's lock. */
type ReclaimMode = 'normal' | 'teardown';

/**
 * A Gunyah guest-memory file (`[gh-gmem]` anon inode) on core's {@link GuestMemFile}: folios,
 * punch, allocate, lifetime and the bindings index are core's; the per-page provide/lend/lock state
 * and the host rules live here and reach core through {@link GuestMemOps}.
 */
export class SimGuestMem implements GunyahGuestMem {
  readonly file: GuestMemFile<SimBinding>;
  readonly mappings = new Set<SimHostMapping>();
  /** Provided folios by head page index. */
  readonly provided = new Map<number, ProvidedFolio>();
  /** State of each provided page; a page not in here is HOST (present) or ABSENT. */
  private readonly states = new Map<number, PageState>();
  private fdOpen = true;

  constructor(
    readonly device: SimDevice,
    readonly fd: number,
    size: bigint,
    flags: bigint,
  ) {
    this.file = GuestMemFile.create(size, flags, this.hooks(), {
      allocator: device.allocator,
      defaultOrder: (flags & GHMF_ALLOW_HUGEPAGE) !== 0n ? 9 : 0,
    });
  }

  get size(): bigint {
    return this.file.size;
  }
  get flags(): bigint {
    return this.file.flags;
  }
  get huge(): boolean {
    return (this.flags & GHMF_ALLOW_HUGEPAGE) !== 0n;
  }
  get isOpen(): boolean {
    return this.fdOpen;
  }

  // ------------------------------------------------------------------ page state

  pageState(index: number): PageState {
    return this.states.get(index) ?? (index < this.file.pages && this.file.isPresent(index) ? 'HOST' : 'ABSENT');
  }

  /** The folio span `[head, head+nr)` containing a present page. */
  folioSpan(index: number): { head: number; nr: number } {
    return this.file.folioOrder(index) === 9 ? { head: index - (index % HUGE), nr: HUGE } : { head: index, nr: 1 };
  }

  /**
   * The state of a provided page, undefined for any other (HOST or ABSENT): one lookup, for the
   * guest-access shortcut. A page has a state exactly while its folio is in {@link provided}
   * (`provide` sets both, `dropProvided` removes both, other transitions only change a state).
   */
  providedState(index: number): PageState | undefined {
    return this.states.get(index);
  }

  providedAt(index: number): ProvidedFolio | undefined {
    if (!this.states.has(index)) return undefined;
    return this.provided.get(this.folioSpan(index).head);
  }

  /** True when a live host mapping covers any page of `[first, end)` (a VMA, faulted or not). */
  hostMapped(first: number, end: number): boolean {
    for (const m of this.mappings) if (m.firstPage < end && m.endPage > first) return true;
    return false;
  }

  /**
   * Guest fault on `index` through binding `b`: get (or create and zero) the folio, then donate and
   * map the **whole** folio. Returns 0 or a negative errno for `page_fault.attempt`.
   */
  provide(b: SimBinding, index: number, access = true): number {
    if (index >= this.file.pages) return -12; // see README: no page cache past EOF in core → -ENOMEM
    try {
      this.file.getFolio(index);
    } catch (e) {
      if (e instanceof GuestMemError && e.errno > 0) return -e.errno;
      throw e;
    }
    const { head, nr } = this.folioSpan(index);
    if (this.provided.has(head)) return 0; // -EAGAIN in the driver: counts as success
    // Lend-safety: no host VMA may cover a folio being lent, even one never faulted in.
    if (b.lend && this.hostMapped(head, head + nr)) return -1;
    this.device.guestMapGen++;
    this.provided.set(head, { head, nr, binding: b });
    for (let i = head; i < head + nr; i++) {
      const t = pageTransition(this.pageState(i), { type: 'provide', lend: b.lend, access });
      if (!t.ok) throw new Error(`gunyah-sim: provide of page ${i} in state ${this.pageState(i)}`);
      this.states.set(i, t.state);
    }
    return 0;
  }

  /** The guest touched a provided page: a relinquished lent page is locked again. */
  guestTouch(index: number): void {
    const t = pageTransition(this.pageState(index), { type: 'guestAccess' });
    if (t.ok) {
      this.device.guestMapGen++;
      this.states.set(index, t.state);
    }
  }

  /** The guest's relinquish hypercall on one page; `sanitize` zeroes it. Returns false if not lent. */
  relinquish(index: number, sanitize: boolean): boolean {
    const t = pageTransition(this.pageState(index), { type: 'relinquish' });
    if (!t.ok) return false;
    this.device.guestMapGen++;
    this.states.set(index, t.state);
    if (sanitize) this.file.fill(BigInt(index) * PAGE_SIZE_N, PAGE_SIZE, 0);
    return true;
  }

  /**
   * `relinquished`: pages `[first, end)` are judged as if the guest had relinquished them first
   * (what a cooperating guest does before a host-initiated removal), without changing them.
   */
  private folioReclaimable(pf: ProvidedFolio, mode: ReclaimMode, relinquished?: { first: number; end: number }): boolean {
    if (mode === 'teardown') return true;
    for (let i = pf.head; i < pf.head + pf.nr; i++) {
      let state = this.pageState(i);
      if (relinquished && i >= relinquished.first && i < relinquished.end) {
        const t = pageTransition(state, { type: 'relinquish' });
        if (t.ok) state = t.state;
      }
      if (!pageTransition(state, { type: 'reclaim' }).ok) return false;
    }
    return true;
  }

  private dropProvided(pf: ProvidedFolio): void {
    this.device.guestMapGen++;
    this.provided.delete(pf.head);
    for (let i = pf.head; i < pf.head + pf.nr; i++) this.states.delete(i);
  }

  /** Provided folios intersecting pages `[first, end)`, optionally only those of `binding`. */
  providedIn(first: number, end: number, binding?: SimBinding): ProvidedFolio[] {
    const out: ProvidedFolio[] = [];
    if (end - first > this.provided.size * 4) {
      for (const pf of this.provided.values()) {
        if (pf.head < end && pf.head + pf.nr > first && (!binding || pf.binding === binding)) out.push(pf);
      }
    } else {
      // A provided folio covers [head, head + nr): the next one starts after it (no quadratic dedup).
      for (let i = first; i < end; ) {
        const pf = this.providedAt(i);
        if (!pf) {
          i++;
          continue;
        }
        if (!binding || pf.binding === binding) out.push(pf);
        i = pf.head + pf.nr;
      }
    }
    return out;
  }

  /**
   * Reclaims every provided folio intersecting `[first, end)` (of `binding` only, when given),
   * folio by folio as `gunyah_vm_reclaim_range` does (v17 20/35): a folio holding a page the guest
   * locked stays provided, the others come back, and the first refusal is returned (null when all
   * came back). `teardown` overrides locks (the VM is stopped; see README).
   */
  reclaim(
    first: number,
    end: number,
    op: string,
    syscall: string | undefined,
    opts: { binding?: SimBinding; mode?: ReclaimMode } = {},
  ): GuestMemError | null {
    const mode = opts.mode ?? 'normal';
    let refused: ProvidedFolio | undefined;
    for (const pf of this.providedIn(first, end, opts.binding)) {
      if (this.folioReclaimable(pf, mode)) this.dropProvided(pf);
      else refused ??= pf;
    }
    return refused ? this.refusal(refused, op, syscall) : null;
  }

  private refusal(locked: ProvidedFolio, op: string, syscall: string | undefined): GuestMemError {
    return err(
      RECLAIM_REFUSED,
      op,
      syscall,
      `folio at page ${locked.head} (${locked.nr} pages) is lent and locked by the guest; it must relinquish it first`,
      {
        head: locked.head,
        pages: locked.nr,
      },
    );
  }

  /**
   * What {@link reclaim} would refuse with, without changing anything. With `assumeRelinquished`,
   * as if the guest had first relinquished its lent pages of `[first, end)` (of `binding`).
   */
  checkReclaim(
    first: number,
    end: number,
    op: string,
    syscall: string | undefined,
    opts: { binding?: SimBinding; mode?: ReclaimMode; assumeRelinquished?: boolean } = {},
  ): GuestMemError | null {
    const mode = opts.mode ?? 'normal';
    const relinquished = opts.assumeRelinquished ? { first, end } : undefined;
    const locked = this.providedIn(first, end, opts.binding).find((pf) => !this.folioReclaimable(pf, mode, relinquished));
    return locked ? this.refusal(locked, op, syscall) : null;
  }

  /** Hooks given to core: policy only, no data. */
  private hooks(): GuestMemOps<SimBinding> {
    return {
      backend: BACKEND,
      // A punch (or any core reclaim) first asks whether every provided folio can come back.
      mayReclaim: (_f, r: PageRange) => {
        const locked = this.providedIn(r.first, r.end).find((pf) => !this.folioReclaimable(pf, 'normal'));
        return locked
          ? err(RECLAIM_REFUSED, 'punchHole', 'fallocate', `folio at page ${locked.head} is lent and locked by the guest`, {
              head: locked.head,
            })
          : null;
      },
      invalidateBegin: (_f, r: PageRange, reason) => {
        // 'punch' was vetted by mayReclaim; 'release' cannot find anything provided (bindings pin
        // the file); 'poison' is memory failure, where the hypervisor must give the page back.
        const e = this.reclaim(r.first, r.end, reason, undefined, { mode: reason === 'punch' ? 'normal' : 'teardown' });
        if (e) throw e;
      },
      // Host fault on a lent folio: try to reclaim it first; if the hypervisor refuses, SIGBUS.
      hostAccess: (_f, index) => {
        if (!isLent(this.pageState(index))) return 'allow';
        const { head, nr } = this.folioSpan(index);
        return this.reclaim(head, head + nr, 'host access', undefined) ? 'sigbus' : 'allow';
      },
    };
  }

  // ------------------------------------------------------------------ file operations

  fallocate(mode: number, offset: bigint | number, len: bigint | number, opts: { signal?: AbortSignal } = {}): void {
    const op = 'fallocate';
    this.assertOpen(op, 'fallocate');
    const off = toBig(offset, op, BACKEND);
    const ln = toBig(len, op, BACKEND);
    // vfs_fallocate's checks come first…
    if (off < 0n || ln <= 0n) throw err('EINVAL', op, 'fallocate', `offset ${off}, len ${ln}`);
    if (mode & ~FALLOC_SUPPORTED_MASK) throw err('EOPNOTSUPP', op, 'fallocate', `unknown mode bits 0x${mode.toString(16)}`);
    if (mode & FALLOC_FL_PUNCH_HOLE && mode & FALLOC_FL_ZERO_RANGE)
      throw err('EOPNOTSUPP', op, 'fallocate', 'PUNCH_HOLE and ZERO_RANGE together');
    if (mode & FALLOC_FL_PUNCH_HOLE && !(mode & FALLOC_FL_KEEP_SIZE))
      throw err('EOPNOTSUPP', op, 'fallocate', 'PUNCH_HOLE needs KEEP_SIZE');
    // COLLAPSE_RANGE (0x08) and INSERT_RANGE (0x20) only alone; UNSHARE_RANGE (0x40) only with KEEP_SIZE.
    if ((mode & 0x08 && mode & ~0x08) || (mode & 0x20 && mode & ~0x20) || (mode & 0x40 && mode & ~(0x40 | FALLOC_FL_KEEP_SIZE))) {
      throw err('EINVAL', op, 'fallocate', `mode 0x${mode.toString(16)} combines an exclusive mode with others`);
    }
    if (off + ln > MAX_LFS) throw err('EFBIG', op, 'fallocate', `offset + len = ${off + ln}`);
    // …then gunyah_gmem_fallocate's.
    if (!(mode & FALLOC_FL_KEEP_SIZE)) throw err('EOPNOTSUPP', op, 'fallocate', 'KEEP_SIZE is mandatory');
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
      throw err('EOPNOTSUPP', op, 'fallocate', `mode 0x${mode.toString(16)}: only PUNCH_HOLE or ZERO_RANGE with KEEP_SIZE`);
    }
    if (off % PAGE_SIZE_N !== 0n || ln % PAGE_SIZE_N !== 0n)
      throw err('EINVAL', op, 'fallocate', `offset ${off} / len ${ln} not page-aligned`);
    if (mode & FALLOC_FL_PUNCH_HOLE) return this.punch(off, ln);
    // Quirk: ZERO_RANGE lands here too — it allocates and does not zero existing data (v17 code).
    if (off + ln > this.size) throw err('EINVAL', op, 'fallocate', `[${off}, ${off + ln}) goes past the file size ${this.size}`);
    withSyscall(op, 'fallocate', () => this.file.allocate(off, ln, { signal: opts.signal, order: this.huge ? 9 : 0 }));
  }

  /**
   * PUNCH_HOLE = `invalidate_inode_pages2_range`, which works folio by folio and drops **whole
   * folios**: a 2 MiB folio only partly inside the range goes entirely (its other pages read zero
   * afterwards). Each provided folio is reclaimed from its VM first (`release_folio` → launder); a
   * folio the guest locked cannot be released and stays with its data, the others are dropped, and
   * the call then fails with EBUSY naming the first kept folio (`info.head`).
   *
   * v17 passes byte offsets (`offset`, `offset + len - 1`) where the helper takes page indices; the
   * intent — punch exactly `[offset, offset+len)` — is what the simulation does (README).
   */
  private punch(off: bigint, len: bigint): void {
    const { first, end } = this.punchRange(off, len);
    if (first >= end) return;
    const kept = this.providedIn(first, end)
      .filter((pf) => !this.folioReclaimable(pf, 'normal'))
      .sort((a, b) => a.head - b.head);
    let at = first;
    for (const pf of [...kept, { head: end, nr: 0 }]) {
      if (pf.head > at)
        withSyscall('fallocate', 'fallocate', () => this.file.punchHole(BigInt(at) * PAGE_SIZE_N, BigInt(pf.head - at) * PAGE_SIZE_N));
      at = Math.max(at, pf.head + pf.nr);
    }
    if (kept[0]) throw this.refusal(kept[0] as ProvidedFolio, 'fallocate', 'fallocate');
  }

  /** The pages a punch of `[off, off+len)` invalidates: clipped to EOF, widened to whole folios. */
  punchRange(off: bigint, len: bigint): { first: number; end: number } {
    const pages = BigInt(this.file.pages);
    const f = off / PAGE_SIZE_N;
    const e = (off + len) / PAGE_SIZE_N;
    if (f >= pages) return { first: 0, end: 0 };
    let first = Number(f);
    let end = Number(e < pages ? e : pages);
    if (this.file.folioOrder(first) === 9) first -= first % HUGE;
    if (this.file.folioOrder(end - 1) === 9) end = end - 1 - ((end - 1) % HUGE) + HUGE;
    return { first, end };
  }

  /**
   * mmap(MAP_SHARED). Before mapping, the folios of every LEND binding that the mapping covers are
   * reclaimed (v17 24/35 `gunyah_gmem_mmap`, whose comment states the intent: "userspace can only
   * mmap if the folios covered by the requested offset are not lent to the guest"). The v17 code
   * reclaims from the mapping's start to `max(vma end, binding end)` and does not skip a mapping
   * that merely touches a binding's end (`>` for `>=`), so it can reclaim past the mapping and
   * outside the binding; the simulation keeps the intent: exactly the overlap (README).
   */
  mmap(args: { offset: bigint | number; length: bigint | number; shared?: boolean }): GunyahHostMapping {
    const op = 'mmap';
    this.assertOpen(op, 'mmap');
    const off = toBig(args.offset, op, BACKEND);
    const length = toBig(args.length, op, BACKEND);
    if (length <= 0n || off < 0n || off % PAGE_SIZE_N !== 0n) throw err('EINVAL', op, 'mmap', `offset ${off}, length ${length}`);
    if (args.shared === false) throw err('EINVAL', op, 'mmap', 'only MAP_SHARED mappings are supported (no COW)');
    const first = Number(off / PAGE_SIZE_N);
    const end = Number((off + length + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
    for (const b of this.bindingsNewestFirst(first, end)) {
      if (!b.lend) continue;
      const e = this.reclaim(Math.max(first, b.off), Math.min(end, b.offEnd), op, 'mmap', { binding: b });
      if (e) throw e;
    }
    const m = new SimHostMapping(this, off, Number(length));
    return guardedHandle(
      m,
      'gunyah-sim host mapping',
      `gunyah-sim host mapping of guest-memory fd ${this.fd} at ${off} (${length} bytes)`,
      (x) => x.unmap(),
    );
  }

  /**
   * ftruncate(2). The v17 inode is `S_IFREG` with no `setattr` (23/35 creates it with
   * `anon_inode_create_getfile` and sets only `i_mode |= S_IFREG`), so `do_ftruncate` → `do_truncate`
   * → `notify_change` falls back to `simple_setattr`: `setattr_prepare` (`inode_newsize_ok`: EFBIG
   * past `s_maxbytes` = MAX_LFS_FILESIZE) then `truncate_setsize`. Before that, `do_ftruncate`
   * answers EINVAL for a negative length. See {@link GunyahGuestMem.ftruncate} for the deviations.
   */
  ftruncate(length: bigint | number): void {
    const op = 'ftruncate';
    this.assertOpen(op, op);
    const len = toBig(length, op, BACKEND);
    if (this.device.truncate === 'fixed') throw err('EINVAL', op, op, 'the size of this guest-memory file is fixed (setattr refuses it)');
    if (len < 0n) throw err('EINVAL', op, op, `length ${len} < 0`);
    if (len > MAX_LFS) throw err('EFBIG', op, op, `length ${len} > MAX_LFS_FILESIZE`);
    if (len === 0n || len % PAGE_SIZE_N !== 0n) {
      throw err('EINVAL', op, op, `length ${len}: the simulation keeps sizes page-aligned and > 0 (v17 would accept it; see README)`);
    }
    if (len < this.size) {
      // truncate_pagecache drops these folios without asking the VMs (no invalidate_folio aop): a
      // folio still provided would stay in the guest, detached from the file. Not modelled: refused.
      const first = Number(len / PAGE_SIZE_N);
      const held = this.providedIn(first, this.file.pages)[0];
      if (held)
        throw err(RECLAIM_REFUSED, op, op, `folio at page ${held.head} past the new size is still provided to a VM`, { head: held.head });
    }
    withSyscall(op, op, () => this.file.setSize(len));
  }

  close(): void {
    this.assertOpen('close', 'close');
    unguard(this);
    this.fdOpen = false;
    this.device.closeFd(this.fd);
    this.file.release();
  }

  private assertOpen(op: string, syscall: string): void {
    if (!this.fdOpen) throw err('EBADF', op, syscall, `fd ${this.fd} is closed`);
  }

  /**
   * This file's bindings in every VM (core's index) intersecting pages `[first, end)`, newest first:
   * the kernel's `i_private_list` order.
   */
  bindingsNewestFirst(first = 0, end = Infinity): SimBinding[] {
    return this.file
      .bindingsIn(first, end)
      .map((x) => x.owner)
      .sort((a, b) => b.seq - a.seq);
  }

  /** Every binding of this file, in any VM, newest first. */
  get bindings(): SimBinding[] {
    return this.bindingsNewestFirst();
  }

  /**
   * Registers a binding in core's index (full range: v17 never checks it against the file size) and
   * takes the file reference it holds. The caller has done the overlap check (see `SimVm.addMapping`).
   */
  addBinding(b: SimBinding): void {
    this.file.bind(b.off, indexEnd(b), b, { overlapCode: 'EEXIST', op: 'GUNYAH_VM_MAP_MEM', allowPastEof: true });
    this.file.acquire();
  }

  /** Head/tail UNMAP: the binding `b` was trimmed in place; core's index follows. */
  resizeBinding(b: SimBinding): void {
    this.file.resizeBinding(b, b.off, indexEnd(b));
  }

  /** Drops a binding and its file reference (the file may be released here). */
  removeBinding(b: SimBinding): void {
    this.file.unbind(b);
    this.file.release();
  }
}

/** A host `mmap` of a guest-memory file, on core's {@link HostMapping}; tracked for lend-safety. */
export class SimHostMapping implements GunyahHostMapping {
  private readonly inner: HostMapping;
  readonly firstPage: number;
  readonly endPage: number;

  constructor(
    readonly mem: SimGuestMem,
    readonly offset: bigint,
    length: number,
  ) {
    this.inner = new HostMapping(mem.file, { offset, length });
    this.firstPage = Number(offset / PAGE_SIZE_N);
    this.endPage = this.firstPage + this.inner.length / PAGE_SIZE;
    mem.mappings.add(this);
  }
  get length(): bigint {
    return BigInt(this.inner.length);
  }
  read(at: bigint | number, length: number): Uint8Array {
    return this.inner.read(Number(at), length);
  }
  readInto(at: bigint | number, dst: Uint8Array, dstOffset = 0): void {
    this.inner.readInto(Number(at), dst, dstOffset);
  }
  write(at: bigint | number, data: Uint8Array): void {
    this.inner.write(Number(at), data);
  }
  fill(at: bigint | number, length: number, byte: number): void {
    this.inner.fill(Number(at), length, byte);
  }
  unmap(): void {
    if (!this.mem.mappings.delete(this)) return;
    unguard(this);
    this.inner.unmap();
  }
}

export { isProvided };
