import type { FolioAllocator, FolioOrder, FolioStats } from '../folio/folio-allocator.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';

/** When a {@link FaultInjectingAllocator} fails an allocation. */
export interface FaultPlan {
  /** Fail the Nth allocation attempt (1-based), once. */
  failAt?: number;
  /** Fail every allocation attempt from the Nth on (1-based). */
  failFrom?: number;
  /** Fail an attempt when this returns true; `n` is the 1-based attempt number. */
  predicate?: (n: number, order: FolioOrder) => boolean;
}

/**
 * A {@link FolioAllocator} that fails chosen allocations with `ENOMEM`, for every package's tests:
 * wrap the real allocator and plan the failures. Everything else is delegated unchanged.
 */
export class FaultInjectingAllocator implements FolioAllocator {
  /** Allocation attempts seen so far. */
  attempts = 0;
  /** Attempts that were failed on purpose. */
  injected = 0;

  constructor(
    readonly inner: FolioAllocator = new ArenaFolioAllocator(),
    public plan: FaultPlan = {},
  ) {}

  private shouldFail(order: FolioOrder): boolean {
    const n = ++this.attempts;
    const p = this.plan;
    const fail = n === p.failAt || (p.failFrom !== undefined && n >= p.failFrom) || (p.predicate?.(n, order) ?? false);
    if (fail) this.injected++;
    return fail;
  }

  alloc(order: FolioOrder): number {
    if (this.shouldFail(order)) {
      // Let the inner allocator build the standard ENOMEM error by asking for an impossible amount.
      return new ArenaFolioAllocator({ limitBytes: 0 }).alloc(order);
    }
    return this.inner.alloc(order);
  }
  tryAlloc(order: FolioOrder): number {
    return this.shouldFail(order) ? -1 : this.inner.tryAlloc(order);
  }
  /** One attempt per folio, so plans count pages exactly as with {@link tryAlloc}. */
  allocMany(out: Int32Array, count: number): number {
    let n = 0;
    while (n < count) {
      const f = this.tryAlloc(0);
      if (f < 0) break;
      out[n++] = f;
    }
    return n;
  }
  free(folio: number): void {
    this.inner.free(folio);
  }
  freeMany(folios: Int32Array, count: number): void {
    this.inner.freeMany(folios, count);
  }
  orderOf(folio: number): FolioOrder {
    return this.inner.orderOf(folio);
  }
  isUptodate(folio: number): boolean {
    return this.inner.isUptodate(folio);
  }
  prepare(folio: number): void {
    this.inner.prepare(folio);
  }
  prepareMany(folios: Int32Array, count: number): void {
    this.inner.prepareMany(folios, count);
  }
  clearUptodate(folio: number): void {
    this.inner.clearUptodate(folio);
  }
  isPoisoned(folio: number): boolean {
    return this.inner.isPoisoned(folio);
  }
  setPoisoned(folio: number): void {
    this.inner.setPoisoned(folio);
  }
  view(folio: number): Uint8Array {
    return this.inner.view(folio);
  }
  arenaOf(folio: number): Uint8Array {
    return this.inner.arenaOf(folio);
  }
  arenaOffset(folio: number): number {
    return this.inner.arenaOffset(folio);
  }
  stats(): FolioStats {
    return this.inner.stats();
  }
}
