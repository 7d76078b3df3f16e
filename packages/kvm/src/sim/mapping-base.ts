/**
 * The host-access side shared by every simulated mapping (a guest_memfd mapping, anonymous memory),
 * with the native driver's rules and precedence (see `native/mapping.ts`): the mapping covers whole
 * pages; EFAULT for an unmapped mapping; then, in address order, core's {@link HostMapping} applies
 * the SIGBUS rules page by page and faults pages in, while a page whose protection refuses the access
 * (SIGSEGV, ahead of a SIGBUS on the same page) or a byte past the mapped pages is EFAULT — whichever
 * comes first. A write stopping at a refused byte keeps the bytes before it.
 */
import { GuestMemError, HostAccessFault, type HostMapping } from '@guestmem/core';
import type { IntArg } from '../api.js';
import type { SlotReferencedMapping } from '../slot-memory.js';
import { u64 } from './codecs.js';
import { PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import type { SimKernel } from './kernel.js';
import { SIM_BACKEND } from './errors.js';
import { guardSimMapping, unguard } from './leak-guard.js';

export abstract class SimMappingBase implements SlotReferencedMapping {
  /** Memslots referencing this mapping's range (safe API). */
  #slotPins = 0;
  /** munmap() ran while slots referenced the range: the VMA stays, as an inaccessible placeholder. */
  #reserved = false;

  protected constructor(
    protected readonly kernel: SimKernel,
    protected readonly host: HostMapping,
    readonly address: bigint,
    readonly length: number,
    readonly offset: bigint,
    readonly prot: number,
    readonly flags: number,
  ) {
    guardSimMapping(
      this,
      kernel,
      host,
      address,
      length,
      new.target.name === 'SimAnonMapping' ? 'anonymous mapping' : 'guest_memfd mapping',
    );
  }

  get unmapped(): boolean {
    return !this.host.isMapped;
  }

  read(offset: IntArg, len: number): Uint8Array {
    const start = this.check('read', offset, len, PROT_READ | PROT_WRITE);
    if (len === 0) return new Uint8Array(0);
    const inside = this.insideBytes(start, len);
    const allowed = this.protRoom(start, inside, PROT_READ | PROT_WRITE);
    const out = this.faulting('read', () => this.host.read(start, allowed));
    if (allowed < len) throw this.refusal('read', offset, len, start + allowed);
    return out;
  }

  /** Sim-side counterpart of the native mapping's `readInto`: a read into the caller's buffer. */
  readInto(offset: IntArg, dst: Uint8Array, dstOffset = 0): void {
    const len = dst.length - dstOffset;
    const start = this.check('read', offset, len, PROT_READ | PROT_WRITE);
    if (len === 0) return;
    const allowed = this.protRoom(start, this.insideBytes(start, len), PROT_READ | PROT_WRITE);
    if (allowed < len) {
      // As read(): a SIGBUS before the first refused byte comes first.
      this.faulting('read', () => this.host.read(start, allowed));
      throw this.refusal('read', offset, len, start + allowed);
    }
    this.faulting('read', () => this.host.readInto(start, dst, dstOffset));
  }

  write(offset: IntArg, data: Uint8Array): void {
    const start = this.check('write', offset, data.byteLength, PROT_WRITE);
    if (data.byteLength === 0) return;
    const inside = this.insideBytes(start, data.byteLength);
    const allowed = this.protRoom(start, inside, PROT_WRITE);
    this.faulting('write', () => this.host.write(start, allowed < data.byteLength ? data.subarray(0, allowed) : data));
    if (allowed < data.byteLength) throw this.refusal('write', offset, data.byteLength, start + allowed);
  }

  fill(offset: IntArg, len: number, byte: number): void {
    const start = this.check('fill', offset, len, PROT_WRITE);
    if (len === 0) return;
    const inside = this.insideBytes(start, len);
    const allowed = this.protRoom(start, inside, PROT_WRITE);
    this.faulting('fill', () => this.host.fill(start, allowed, byte));
    if (allowed < len) throw this.refusal('fill', offset, len, start + allowed);
  }

  get addressReserved(): boolean {
    return this.#reserved;
  }

  /** True when this mapping lives in `kernel`'s simulated process. */
  belongsTo(kernel: SimKernel): boolean {
    return this.kernel === kernel;
  }

  munmap(): void {
    if (this.unmapped) return;
    unguard(this);
    // The memory (and any file reference) goes either way; the address range stays taken while a
    // memslot references it (see slot-memory.ts): the VMA becomes an inaccessible placeholder.
    this.host.unmap();
    if (this.#slotPins > 0) this.#reserved = true;
    else this.kernel.addressSpace.unmap(this.address);
  }

  pinForSlot(): void {
    this.#slotPins++;
  }

  unpinForSlot(): void {
    if (--this.#slotPins > 0 || !this.#reserved) return;
    this.#reserved = false;
    this.kernel.addressSpace.unmap(this.address);
  }

  /**
   * How many bytes of `[start, start + len)` (inside the mapped pages) the protection allows for an
   * access needing one of `needed`'s bits, up to the first page that lacks them (SIGSEGV there). The
   * mmap-time `prot` here; a mapping whose pages can change protection overrides it.
   */
  protected protRoom(_start: number, len: number, needed: number): number {
    return this.prot & needed ? len : 0;
  }

  /**
   * The native driver's order (see `native/mapping.ts`): unmapped, bad length, then for a non-empty
   * access a start past the mapped pages or a PROT violation at the first byte (SIGSEGV), touching
   * nothing. The mapped pages are {@link length} rounded up to a page (core's HostMapping length).
   */
  private check(op: string, offset: IntArg, len: number, protNeeded: number): number {
    if (this.unmapped) throw this.efault(op, offset, len, 'the mapping was unmapped');
    const start = Number(u64('offset', offset));
    if (!Number.isSafeInteger(len) || len < 0) throw this.efault(op, offset, len, `bad length ${len}`);
    if (len === 0) return start;
    if (start >= this.host.length) throw this.outside(op, offset, len, start);
    // x86: PROT_WRITE alone is readable; anything else needed and missing is a SIGSEGV.
    if (this.protRoom(start, 1, protNeeded) === 0) {
      throw this.efault(op, offset, len, `prot ${this.prot} does not allow ${op === 'read' ? 'reading' : 'writing'} (would be SIGSEGV)`, {
        signal: 'SIGSEGV',
      });
    }
    return start;
  }

  /** Bytes of `[start, start + len)` inside the mapped pages (the rest would be SIGSEGV). */
  private insideBytes(start: number, len: number): number {
    const room = this.host.length - start;
    return room < len ? room : len;
  }

  /**
   * The refusal at `at`, the first byte the page rules let through no further (core's SIGBUS came
   * first otherwise): past the mapped pages, or a page whose protection refuses the access (SIGSEGV).
   */
  private refusal(op: string, offset: IntArg, len: number, at: number): GuestMemError {
    if (at >= this.host.length) return this.outside(op, offset, len, at);
    return this.efault(
      op,
      offset,
      len,
      `byte ${at} is on a page whose protection does not allow ${op === 'read' ? 'reading' : 'writing'} (would be SIGSEGV)`,
      {
        signal: 'SIGSEGV',
      },
    );
  }

  private outside(op: string, offset: IntArg, len: number, at: number): GuestMemError {
    return this.efault(op, offset, len, `byte ${at} is outside the ${this.host.length}-byte mapping (would be SIGSEGV)`, {
      signal: 'SIGSEGV',
    });
  }

  private efault(op: string, offset: IntArg, len: number, detail: string, extra: Record<string, unknown> = {}): GuestMemError {
    return new GuestMemError({ code: 'EFAULT', op: `mapping.${op}`, backend: SIM_BACKEND, detail, info: { offset, len, ...extra } });
  }

  /** Runs a core access, renaming its SIGBUS to this API's op names. */
  private faulting<T>(op: string, access: () => T): T {
    try {
      return access();
    } catch (e) {
      if (e instanceof HostAccessFault) {
        throw new HostAccessFault({ op: `mapping.${op}`, backend: SIM_BACKEND, offset: e.offset, detail: e.message });
      }
      throw e;
    }
  }
}
