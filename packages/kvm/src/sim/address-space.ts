/**
 * The simulated host virtual address space: page-aligned, non-overlapping ranges handed out top-down
 * below 128 TiB like x86-64 `mmap`, so a mapping's `address` is a valid `userspace_addr` for KVM and
 * can be resolved back to its mapping (the guest's view through a non-gmem-only slot).
 */
import { sysErr } from './errors.js';

/** x86-64 `TASK_SIZE_MAX` with 4-level paging: the end of user space. */
export const TASK_SIZE = 0x7fff_ffff_f000n;
/** Where top-down allocation starts (roughly where glibc's mmap_base lands). */
const MMAP_BASE = 0x7f00_0000_0000n;
/** `mmap_min_addr`. */
const MIN_ADDR = 0x1_0000n;

/** `MAP_32BIT`'s window: `[1 GiB + 32 MiB, 2 GiB)` (see `SimAddressSpace.placeLow`). */
const LOW_WINDOW_START = 0x4200_0000n;
const LOW_WINDOW_END = 0x8000_0000n;

/** How a non-fixed mapping is placed. */
export interface PlaceOptions {
  /** The `addr` argument of mmap without MAP_FIXED: used when free. */
  readonly hint?: bigint;
  /** `MAP_32BIT`. */
  readonly below2G?: boolean;
}

export interface SimVma<T> {
  readonly start: bigint;
  readonly end: bigint;
  readonly owner: T;
}

/**
 * Ranges hold their owner weakly: a mapping object dropped without munmap() can be collected, and
 * the safety net (`leak-guard.ts`) then frees its range through {@link releaseCollected}.
 */
export class SimAddressSpace<T extends object> {
  /** Live ranges, sorted by start. */
  private readonly vmas: Array<{ readonly start: bigint; readonly end: bigint; readonly ref: WeakRef<T> }> = [];
  /** Ranges of collected owners kept reserved while still in use. */
  private deferred: Array<{ start: bigint; inUse: () => boolean }> = [];

  /**
   * Reserves `len` bytes (page-aligned). With `fixed` the range must start there and be free
   * (MAP_FIXED_NOREPLACE: EEXIST otherwise); without it see {@link place}.
   */
  map<U extends T>(len: bigint, make: (address: bigint) => U, fixed?: bigint, opts: PlaceOptions = {}): U {
    const start = this.place(len, fixed, opts);
    const owner = make(start);
    this.insert({ start, end: start + len, ref: new WeakRef(owner) });
    return owner;
  }

  /**
   * Where {@link map} would put the range (throws ENOMEM/EEXIST as `get_unmapped_area` does); reserves
   * nothing. Without `fixed`, as x86-64 6.18 does (probed): `MAP_32BIT` takes the lowest free range
   * of the legacy window below 2 GiB; otherwise a `hint` (`round_hint_to_min`: rounded down to a page,
   * raised to mmap_min_addr when non-zero and below it) is used when the range there is free and
   * ends within user space; else the highest free range below MMAP_BASE.
   */
  place(len: bigint, fixed?: bigint, opts: PlaceOptions = {}): bigint {
    this.retryDeferred();
    if (fixed === undefined && opts.below2G) return this.placeLow(len, opts.hint);
    if (fixed === undefined && opts.hint !== undefined) {
      let h = opts.hint & ~4095n;
      if (h !== 0n && h < MIN_ADDR) h = MIN_ADDR;
      if (h !== 0n && h + len <= TASK_SIZE && this.isFree(h, len)) return h;
    }
    if (fixed !== undefined) {
      if (fixed + len > TASK_SIZE) throw sysErr('ENOMEM', 'mmap', 'mmap', `[${fixed}, +${len}) leaves user space`);
      if (this.vmas.some((v) => v.start < fixed + len && fixed < v.end)) {
        throw sysErr('EEXIST', 'mmap', 'mmap', `MAP_FIXED_NOREPLACE range at 0x${fixed.toString(16)} is in use`);
      }
      return fixed;
    }
    let top = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= 0; i--) {
      const v = this.vmas[i]!;
      if (v.start >= top) continue;
      if (v.end <= top - len) break;
      top = v.start;
    }
    if (top - len < MIN_ADDR) throw sysErr('ENOMEM', 'mmap', 'mmap', `no free range of ${len} bytes`);
    return top - len;
  }

  /**
   * `MAP_32BIT`: bottom-up in `[LOW_WINDOW_START, 2 GiB)`. The kernel's window starts at 1 GiB plus a
   * random offset below 32 MiB (ASLR); the sim takes the highest such start, so a request the sim
   * grants always fits on the kernel (inference from arch/x86/kernel/sys_x86_64.c find_start_end).
   */
  private placeLow(len: bigint, hint?: bigint): bigint {
    if (hint !== undefined && hint !== 0n) {
      const h = (hint + 4095n) & ~4095n;
      if (h >= LOW_WINDOW_START && h + len <= LOW_WINDOW_END && this.isFree(h, len)) return h;
    }
    let at = LOW_WINDOW_START;
    for (const v of this.vmas) {
      if (v.end <= at) continue;
      if (v.start >= at + len) break;
      at = v.end;
    }
    if (at + len > LOW_WINDOW_END) throw sysErr('ENOMEM', 'mmap', 'mmap', `no free range of ${len} bytes below 2 GiB (MAP_32BIT)`);
    return at;
  }

  private isFree(start: bigint, len: bigint): boolean {
    return !this.vmas.some((v) => v.start < start + len && start < v.end);
  }

  unmap(start: bigint): void {
    const i = this.vmas.findIndex((v) => v.start === start);
    if (i >= 0) this.vmas.splice(i, 1);
  }

  /** The range containing `address`, if any (a reserved range whose owner was collected maps nothing). */
  find(address: bigint): SimVma<T> | undefined {
    const v = this.vmas.find((x) => x.start <= address && address < x.end);
    const owner = v?.ref.deref();
    return v && owner ? { start: v.start, end: v.end, owner } : undefined;
  }

  get size(): number {
    this.retryDeferred();
    return this.vmas.length;
  }

  /** The owner of the range at `start` was collected: the range is freed now, or once `inUse()` turns false. */
  releaseCollected(start: bigint, inUse: () => boolean): void {
    if (inUse()) this.deferred.push({ start, inUse });
    else this.unmap(start);
  }

  private retryDeferred(): void {
    if (this.deferred.length === 0) return;
    const still = this.deferred.filter((d) => d.inUse());
    for (const d of this.deferred) if (!still.includes(d)) this.unmap(d.start);
    this.deferred = still;
  }

  private insert(vma: { readonly start: bigint; readonly end: bigint; readonly ref: WeakRef<T> }): void {
    let i = 0;
    while (i < this.vmas.length && this.vmas[i]!.start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }
}
