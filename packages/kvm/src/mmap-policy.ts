import { GuestMemError } from '@guestmem/core';
import type { IntArg } from './api.js';
import { MADV_GUARD_INSTALL, MADV_HWPOISON, MADV_SOFT_OFFLINE, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE } from './uapi/constants.js';

/**
 * guestmem's own mmap policy, shared by both drivers so they refuse identically: `MAP_FIXED`
 * (without `MAP_FIXED_NOREPLACE`) could silently replace memory of the Node process, and
 * `MAP_ANONYMOUS` would not map the file at all. Refused with EINVAL before any syscall (so
 * `syscall` is unset); use `MAP_FIXED_NOREPLACE` for a fixed address. With `MAP_FIXED_NOREPLACE`
 * both pass to the kernel, which cannot replace anything then; for `MAP_ANONYMOUS` it ignores the fd
 * and maps anonymous memory, and both drivers return an anonymous mapping.
 */
export function refuseUnsafeMmapFlags(flags: number, backend: string, address?: IntArg): void {
  if (flags & (MAP_FIXED | MAP_ANONYMOUS) && !(flags & MAP_FIXED_NOREPLACE)) {
    throw new GuestMemError({
      code: 'EINVAL',
      op: 'mmap',
      backend,
      detail: 'MAP_FIXED and MAP_ANONYMOUS are refused by guestmem (use MAP_FIXED_NOREPLACE)',
      info: { flags },
    });
  }
  // Why: as root (CAP_SYS_RAWIO) the kernel maps a MAP_FIXED_NOREPLACE request below mmap_min_addr,
  // address 0 included (probed: a guest_memfd page at address 0 of the Node process), which turns a
  // NULL dereference anywhere in the process into a silent access to guest memory. guestmem refuses
  // every fixed address below the x86 default mmap_min_addr (64 KiB), with the EPERM an unprivileged
  // process gets, whatever the host's sysctl and the caller's privileges.
  if (flags & MAP_FIXED_NOREPLACE) {
    const at = address ?? 0;
    if ((typeof at === 'bigint' || Number.isSafeInteger(at)) && BigInt(at) >= 0n && BigInt(at) < LOWEST_FIXED_ADDRESS) {
      throw new GuestMemError({
        code: 'EPERM',
        op: 'mmap',
        backend,
        detail: `MAP_FIXED_NOREPLACE at 0x${BigInt(at).toString(16)} is refused by guestmem: nothing is ever mapped below 64 KiB (the NULL-page guard)`,
        info: { flags, address: at },
      });
    }
  }
}

/** The lowest address guestmem maps at with `MAP_FIXED_NOREPLACE`: x86's default `mmap_min_addr`. */
export const LOWEST_FIXED_ADDRESS = 0x10000n;

/**
 * guestmem's madvise policy, shared by both drivers: advice after which a later access would signal
 * the process (SIGBUS for a poisoned page, SIGSEGV for a guard region) is refused with EINVAL before
 * any syscall. On the probe kernel HWPOISON and SOFT_OFFLINE are EINVAL anyway (no
 * CONFIG_MEMORY_FAILURE); GUARD_INSTALL would succeed and zap the range.
 */
export function refuseUnsafeMadvise(advice: number, backend: string): void {
  if (advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE || advice === MADV_GUARD_INSTALL) {
    throw new GuestMemError({
      code: 'EINVAL',
      op: 'madvise',
      backend,
      detail: `advice ${advice} is refused by guestmem: a later access would signal the process`,
      info: { advice },
    });
  }
}

const U64 = (1n << 64n) - 1n;

/** How a `madvise(address + offset, len)` request relates to one mapping (see {@link madviseRange}). */
export interface MadviseRange {
  /** `address + offset` as the kernel sees it (mod 2^64). */
  readonly start: bigint;
  /** `len` as the kernel receives it (u64). */
  readonly len: bigint;
  /**
   * The kernel refuses the request before looking at any VMA (start unaligned, or `len` whose page
   * round-up wraps): passing it through cannot touch memory.
   */
  readonly refusedEarly: boolean;
  /** `PAGE_ALIGN(len)` is 0: the kernel returns 0 after its argument checks, touching nothing. */
  readonly empty: boolean;
  /** The page-aligned part of the request inside the mapping, if any (`[from, to)` mapping offsets). */
  readonly inside: { readonly from: bigint; readonly to: bigint } | undefined;
  /** Part of the request lies outside the mapping (the kernel answers ENOMEM for an unmapped hole). */
  readonly outside: boolean;
}

/**
 * The arithmetic of `madvise` against one mapping `[address, address + mapped)` (`mapped` page-aligned,
 * 0 once unmapped), in the kernel's terms (6.18 `madvise_should_skip`: start aligned, `PAGE_ALIGN(len)`
 * must not wrap to 0 from a non-zero len, `start + len` must not wrap; then the VMA walk). Both drivers
 * use it so a request never reaches memory outside the mapping.
 */
export function madviseRange(address: bigint, mapped: bigint, offset: bigint, len: bigint): MadviseRange {
  const start = (address + offset) & U64;
  const alen = (len + 4095n) & ~4095n & U64;
  const end = start + alen;
  const refusedEarly = (start & 4095n) !== 0n || (len !== 0n && alen === 0n) || end > U64;
  const empty = alen === 0n;
  if (refusedEarly || empty) return { start, len, refusedEarly, empty, inside: undefined, outside: false };
  const from = start > address ? start : address;
  const to = end < address + mapped ? end : address + mapped;
  const inside = from < to ? { from: from - address, to: to - address } : undefined;
  const outside = start < address || end > address + mapped;
  return { start, len, refusedEarly, empty, inside, outside };
}
