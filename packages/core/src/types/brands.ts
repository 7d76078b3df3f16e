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

/** True when a byte value is a multiple of PAGE_SIZE. */
export const isPageAligned = (v: bigint): boolean => (v & (PAGE_SIZE_N - 1n)) === 0n;
