/**
 * The range arithmetic of `madvise`, `mprotect`, `mlock2` and `munlock` against one guest_memfd
 * mapping, in Linux 6.18's order, shared by both drivers (see `KvmGmemMapping` in `api.ts`):
 * - the argument checks the kernel makes before looking at any VMA ({@link mprotectArgs},
 *   {@link mlockArgs}; madvise's are `madviseRange` in `mmap-policy.ts`). A request they refuse, or
 *   one entirely inside the mapping, goes to the native kernel unchanged;
 * - where the request reaches outside the mapping, the answer the kernel gives when nothing is
 *   mapped there ({@link outsidePlan}). The native driver then issues the call for the part inside
 *   only, so no memory outside the mapping is touched; the sim applies its own page rules to it.
 * - {@link MappingVmas}: the per-page protection and lock state of one mapping (what the kernel keeps
 *   in the VMAs the calls split it into). The native driver needs the protection to refuse an access
 *   that would SIGSEGV before touching memory; the sim needs both for its rules.
 *
 * Kernel sources: `do_mprotect_pkey` and `mprotect_fixup` (mm/mprotect.c), `do_mlock`,
 * `apply_vma_lock_flags`, `__mm_populate` and `__mlock_posix_error_return` (mm/mlock.c, mm/gup.c),
 * `madvise_walk_vmas` and `madvise_populate` (mm/madvise.c). Where a result was only probed (not read
 * in the source), the comment says "probed".
 */
import { RangeStateMap } from '@guestmem/core';
import type { GuestMemErrorCode } from '@guestmem/core';
import { MLOCK_ONFAULT, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM, PROT_WRITE } from './uapi/constants.js';

const U64 = (1n << 64n) - 1n;
const PAGE = 4096n;
const PAGE_MASK = PAGE - 1n;

/** The outcome of the pre-VMA argument checks: an errno, a no-op (0), or the page-aligned range `[start, end)`. */
export type ArgVerdict =
  | { readonly kind: 'error'; readonly code: GuestMemErrorCode }
  | { readonly kind: 'noop' }
  | { readonly kind: 'range'; readonly start: bigint; readonly end: bigint };

/**
 * `do_mprotect_pkey` before its VMA lookup: PROT_GROWSDOWN together with PROT_GROWSUP EINVAL;
 * unaligned start EINVAL; len 0 → 0; `PAGE_ALIGN(len)` wrapping, or the end wrapping, ENOMEM;
 * `arch_validate_prot` (x86: only READ|WRITE|EXEC|SEM) EINVAL.
 */
export function mprotectArgs(start: bigint, len: bigint, prot: number): ArgVerdict {
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return { kind: 'error', code: 'EINVAL' };
  if (start & PAGE_MASK) return { kind: 'error', code: 'EINVAL' };
  if (len === 0n) return { kind: 'noop' };
  const alen = (len + PAGE_MASK) & ~PAGE_MASK & U64;
  const end = start + alen;
  if (alen === 0n || end > U64) return { kind: 'error', code: 'ENOMEM' };
  if (prot & ~grows & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return { kind: 'error', code: 'EINVAL' };
  return { kind: 'range', start, end };
}

/**
 * `mlock2`/`munlock` before the VMA walk (`flags` undefined = munlock): unknown mlock2 flags EINVAL;
 * the start is rounded down and `len + offset_in_page(start)` up to pages (mod 2^64); an end that
 * wraps EINVAL; an empty range 0. RLIMIT_MEMLOCK is not checked (CAP_IPC_LOCK, see `api.ts`).
 */
export function mlockArgs(start: bigint, len: bigint, flags: number | undefined): ArgVerdict {
  if (flags !== undefined && flags & ~MLOCK_ONFAULT) return { kind: 'error', code: 'EINVAL' };
  const alen = (len + (start & PAGE_MASK) + PAGE_MASK) & ~PAGE_MASK & U64;
  const s = start & ~PAGE_MASK;
  const end = s + alen;
  if (end > U64) return { kind: 'error', code: 'EINVAL' };
  if (alen === 0n) return { kind: 'noop' };
  return { kind: 'range', start: s, end };
}

/** Where a page-aligned range `[start, end)` lies relative to the mapping `[address, address + mapped)`. */
export interface RangeSpan {
  /** The range starts before the mapping (or entirely outside it). */
  readonly startsOutside: boolean;
  /** The part inside, as mapping offsets `[from, to)`; undefined when none. */
  readonly inside: { readonly from: bigint; readonly to: bigint } | undefined;
  /** The range runs past the mapping's end. */
  readonly runsPast: boolean;
}

export function rangeSpan(address: bigint, mapped: bigint, start: bigint, end: bigint): RangeSpan {
  const mapEnd = address + mapped;
  const from = start > address ? start : address;
  const to = end < mapEnd ? end : mapEnd;
  const inside = from < to ? { from: from - address, to: to - address } : undefined;
  return { startsOutside: !inside || start < address, inside, runsPast: end > mapEnd };
}

/** The operations whose outside rules {@link outsidePlan} knows. */
export type MmOp = 'madvise' | 'madvise-populate' | 'mprotect' | 'mlock' | 'munlock';

/**
 * What the kernel does with a request that passed its argument checks, when nothing but this
 * mapping is mapped around it:
 * - `before`: an errno answered without touching any page (undefined: go on);
 * - then the part inside is applied (`span.inside`), and if that succeeded,
 * - `after`: the errno for the part outside (undefined: success).
 *
 * madvise (`madvise_walk_vmas`) skips holes and answers ENOMEM at the end; POPULATE (probed) is
 * ENOMEM when the start is unmapped and EINVAL when the walk runs into a hole; mprotect looks up the
 * VMA first: nothing intersecting ENOMEM, PROT_GROWSDOWN EINVAL, a start before it ENOMEM,
 * PROT_GROWSUP EINVAL (x86 has no VM_GROWSUP), then ENOMEM after the loop when it ended early;
 * mlock/munlock (`apply_vma_lock_flags`) need a VMA at the start (ENOMEM) and answer ENOMEM at a hole,
 * after the VMAs before it changed (and mlock then skips populating).
 */
export function outsidePlan(op: MmOp, span: RangeSpan, prot = 0): { before?: GuestMemErrorCode; after?: GuestMemErrorCode } {
  switch (op) {
    case 'madvise':
      if (!span.inside) return { before: 'ENOMEM' };
      return { after: span.startsOutside || span.runsPast ? 'ENOMEM' : undefined };
    case 'madvise-populate':
      if (span.startsOutside) return { before: 'ENOMEM' };
      return { after: span.runsPast ? 'EINVAL' : undefined };
    case 'mprotect':
      if (!span.inside) return { before: 'ENOMEM' };
      if (prot & PROT_GROWSDOWN) return { before: 'EINVAL' };
      if (span.startsOutside) return { before: 'ENOMEM' };
      if (prot & PROT_GROWSUP) return { before: 'EINVAL' };
      return { after: span.runsPast ? 'ENOMEM' : undefined };
    case 'mlock':
    case 'munlock':
      if (span.startsOutside) return { before: 'ENOMEM' };
      return { after: span.runsPast ? 'ENOMEM' : undefined };
  }
}

/** VMA flag bits {@link MappingVmas} keeps per page besides the protection (bits 0–2). */
export const VM_LOCKED = 0x10;
export const VM_LOCKONFAULT = 0x20;
const PROT_BITS = PROT_READ | PROT_WRITE | PROT_EXEC;

/**
 * The VMA flags of each page of one mapping: protection (`PROT_*` bits) plus {@link VM_LOCKED} /
 * {@link VM_LOCKONFAULT}. Run-length encoded, so a mapping of any length costs one run until an
 * mprotect/mlock splits it — as the kernel splits the VMA.
 */
export class MappingVmas {
  readonly #flags: RangeStateMap<number>;
  /** The flags of every page while the mapping is one VMA (no mprotect/mlock split it), else -1: the access hot path. */
  #uniform: number;

  constructor(pages: number, prot: number) {
    this.#flags = new RangeStateMap<number>(prot & PROT_BITS, pages);
    this.#uniform = prot & PROT_BITS;
  }

  /** Flags of page `p`. */
  at(p: number): number {
    return this.#flags.get(p);
  }

  /** Maximal runs of equal flags in pages `[first, end)`. */
  runs(first: number, end: number): { first: number; end: number; state: number }[] {
    return this.#flags.runs(first, end);
  }

  /**
   * Bytes of `[start, start + len)` before the first page that lacks every bit of `needed` (`len`
   * when none does): how far an access can go before it would SIGSEGV.
   */
  room(start: number, len: number, needed: number): number {
    if (this.#uniform >= 0) return this.#uniform & needed ? len : 0;
    if (len <= 0) return len;
    for (const r of this.#flags.runs(Math.floor(start / 4096), Math.ceil((start + len) / 4096))) {
      if (!(r.state & needed)) return r.first * 4096 > start ? r.first * 4096 - start : 0;
    }
    return len;
  }

  /** Sets the protection of pages `[first, end)`, keeping their lock bits. */
  protect(first: number, end: number, prot: number): void {
    for (const r of this.#flags.runs(first, end)) this.#flags.set(r.first, r.end, (r.state & ~PROT_BITS) | (prot & PROT_BITS));
    this.#settle();
  }

  /** Sets (`bits` non-zero) or clears the lock bits of pages `[first, end)`, keeping their protection. */
  lock(first: number, end: number, bits: number): void {
    for (const r of this.#flags.runs(first, end)) this.#flags.set(r.first, r.end, (r.state & PROT_BITS) | bits);
    this.#settle();
  }

  #settle(): void {
    this.#uniform = this.#flags.runCount === 1 ? this.#flags.get(0) : -1;
  }
}
