/**
 * Branded number types, so a guest physical address can't be passed where a file offset is
 * expected (vm-memory's `GuestAddress` lesson). Brands cost nothing at run time.
 *
 * - Page indices are `number`: the index range is 0..2^52-1, exact in a double.
 * - Byte addresses and offsets are `bigint`: KVM accepts offsets up to 2^63 and beyond 2^53.
 */
import { gmErr } from '../errors/guest-mem-error.js';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A guest physical address in bytes. */
export type Gpa = Brand<bigint, 'Gpa'>;
/** A byte offset into a guest-memory file. */
export type FileOffset = Brand<bigint, 'FileOffset'>;
/** A page index into a guest-memory file (offset / PAGE_SIZE), 0..2^52-1. */
export type PageNumber = Brand<number, 'PageNumber'>;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PAGE_SIZE_N = 4096n;
/** Largest page index the core accepts (2^52 - 1): every byte offset of a 2^64-byte space. */
export const MAX_PAGE_INDEX = 2 ** 52 - 1;
/** Folio order of a 2 MiB huge folio. */
export const HUGE_ORDER = 9;

export const gpa = (v: bigint | number): Gpa => BigInt(v) as Gpa;
export const fileOffset = (v: bigint | number): FileOffset => BigInt(v) as FileOffset;
export const pageNumber = (v: number): PageNumber => v as PageNumber;

/**
 * Converts a bigint-or-number byte value to bigint. A number that is not an exact integer
 * (fractional, NaN, ±Infinity, beyond 2^53) is bad input: `EINVAL` for `op` of `backend`.
 */
export function toBig(v: bigint | number, op = 'argument', backend = 'core'): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v))
    throw gmErr('EINVAL', op, backend, `${v} is not an exact integer (pass a bigint beyond 2^53)`, { info: { value: v } });
  return BigInt(v);
}

/**
 * Where the byte range `[offset, offset + len)` starts, as a page index and an offset in that page,
 * when it lies inside `size` bytes (`pages` pages); undefined when it does not, or when `len` is not
 * a safe integer ≥ 0 (the caller raises its own error). A number `offset` whose end is exact in
 * doubles stays in numbers; anything else goes through BigInt (`toBig`: a bad number is `EINVAL`
 * for `op` of `backend`).
 */
export function rangeStart(
  offset: bigint | number,
  len: number,
  size: bigint,
  pages: number,
  op: string,
  backend: string,
): { index: number; inPage: number } | undefined {
  const lenOk = Number.isSafeInteger(len) && len >= 0;
  // The number path only where `offset + len` is exact (a double past 2^53 rounds).
  if (lenOk && typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(offset + len)) {
    return offset + len <= pages * PAGE_SIZE ? { index: Math.floor(offset / PAGE_SIZE), inPage: offset % PAGE_SIZE } : undefined;
  }
  const off = toBig(offset, op, backend);
  if (!lenOk || off < 0n || off + BigInt(len) > size) return undefined;
  return { index: Number(off / PAGE_SIZE_N), inPage: Number(off % PAGE_SIZE_N) };
}

/** True when a byte value is a multiple of PAGE_SIZE. */
export const isPageAligned = (v: bigint): boolean => (v & (PAGE_SIZE_N - 1n)) === 0n;
