import { gmErr } from '../errors/guest-mem-error.js';

/**
 * A process's locked-memory account (`mm->locked_vm` against `RLIMIT_MEMLOCK`), as Linux's
 * `account_locked_vm()` keeps it for long-term pins: charging past the limit fails with `ENOMEM`
 * unless the process has `CAP_IPC_LOCK`, and changes nothing. Counts pages.
 */
export class LockedMemoryAccount {
  private locked = 0;

  /**
   * @param limitBytes RLIMIT_MEMLOCK in bytes (`Infinity` = unlimited, what `ulimit -l unlimited` gives).
   * @param capIpcLock the process may lock past the limit (CAP_IPC_LOCK).
   */
  constructor(
    public limitBytes = 8 * 1024 * 1024,
    public capIpcLock = false,
  ) {}

  /** Pages currently charged. */
  get lockedPages(): number {
    return this.locked;
  }

  /** The limit in pages (`rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT`). */
  get limitPages(): number {
    return this.limitBytes === Infinity ? Infinity : Math.floor(this.limitBytes / 4096);
  }

  /** Charges `pages`; `ENOMEM` (nothing charged) when the total would pass the limit without CAP_IPC_LOCK. */
  charge(pages: number, op: string, backend: string, syscall?: string): void {
    if (!(Number.isInteger(pages) && pages >= 0)) throw gmErr('EINVAL', op, backend, `cannot charge ${pages} pages`);
    if (this.locked + pages > this.limitPages && !this.capIpcLock) {
      throw gmErr(
        'ENOMEM',
        op,
        backend,
        `locking ${pages} more pages passes RLIMIT_MEMLOCK (${this.locked} of ${this.limitPages} pages locked)`,
        {
          syscall,
          info: { locked: this.locked, pages, limit: this.limitPages },
        },
      );
    }
    this.locked += pages;
  }

  /** Uncharges `pages` (never below zero). */
  uncharge(pages: number): void {
    this.locked = Math.max(0, this.locked - pages);
  }
}
