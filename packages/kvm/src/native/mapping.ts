/**
 * The host-access side shared by every native mapping (a guest_memfd mapping, anonymous memory):
 * accesses go through cached koffi views ({@link HostWindows}) and are **checked before memory is
 * touched**, because a SIGBUS or SIGSEGV would kill the Node process.
 * - the mapping was unmapped through this object → GuestMemError EFAULT;
 * - the range leaves `[0, length)` of the mapping → GuestMemError EFAULT;
 * - read of PROT_NONE, write without PROT_WRITE → GuestMemError EFAULT with `info.signal` SIGSEGV
 *   (x86: PROT_WRITE alone is readable);
 * - bytes at or past {@link NativeMappingBase.accessible} would SIGBUS → the subclass's
 *   {@link NativeMappingBase.fault}; a write stores the bytes before that point first, like a
 *   `memset` that faults midway.
 */
import { GuestMemError, type HostAccessFault } from '@guestmem/core';
import type { IntArg, KvmMapping } from '../api.js';
import { u64 } from '../uapi/codec-util.js';
import { PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { NATIVE_BACKEND, syscallError } from './errors.js';
import { HostWindows, type Libc } from './libc.js';

export abstract class NativeMappingBase implements KvmMapping {
  #unmapped = false;
  /** Cached views of the mapping (created on first access, dropped before munmap). */
  readonly #host: HostWindows;

  protected constructor(
    protected readonly c: Libc,
    readonly address: bigint,
    readonly length: number,
    readonly offset: bigint,
    readonly prot: number,
    readonly flags: number,
  ) {
    this.#host = new HostWindows(address, length);
  }

  /**
   * Bytes from the start of the mapping that may be touched: everything before the first byte that
   * would SIGBUS. Static per mapping (computed once by the subclass, not per access).
   */
  protected abstract readonly accessible: number;

  /** The SIGBUS-equivalent of an access that reached mapping offset `mappingOffset` (≥ {@link accessible}). */
  protected abstract fault(op: string, mappingOffset: number): HostAccessFault;

  get unmapped(): boolean {
    return this.#unmapped;
  }

  read(offset: IntArg, len: number): Uint8Array {
    const start = this.check('read', offset, len, PROT_READ | PROT_WRITE);
    const allowed = this.allowedBytes(start, len);
    if (allowed < len) throw this.fault('read', start + allowed);
    return this.#host.read(start, len);
  }

  /** `memcpy(dst + dstOffset, address + offset, dst.length - dstOffset)`, with {@link read}'s checks and faults. */
  readInto(offset: IntArg, dst: Uint8Array, dstOffset = 0): void {
    const len = dst.length - dstOffset;
    const start = this.check('read', offset, len, PROT_READ | PROT_WRITE);
    const allowed = this.allowedBytes(start, len);
    if (allowed < len) throw this.fault('read', start + allowed);
    this.#host.readInto(start, dst, dstOffset);
  }

  write(offset: IntArg, data: Uint8Array): void {
    const start = this.check('write', offset, data.byteLength, PROT_WRITE);
    const allowed = this.allowedBytes(start, data.byteLength);
    this.#host.write(start, data.subarray(0, allowed));
    if (allowed < data.byteLength) throw this.fault('write', start + allowed);
  }

  fill(offset: IntArg, len: number, byte: number): void {
    const start = this.check('fill', offset, len, PROT_WRITE);
    const allowed = this.allowedBytes(start, len);
    this.#host.fill(start, allowed, byte);
    if (allowed < len) throw this.fault('fill', start + allowed);
  }

  munmap(): void {
    if (this.#unmapped) return;
    // No view may outlive the memory it points at (a failed munmap just recreates them lazily).
    this.#host.drop();
    // Why: unmap our own range; for a file mapping the kernel drops the mapping's file reference.
    if (this.c.munmap(this.address, this.length) < 0) {
      throw syscallError(this.c.errno(), 'munmap', 'munmap', { address: this.address, length: this.length });
    }
    this.#unmapped = true;
  }

  /** Validates an access and returns its start offset in the mapping. */
  private check(op: string, offset: IntArg, len: number, protNeeded: number): number {
    if (this.#unmapped) throw this.efault(op, offset, len, 'the mapping was unmapped');
    // Hot path: a non-negative safe-integer number is used as is (no BigInt round trip).
    const start = typeof offset === 'number' && offset >= 0 && Number.isSafeInteger(offset) ? offset : Number(u64('offset', offset));
    if (!Number.isSafeInteger(len) || len < 0 || start + len > this.length) {
      throw this.efault(op, offset, len, `[${start}, +${len}) is outside the ${this.length}-byte mapping`);
    }
    if (len > 0 && !(this.prot & protNeeded)) {
      throw this.efault(op, offset, len, `prot ${this.prot} does not allow ${op === 'read' ? 'reading' : 'writing'} (would be SIGSEGV)`, {
        signal: 'SIGSEGV',
      });
    }
    return start;
  }

  /** The EFAULT of a refused access (built only on the error path). */
  private efault(op: string, offset: IntArg, len: number, detail: string, extra: Record<string, unknown> = {}): GuestMemError {
    return new GuestMemError({ code: 'EFAULT', op: `mapping.${op}`, backend: NATIVE_BACKEND, detail, info: { offset, len, ...extra } });
  }

  /** How many bytes from `start` can be touched before the first byte that would SIGBUS. */
  private allowedBytes(start: number, len: number): number {
    const room = this.accessible - start;
    return room <= 0 ? 0 : room < len ? room : len;
  }
}
