/**
 * The host-access side shared by every native mapping (a guest_memfd mapping, anonymous memory):
 * accesses go through cached koffi views ({@link HostWindows}) and are **checked before memory is
 * touched**, because a SIGBUS or SIGSEGV would kill the Node process.
 *
 * The kernel maps whole pages: a mapping of `length` bytes covers `length` rounded up to a page, and
 * every byte up to the end of that last page is accessible like any other. An access is judged the
 * way the CPU meets it, in address order (the kernel's precedence):
 * - the mapping was unmapped through this object → GuestMemError EFAULT;
 * - a read of PROT_NONE or a write without PROT_WRITE → GuestMemError EFAULT with `info.signal`
 *   SIGSEGV, before any byte is touched (x86: PROT_WRITE alone is readable);
 * - a byte at or past {@link NativeMappingBase.accessible} (past EOF, a private page) → the subclass's
 *   {@link NativeMappingBase.fault} (SIGBUS);
 * - a byte past the mapped pages → GuestMemError EFAULT with `info.signal` SIGSEGV (the kernel would
 *   touch whatever else is mapped there; guestmem never does);
 * whichever of the last two comes first. A write stores the bytes before the first refused byte, like
 * a `memset` that faults midway. A zero-length access touches nothing and never faults.
 */
import { GuestMemError, type HostAccessFault } from '@guestmem/core';
import type { IntArg } from '../api.js';
import type { SlotReferencedMapping } from '../slot-memory.js';
import { u64 } from './codecs.js';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_NORESERVE, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { NATIVE_BACKEND, syscallError } from './errors.js';
import { guardMapping, unguard } from './leak-guard.js';
import { HostWindows, type Libc } from './libc.js';

const PAGE = 4096;

export abstract class NativeMappingBase implements SlotReferencedMapping {
  #unmapped = false;
  /** Memslots referencing this mapping's range (safe API, see slot-memory.ts). */
  #slotPins = 0;
  /** munmap() ran while slots referenced the range: a PROT_NONE placeholder holds it. */
  #reserved = false;
  /** Cached views of the mapping (created on first access, dropped before munmap). */
  readonly #host: HostWindows;
  /** Bytes the kernel mapped: {@link length} rounded up to whole pages. */
  protected readonly mapped: number;

  protected constructor(
    protected readonly c: Libc,
    readonly address: bigint,
    readonly length: number,
    readonly offset: bigint,
    readonly prot: number,
    readonly flags: number,
  ) {
    this.mapped = Math.ceil(length / PAGE) * PAGE;
    this.#host = new HostWindows(address, this.mapped);
    // Safety net: a mapping dropped without munmap() is unmapped when collected (never while a
    // live memslot uses it).
    guardMapping(this, c, address, this.mapped, new.target.name === 'NativeAnonMapping' ? 'anonymous mapping' : 'guest_memfd mapping');
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
    if (allowed < len) throw this.refusal('read', offset, len, start + allowed);
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
    this.#host.write(start, allowed < data.byteLength ? data.subarray(0, allowed) : data);
    if (allowed < data.byteLength) throw this.refusal('write', offset, data.byteLength, start + allowed);
  }

  fill(offset: IntArg, len: number, byte: number): void {
    const start = this.check('fill', offset, len, PROT_WRITE);
    const allowed = this.allowedBytes(start, len);
    this.#host.fill(start, allowed, byte);
    if (allowed < len) throw this.refusal('fill', offset, len, start + allowed);
  }

  get addressReserved(): boolean {
    return this.#reserved;
  }

  munmap(): void {
    if (this.#unmapped) return;
    // No view may outlive the memory it points at (a failed munmap just recreates them lazily).
    this.#host.drop();
    if (this.#slotPins > 0) {
      // Why: a memslot still points at this range; replace the memory with an inaccessible
      // placeholder so the address is never handed out again while the slot lives (slot-memory.ts).
      // Safety: MAP_FIXED replaces exactly [address, address + mapped), the range this object mapped
      // and still owns (no other code was given it); the replacement is atomic, so the range is never
      // free in between. For a file mapping it drops the mapping's file reference, like munmap.
      const r: bigint = this.c.mmap(
        this.address,
        BigInt(this.mapped),
        PROT_NONE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
        -1,
        0,
      );
      if (r === MAP_FAILED)
        throw syscallError(this.c.errno(), 'munmap', 'mmap', { address: this.address, length: this.mapped, placeholder: true });
      this.#reserved = true;
    } else if (this.c.munmap(this.address, this.mapped) < 0) {
      // Why: unmap our own range; for a file mapping the kernel drops the mapping's file reference.
      throw syscallError(this.c.errno(), 'munmap', 'munmap', { address: this.address, length: this.length });
    }
    this.#unmapped = true;
    unguard(this);
    this.onUnmapped();
  }

  /** @internal A memslot now references this mapping's range. */
  pinForSlot(): void {
    this.#slotPins++;
  }

  /** @internal A slot referencing this range is gone; the last one releases a placeholder. */
  unpinForSlot(): void {
    if (--this.#slotPins > 0 || !this.#reserved) return;
    this.#reserved = false;
    // Why: the placeholder of munmap() above; no slot points at the range any more. A failure here
    // only leaves an inaccessible reservation behind, so it is not reported.
    this.c.munmap(this.address, this.mapped);
  }

  /** What the mapping's own references do when its memory goes (a file mapping drops its file reference). */
  protected onUnmapped(): void {}

  /**
   * Validates an access and returns its start offset in the mapping. Refuses, touching nothing: an
   * unmapped mapping, a bad length, and (for a non-empty access) a start past the mapped pages or a
   * PROT violation (both SIGSEGV at the first byte).
   */
  private check(op: string, offset: IntArg, len: number, protNeeded: number): number {
    if (this.#unmapped) throw this.efault(op, offset, len, 'the mapping was unmapped');
    // Hot path: a non-negative safe-integer number is used as is (no BigInt round trip).
    const start = typeof offset === 'number' && offset >= 0 && Number.isSafeInteger(offset) ? offset : Number(u64('offset', offset));
    if (!Number.isSafeInteger(len) || len < 0) throw this.efault(op, offset, len, `bad length ${len}`);
    if (len === 0) return start;
    if (start >= this.mapped) throw this.outside(op, offset, len, start);
    if (!(this.prot & protNeeded)) {
      throw this.efault(op, offset, len, `prot ${this.prot} does not allow ${op === 'read' ? 'reading' : 'writing'} (would be SIGSEGV)`, {
        signal: 'SIGSEGV',
      });
    }
    return start;
  }

  /** The refusal at mapping offset `at`, the first byte an access may not touch (error path only). */
  private refusal(op: string, offset: IntArg, len: number, at: number): Error {
    return at < this.mapped ? this.fault(op, at) : this.outside(op, offset, len, at);
  }

  /** A byte past the mapped pages: SIGSEGV in the kernel (or an access to another mapping), EFAULT here. */
  private outside(op: string, offset: IntArg, len: number, at: number): GuestMemError {
    return this.efault(op, offset, len, `byte ${at} is outside the ${this.mapped}-byte mapping (would be SIGSEGV)`, { signal: 'SIGSEGV' });
  }

  /** The EFAULT of a refused access (built only on the error path). */
  private efault(op: string, offset: IntArg, len: number, detail: string, extra: Record<string, unknown> = {}): GuestMemError {
    return new GuestMemError({ code: 'EFAULT', op: `mapping.${op}`, backend: NATIVE_BACKEND, detail, info: { offset, len, ...extra } });
  }

  /** How many bytes from `start` can be touched before the first byte that would SIGBUS or SIGSEGV. */
  private allowedBytes(start: number, len: number): number {
    const end = this.accessible < this.mapped ? this.accessible : this.mapped;
    const room = end - start;
    return room <= 0 ? 0 : room < len ? room : len;
  }
}
