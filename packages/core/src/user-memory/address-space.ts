import { gmErr } from '../errors/guest-mem-error.js';
import { PAGE_SIZE_N } from '../types/brands.js';
import { LockedMemoryAccount } from './memlock.js';
import type { UserMemory, UserPagePin } from './user-memory.js';

/** One mapping of a {@link UserAddressSpace}: `memory` at `[start, end)`. */
export interface UserMapping {
  readonly start: bigint;
  readonly end: bigint;
  readonly memory: UserMemory;
}

/** Options of {@link UserAddressSpace}. */
export interface UserAddressSpaceOptions {
  /** `RLIMIT_MEMLOCK` in bytes (default 8 MiB, the common distribution default; `Infinity` = unlimited). */
  memlockLimit?: number;
  /** CAP_IPC_LOCK: long-term pins may pass the limit. Default false. */
  capIpcLock?: boolean;
  /** Backend id for errors. */
  backend?: string;
}

/** Highest address handed out (arm64 with 48-bit VAs: the top of the user half). */
const MMAP_TOP = 0xffff_ffff_f000n;
const MMAP_BASE = 0x7f00_0000_0000n;
const HUGE_BYTES = 2n << 20n;
let nextMm = 1;

/**
 * A simulated process's address space (an `mm`): which {@link UserMemory} lives at which host
 * virtual address, the process's locked-memory account, and an identity that drivers compare to
 * tell processes apart (`current->mm == vm->mm`). Mappings are placed top-down below 127 TiB, a
 * huge-page memory 2 MiB-aligned so its folios line up with the virtual addresses as THP needs.
 */
export class UserAddressSpace {
  /** Identity of the process (`mm`). */
  readonly id = nextMm++;
  readonly memlock: LockedMemoryAccount;
  readonly backend: string;
  private readonly maps: UserMapping[] = [];

  constructor(opts: UserAddressSpaceOptions = {}) {
    this.memlock = new LockedMemoryAccount(opts.memlockLimit ?? 8 * 1024 * 1024, opts.capIpcLock ?? false);
    this.backend = opts.backend ?? 'core';
  }

  /** Live mappings by address. */
  get mappings(): readonly UserMapping[] {
    return this.maps;
  }

  /**
   * `mmap` of `memory`: returns its address. With `fixed`, the range must be free (`EEXIST`, as
   * MAP_FIXED_NOREPLACE) and page-aligned (`EINVAL`). The mapping takes a reference on the memory.
   */
  map(memory: UserMemory, fixed?: bigint): bigint {
    const len = memory.size;
    let start: bigint;
    if (fixed !== undefined) {
      if (fixed < 0n || fixed % PAGE_SIZE_N !== 0n || fixed + len > MMAP_TOP)
        throw gmErr('EINVAL', 'mmap', this.backend, `address 0x${fixed.toString(16)}`);
      if (this.maps.some((m) => m.start < fixed + len && fixed < m.end))
        throw gmErr('EEXIST', 'mmap', this.backend, `0x${fixed.toString(16)} is in use`);
      start = fixed;
    } else {
      const align = memory.hugePages ? HUGE_BYTES : PAGE_SIZE_N;
      let top = MMAP_BASE;
      for (let i = this.maps.length - 1; i >= 0; i--) {
        const m = this.maps[i]!;
        if (m.start >= top) continue;
        if (m.end <= ((top - len) & ~(align - 1n))) break;
        top = m.start;
      }
      start = (top - len) & ~(align - 1n);
      if (start < 0x1_0000n) throw gmErr('ENOMEM', 'mmap', this.backend, `no free range of ${len} bytes`);
    }
    memory.acquire();
    const at = this.maps.findIndex((m) => m.start > start);
    this.maps.splice(at < 0 ? this.maps.length : at, 0, { start, end: start + len, memory });
    return start;
  }

  /** `munmap` of the whole mapping at `start` (partial unmaps are not modelled). Drops its reference. */
  unmap(start: bigint): void {
    const i = this.maps.findIndex((m) => m.start === start);
    if (i < 0) throw gmErr('EINVAL', 'munmap', this.backend, `no mapping starts at 0x${start.toString(16)}`);
    const [m] = this.maps.splice(i, 1);
    m!.memory.release();
  }

  /** The memory and byte offset behind `address`, if mapped. */
  resolve(address: bigint): { memory: UserMemory; offset: bigint } | undefined {
    for (const m of this.maps) if (m.start <= address && address < m.end) return { memory: m.memory, offset: address - m.start };
    return undefined;
  }

  /**
   * `pin_user_pages_fast(address, pages, FOLL_LONGTERM)`: pins page after page from `address` and
   * stops at the first one that is not mapped — like the kernel, it returns a *short* list then and
   * the caller decides (drivers unpin and answer `EFAULT`). `write` (FOLL_WRITE) on a memory that
   * is not writable cannot happen here: every mapping is read-write. Pins are not charged to
   * {@link memlock}; drivers do that (`account_locked_vm`).
   */
  pinUserPages(address: bigint, pages: number): UserPagePin[] {
    const out: UserPagePin[] = [];
    for (let i = 0; i < pages; i++) {
      const r = this.resolve(address + BigInt(i) * PAGE_SIZE_N);
      if (!r) break;
      out.push(r.memory.pin(Number(r.offset / PAGE_SIZE_N), 'pin_user_pages'));
    }
    return out;
  }
}
