import { gmErr } from '../errors/guest-mem-error.js';
import { toBig } from '../types/brands.js';
import type { MemoryAccess } from '../hypervisor/interfaces.js';

/** The port {@link GuestProgram.print} writes text to (the PC debug port, like QEMU's `-debugcon`). */
export const GUEST_OUTPUT_PORT = 0xe9;

/**
 * One guest operation. Each is a few x86-64 instructions on native backends and a sequence of
 * guest accesses on simulated ones; both make the same accesses in the same order, so exits and
 * memory match.
 */
/**
 * The access an op's memory accesses declare, as a confidential guest chooses it per page (SEV's
 * C-bit, TDX's shared bit): honoured by simulated backends with private memory; the x86 encoding
 * of a default (non-confidential) VM has no such bit and ignores it. Absent: the backend decides
 * (KVM SW_PROTECTED: the page's attribute).
 */
export interface GuestOpView {
  readonly view?: MemoryAccess;
}

export type GuestOp =
  /** Store `data` at `gpa`: 8-byte stores, then single bytes for the remainder. */
  | ({ readonly op: 'store'; readonly gpa: bigint; readonly data: Uint8Array } & GuestOpView)
  /** Load `size` bytes at `gpa` and `out` them on `port` (an `io` exit carrying the value). */
  | ({ readonly op: 'load-report'; readonly gpa: bigint; readonly size: 1 | 2 | 4; readonly port: number } & GuestOpView)
  /** Fill `[gpa, gpa+len)` with `byte` (`rep stosb`). */
  | ({ readonly op: 'fill'; readonly gpa: bigint; readonly len: bigint; readonly byte: number } & GuestOpView)
  /** Sum the bytes of `[gpa, gpa+len)` modulo 2^32 and `out` the sum (4 bytes) on `port`. */
  | ({ readonly op: 'checksum'; readonly gpa: bigint; readonly len: bigint; readonly port: number } & GuestOpView)
  /** `out port, value` of `size` bytes. */
  | { readonly op: 'out'; readonly port: number; readonly value: number; readonly size: 1 | 2 | 4 }
  /** Touch the first byte of every page of the page-aligned `[gpa, gpa+len)`: read it, or write `value`. */
  | ({
      readonly op: 'touch';
      readonly gpa: bigint;
      readonly len: bigint;
      readonly access: 'read' | 'write';
      readonly value: number;
    } & GuestOpView)
  /** `hlt`. */
  | { readonly op: 'hlt' };

const PAGE = 4096n;
const U64 = 1n << 64n;
const OP = 'GuestProgram';

function gpaArg(v: bigint | number, what: string): bigint {
  const g = toBig(v, OP);
  if (g < 0n || g >= U64) throw gmErr('EINVAL', OP, 'core', `${what} 0x${g.toString(16)} is not a 64-bit guest address`);
  return g;
}

function lenArg(gpa: bigint, v: bigint | number, what: string): bigint {
  const n = toBig(v, OP);
  if (n < 0n || gpa + n > U64) throw gmErr('EINVAL', OP, 'core', `${what} ${n} at 0x${gpa.toString(16)} must be >= 0 and end inside 2^64`);
  return n;
}

function portArg(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw gmErr('EINVAL', OP, 'core', `port ${port} is not a 16-bit port`);
  return port;
}

function sizeArg(size: number): 1 | 2 | 4 {
  if (size !== 1 && size !== 2 && size !== 4) throw gmErr('EINVAL', OP, 'core', `size ${size}: port I/O is 1, 2 or 4 bytes`);
  return size;
}

function byteArg(b: number, what: string): number {
  if (!Number.isInteger(b) || b < 0 || b > 0xff) throw gmErr('EINVAL', OP, 'core', `${what} ${b} is not a byte`);
  return b;
}

/**
 * A guest program: a list of {@link GuestOp}s, built with chained calls and ended by `hlt`.
 * Every argument is checked when the op is added (`EINVAL`, nothing added).
 *
 * ```ts
 * const p = new GuestProgram().print('hi\n').store(0x10_0000, bytes).checksum(0x10_0000, 4096, 0x10).hlt();
 * ```
 */
export class GuestProgram {
  readonly #ops: GuestOp[] = [];
  #view: MemoryAccess | undefined;

  /** Memory ops added from now on declare `view` (see {@link GuestOpView}); `undefined` stops declaring. */
  view(view: MemoryAccess | undefined): this {
    if (view !== undefined && view !== 'private' && view !== 'shared') throw gmErr('EINVAL', OP, 'core', `view ${String(view)}`);
    this.#view = view;
    return this;
  }

  #v(): GuestOpView {
    return this.#view === undefined ? {} : { view: this.#view };
  }

  /** The operations so far (a copy). */
  get ops(): readonly GuestOp[] {
    return [...this.#ops];
  }

  /** Stores `data` at `gpa`. */
  store(gpa: bigint | number, data: Uint8Array): this {
    const g = gpaArg(gpa, 'gpa');
    lenArg(g, data.length, 'length');
    this.#ops.push({ op: 'store', gpa: g, data: Uint8Array.from(data), ...this.#v() });
    return this;
  }

  /** Loads `size` bytes at `gpa` and reports them on `port`. */
  loadReport(gpa: bigint | number, size: 1 | 2 | 4, port: number): this {
    const g = gpaArg(gpa, 'gpa');
    lenArg(g, size, 'size');
    this.#ops.push({ op: 'load-report', gpa: g, size: sizeArg(size), port: portArg(port), ...this.#v() });
    return this;
  }

  /** Fills `[gpa, gpa+len)` with `byte`. */
  fill(gpa: bigint | number, len: bigint | number, byte: number): this {
    const g = gpaArg(gpa, 'gpa');
    this.#ops.push({ op: 'fill', gpa: g, len: lenArg(g, len, 'len'), byte: byteArg(byte, 'byte'), ...this.#v() });
    return this;
  }

  /** Sums the bytes of `[gpa, gpa+len)` (mod 2^32) and reports the sum on `port` (4 bytes). */
  checksum(gpa: bigint | number, len: bigint | number, port: number): this {
    const g = gpaArg(gpa, 'gpa');
    this.#ops.push({ op: 'checksum', gpa: g, len: lenArg(g, len, 'len'), port: portArg(port), ...this.#v() });
    return this;
  }

  /** `out port, value` (`size` bytes, default 1). */
  out(port: number, value: number, size: 1 | 2 | 4 = 1): this {
    const s = sizeArg(size);
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * s))
      throw gmErr('EINVAL', OP, 'core', `value ${value} does not fit ${s} bytes`);
    this.#ops.push({ op: 'out', port: portArg(port), value, size: s });
    return this;
  }

  /** Writes `text` (Latin-1, one `out` per byte) to `port` (default {@link GUEST_OUTPUT_PORT}). */
  print(text: string, port = GUEST_OUTPUT_PORT): this {
    for (const ch of Buffer.from(text, 'latin1')) this.out(port, ch);
    return this;
  }

  /** Touches every page of the page-aligned `[gpa, gpa+len)`: reads its first byte, or writes `value` there. */
  touch(gpa: bigint | number, len: bigint | number, access: 'read' | 'write', value = 1): this {
    const g = gpaArg(gpa, 'gpa');
    const n = lenArg(g, len, 'len');
    if (g % PAGE || n % PAGE) throw gmErr('EINVAL', OP, 'core', `touch needs a page-aligned range, got 0x${g.toString(16)} +${n}`);
    if (access !== 'read' && access !== 'write') throw gmErr('EINVAL', OP, 'core', `access ${String(access)}`);
    this.#ops.push({ op: 'touch', gpa: g, len: n, access, value: byteArg(value, 'value'), ...this.#v() });
    return this;
  }

  /** `hlt`. */
  hlt(): this {
    this.#ops.push({ op: 'hlt' });
    return this;
  }
}

/** Guest-physical ranges an op reads or writes (for layout checks and page-table coverage). */
export function opRanges(op: GuestOp): { gpa: bigint; len: bigint }[] {
  switch (op.op) {
    case 'store':
      return [{ gpa: op.gpa, len: BigInt(op.data.length) }];
    case 'load-report':
      return [{ gpa: op.gpa, len: BigInt(op.size) }];
    case 'fill':
    case 'checksum':
    case 'touch':
      return [{ gpa: op.gpa, len: op.len }];
    default:
      return [];
  }
}
