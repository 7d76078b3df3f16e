/**
 * The neutral argument rules, written once: every backend adapter (KVM, Gunyah v17, Gunyah ACK,
 * examples) checks `bind`, `convert`, `allocate`/`punchHole`, `map` and `createGuestMemory`
 * arguments with these before it touches its uAPI, so the same bad call gives the same
 * `EINVAL` (same message) on every backend and changes nothing.
 *
 * The number rule (interfaces.ts, "Numbers"): a `bigint | number` argument must be an exact
 * integer (a `number` must be a safe integer) inside its documented range. A fraction, NaN,
 * ±Infinity, a negative value or a value past its range is `EINVAL`, and the message shows the
 * value as the caller gave it (`-4096`, `NaN`), never an encoded form.
 */
import { gmErr } from '../errors/guest-mem-error.js';
import { PAGE_SIZE_N } from '../types/brands.js';
import type { BindOptions, CreateGuestMemoryOptions, GpaRange, GuestMemory, MemoryAccess } from './interfaces.js';

/**
 * 2^64. A guest physical range must end strictly below it (`gpa + size < 2^64`): the neutral rule
 * for the edge, because KVM computes the end in u64 and refuses a range whose end wraps to 0.
 * The last bindable page is `[2^64 - 8192, 2^64 - 4096)`.
 */
export const GPA_LIMIT = 1n << 64n;

/** The value as the caller wrote it (`-4096`, `NaN`, `1.5`, `18446744073709551616n`). */
export function showArg(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/**
 * A non-negative exact integer argument as bigint, else `EINVAL` naming `what` and the value as
 * given. `max` (inclusive) bounds it when set.
 */
export function uintArg(v: unknown, what: string, op: string, backend: string, max?: bigint): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else {
    const why = typeof v === 'number' ? 'is not an exact integer (pass a bigint beyond 2^53)' : 'is not a number or bigint';
    throw gmErr('EINVAL', op, backend, `${what} ${showArg(v)} ${why}`, { info: { [what]: v } });
  }
  if (b < 0n) throw gmErr('EINVAL', op, backend, `${what} ${showArg(v)} is negative`, { info: { [what]: v } });
  if (max !== undefined && b > max) throw gmErr('EINVAL', op, backend, `${what} ${showArg(v)} is past ${max}`, { info: { [what]: v } });
  return b;
}

/**
 * The arguments of `Vm.guestRead`/`guestWrite`: a guest physical address below 2^64 and a length of
 * at most 1 GiB (a write passes its data's length), else `EINVAL` showing the value as given.
 */
export function checkGuestAccess(gpa: unknown, len: unknown, op: 'guestRead' | 'guestWrite', backend: string): [gpa: bigint, len: number] {
  return [uintArg(gpa, 'gpa', op, backend, GPA_LIMIT - 1n), Number(uintArg(len, 'len', op, backend, 1n << 30n))];
}

/**
 * {@link checkGuestAccess} for hot paths: a non-negative safe-integer `number` GPA with a valid
 * length passes through as the same number (no BigInt conversion); anything else goes through
 * {@link checkGuestAccess} and comes back as a checked bigint. Same errors, same accepted domain.
 */
export function guestAccessGpa(gpa: unknown, len: number, op: 'guestRead' | 'guestWrite', backend: string): bigint | number {
  if (typeof gpa === 'number' && Number.isSafeInteger(gpa) && gpa >= 0 && Number.isSafeInteger(len) && len >= 0 && len <= 1 << 30)
    return gpa;
  return checkGuestAccess(gpa, len, op, backend)[0];
}

function aligned(b: bigint, v: unknown, what: string, op: string, backend: string): void {
  if (b % PAGE_SIZE_N !== 0n)
    throw gmErr('EINVAL', op, backend, `${what} ${showArg(v)} is not a multiple of 4096`, { info: { [what]: v } });
}

/** `'private' | 'shared'`, else `EINVAL`. */
export function accessArg(v: unknown, op: string, backend: string): MemoryAccess {
  if (v !== 'private' && v !== 'shared') throw gmErr('EINVAL', op, backend, `access ${showArg(v)} is neither 'private' nor 'shared'`);
  return v;
}

/** A bind request that passed the neutral rules. */
export interface CheckedBind {
  gpa: bigint;
  offset: bigint;
  size: bigint;
  access: MemoryAccess;
  readOnly: boolean;
}

/** What {@link checkBind} needs to know about the VM. */
export interface BindContext {
  backend: string;
  /** True when `memory` was created by this VM (else `EINVAL`). */
  owns(memory: GuestMemory): boolean;
  /** The VM has private memory (its capability 'private-memory'): default access and EOPNOTSUPP. */
  privateMemory: boolean;
}

/**
 * The neutral rules of {@link BindOptions}, in this order: memory of another VM `EINVAL`, closed
 * memory `EBADF`; `gpa`, `offset`, `size` exact non-negative integers, page-aligned, `size > 0`,
 * `offset + size <= memory.size`, `gpa + size < 2^64` (see {@link GPA_LIMIT}), all
 * `EINVAL`; an access other than 'private'/'shared' `EINVAL`; 'private' on a VM without private
 * memory `EOPNOTSUPP`. Overlap with another binding is the backend's check (`EEXIST`).
 */
export function checkBind(opts: BindOptions, ctx: BindContext): CheckedBind {
  const { backend } = ctx;
  const op = 'bind';
  if (!opts || typeof opts !== 'object' || !opts.memory || !ctx.owns(opts.memory)) {
    throw gmErr('EINVAL', op, backend, 'the memory object was not created by this VM');
  }
  const mem = opts.memory;
  if (mem.closed) throw gmErr('EBADF', op, backend, `memory ${mem.id} is closed`);
  const gpa = uintArg(opts.gpa, 'gpa', op, backend);
  const offset = uintArg(opts.offset, 'offset', op, backend);
  const size = uintArg(opts.size, 'size', op, backend);
  aligned(gpa, opts.gpa, 'gpa', op, backend);
  aligned(offset, opts.offset, 'offset', op, backend);
  aligned(size, opts.size, 'size', op, backend);
  if (size === 0n) throw gmErr('EINVAL', op, backend, 'size 0: a binding covers at least one page');
  if (offset + size > mem.size) {
    throw gmErr(
      'EINVAL',
      op,
      backend,
      `[offset ${showArg(opts.offset)}, +${showArg(opts.size)}) is not inside the ${mem.size}-byte memory`,
    );
  }
  if (gpa + size >= GPA_LIMIT)
    throw gmErr('EINVAL', op, backend, `gpa ${showArg(opts.gpa)} + size ${showArg(opts.size)} does not end below 2^64`);
  const access = opts.access === undefined ? (ctx.privateMemory ? 'private' : 'shared') : accessArg(opts.access, op, backend);
  if (access === 'private' && !ctx.privateMemory) throw gmErr('EOPNOTSUPP', op, backend, 'this VM has no private memory');
  return { gpa, offset, size, access, readOnly: opts.readOnly === true };
}

/** A checked guest physical range: `[gpa, end)`. */
export interface CheckedRange {
  gpa: bigint;
  size: bigint;
  end: bigint;
}

/** {@link Vm.convert}'s range: exact non-negative integers, page-aligned, non-empty, ending below 2^64. */
export function checkGpaRange(range: GpaRange, op: string, backend: string): CheckedRange {
  if (!range || typeof range !== 'object') throw gmErr('EINVAL', op, backend, 'a { gpa, size } range is required');
  const gpa = uintArg(range.gpa, 'gpa', op, backend);
  const size = uintArg(range.size, 'size', op, backend);
  aligned(gpa, range.gpa, 'gpa', op, backend);
  aligned(size, range.size, 'size', op, backend);
  if (size === 0n) throw gmErr('EINVAL', op, backend, 'size 0: the range is empty');
  if (gpa + size >= GPA_LIMIT)
    throw gmErr('EINVAL', op, backend, `gpa ${showArg(range.gpa)} + size ${showArg(range.size)} does not end below 2^64`);
  return { gpa, size, end: gpa + size };
}

/**
 * `allocate`/`punchHole`'s `[offset, offset+len)`: exact non-negative integers, page-aligned,
 * `len > 0`, inside the memory (`offset + len <= memorySize`).
 */
export function checkFileRange(
  offset: unknown,
  len: unknown,
  memorySize: bigint,
  op: string,
  backend: string,
): { offset: bigint; len: bigint } {
  const o = uintArg(offset, 'offset', op, backend);
  const l = uintArg(len, 'len', op, backend);
  aligned(o, offset, 'offset', op, backend);
  aligned(l, len, 'len', op, backend);
  if (l === 0n) throw gmErr('EINVAL', op, backend, 'len 0');
  if (o + l > memorySize)
    throw gmErr('EINVAL', op, backend, `[${showArg(offset)}, +${showArg(len)}) is past the end of the ${memorySize}-byte memory`);
  return { offset: o, len: l };
}

/**
 * `map`'s options: `offset` (default 0) an exact non-negative page-aligned integer below the
 * memory's size; `length` (default: the rest of the memory) a safe integer > 0 with
 * `offset + length <= memorySize`.
 */
export function checkMapRange(
  opts: { offset?: unknown; length?: unknown } | undefined,
  memorySize: bigint,
  backend: string,
): { offset: bigint; length: number } {
  const op = 'map';
  const offset = uintArg(opts?.offset ?? 0, 'offset', op, backend);
  aligned(offset, opts?.offset ?? 0, 'offset', op, backend);
  if (offset >= memorySize)
    throw gmErr('EINVAL', op, backend, `offset ${showArg(opts?.offset)} is not inside the ${memorySize}-byte memory`);
  const rest = memorySize - offset;
  if (opts?.length === undefined) {
    if (rest > BigInt(Number.MAX_SAFE_INTEGER))
      throw gmErr('EINVAL', op, backend, `the rest of the memory (${rest} bytes) is too long for one view: pass length`);
    return { offset, length: Number(rest) };
  }
  const length = opts.length;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0) {
    throw gmErr('EINVAL', op, backend, `length ${showArg(length)} must be an integer > 0`);
  }
  if (BigInt(length) > rest)
    throw gmErr(
      'EINVAL',
      op,
      backend,
      `offset ${showArg(opts.offset ?? 0)} + length ${length} is past the end of the ${memorySize}-byte memory`,
    );
  return { offset, length };
}

/** `createGuestMemory`'s size: an exact integer > 0, a multiple of 4096, at most `max`. */
export function checkMemorySize(opts: CreateGuestMemoryOptions, max: bigint, backend: string): bigint {
  const op = 'createGuestMemory';
  if (!opts || typeof opts !== 'object') throw gmErr('EINVAL', op, backend, 'options { size } are required');
  const size = uintArg(opts.size, 'size', op, backend);
  aligned(size, opts.size, 'size', op, backend);
  if (size === 0n) throw gmErr('EINVAL', op, backend, 'size 0');
  if (size > max) throw gmErr('EINVAL', op, backend, `size ${showArg(opts.size)} is past the largest guest memory (${max} bytes)`);
  return size;
}

/** A guest-memory byte offset for {@link GuestMemory.markPoisoned}: page-aligned and inside the memory. */
export function checkPageOffset(offset: unknown, memorySize: bigint, op: string, backend: string): bigint {
  const o = uintArg(offset, 'offset', op, backend);
  aligned(o, offset, 'offset', op, backend);
  if (o >= memorySize) throw gmErr('EINVAL', op, backend, `offset ${showArg(offset)} is not inside the ${memorySize}-byte memory`);
  return o;
}
