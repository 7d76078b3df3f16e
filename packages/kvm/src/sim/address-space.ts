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
   * Reserves `len` bytes (page-aligned). With `fixed` the range must start at `hint` and be free
   * (MAP_FIXED_NOREPLACE: EEXIST otherwise); without it the highest free range below MMAP_BASE is used.
   */
  map<U extends T>(len: bigint, make: (address: bigint) => U, fixed?: bigint): U {
    const start = this.place(len, fixed);
    const owner = make(start);
    this.insert({ start, end: start + len, ref: new WeakRef(owner) });
    return owner;
  }

  /** Where {@link map} would put the range (throws ENOMEM/EEXIST as `get_unmapped_area` does); reserves nothing. */
  place(len: bigint, fixed?: bigint): bigint {
    this.retryDeferred();
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
