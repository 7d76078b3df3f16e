import type { GuestMemError } from '@guestmem/core';
import { codecError } from './codec-error.js';

/** A numeric uAPI argument: a bigint, or a number that is an exact (safe) integer. */
export type IntArg = bigint | number;

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

function rangeError(field: string, value: IntArg, bits: number): GuestMemError {
  return codecError({
    code: 'ERANGE',
    op: `encode ${field}`,
    detail: `${String(value)} does not fit in ${bits} bits`,
    info: { field, value },
  });
}

/** To bigint, rejecting non-integers and unsafe numbers (which have already lost precision). */
export function toBigInt(field: string, v: IntArg): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) {
    throw codecError({
      code: 'ERANGE',
      op: `encode ${field}`,
      detail: `${v} is not an exact integer (pass a bigint)`,
      info: { field, value: v },
    });
  }
  return BigInt(v);
}

/**
 * A value for a 64-bit field, as the unsigned bit pattern C would store: accepts
 * -2^63 … 2^64-1 (negative values are two's complement, like `(__u64)-1`).
 */
export function u64(field: string, v: IntArg): bigint {
  const b = toBigInt(field, v);
  if (b < I64_MIN || b > U64_MAX) throw rangeError(field, v, 64);
  return BigInt.asUintN(64, b);
}

/** A value for a 64-bit signed argument (`off_t`, `loff_t`): accepts -2^63 … 2^64-1, reinterpreted as signed. */
export function i64(field: string, v: IntArg): bigint {
  return BigInt.asIntN(64, u64(field, v));
}

/** A value for a 32-bit field: accepts -2^31 … 2^32-1, stored as unsigned (so fd -1 becomes 0xffffffff). */
export function u32(field: string, v: IntArg): number {
  const b = toBigInt(field, v);
  if (b < -(1n << 31n) || b > 0xffff_ffffn) throw rangeError(field, v, 32);
  return Number(BigInt.asUintN(32, b));
}

/** A value for a C `int` argument: accepts -2^31 … 2^32-1, reinterpreted as signed 32-bit. */
export function i32(field: string, v: IntArg): number {
  return u32(field, v) | 0;
}

/** Checks that `buf` has at least `size` bytes (for decoders and caller-provided encode targets). */
export function checkBuffer(struct: string, buf: Uint8Array, size: number): Buffer {
  if (buf.byteLength < size) {
    throw codecError({
      code: 'EFAULT',
      op: `codec ${struct}`,
      detail: `buffer of ${buf.byteLength} bytes is smaller than the ${size}-byte struct`,
    });
  }
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}
