/**
 * The host-access side shared by every simulated mapping (a guest_memfd mapping, anonymous memory):
 * the native driver's pre-checks (EFAULT for an unmapped mapping, an out-of-range access, or a PROT
 * violation that would be SIGSEGV), then core's {@link HostMapping}, which applies the SIGBUS rules
 * page by page and faults pages in, so a write stopping at a faulting page keeps the bytes before it.
 */
import { GuestMemError, HostAccessFault, type HostMapping } from '@guestmem/core';
import type { IntArg, KvmMapping } from '../api.js';
import { u64 } from '../uapi/codec-util.js';
import { PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import type { SimKernel } from './kernel.js';
import { SIM_BACKEND } from './errors.js';

export abstract class SimMappingBase implements KvmMapping {
  protected constructor(
    protected readonly kernel: SimKernel,
    protected readonly host: HostMapping,
    readonly address: bigint,
    readonly length: number,
    readonly offset: bigint,
    readonly prot: number,
    readonly flags: number,
  ) {}

  get unmapped(): boolean {
    return !this.host.isMapped;
  }

  read(offset: IntArg, len: number): Uint8Array {
    const start = this.check('read', offset, len, PROT_READ | PROT_WRITE);
    return len === 0 ? new Uint8Array(0) : this.faulting('read', () => this.host.read(start, len));
  }

  /** Sim-side counterpart of the native mapping's `readInto`: a read into the caller's buffer. */
  readInto(offset: IntArg, dst: Uint8Array, dstOffset = 0): void {
    const len = dst.length - dstOffset;
    const start = this.check('read', offset, len, PROT_READ | PROT_WRITE);
    if (len > 0) this.faulting('read', () => this.host.readInto(start, dst, dstOffset));
  }

  write(offset: IntArg, data: Uint8Array): void {
    const start = this.check('write', offset, data.byteLength, PROT_WRITE);
    if (data.byteLength > 0) this.faulting('write', () => this.host.write(start, data));
  }

  fill(offset: IntArg, len: number, byte: number): void {
    const start = this.check('fill', offset, len, PROT_WRITE);
    if (len > 0) this.faulting('fill', () => this.host.fill(start, len, byte));
  }

  munmap(): void {
    if (this.unmapped) return;
    this.kernel.addressSpace.unmap(this.address);
    this.host.unmap();
  }

  private check(op: string, offset: IntArg, len: number, protNeeded: number): number {
    const efault = (detail: string, extra: Record<string, unknown> = {}) =>
      new GuestMemError({ code: 'EFAULT', op: `mapping.${op}`, backend: SIM_BACKEND, detail, info: { offset, len, ...extra } });
    if (this.unmapped) throw efault('the mapping was unmapped');
    const start = Number(u64('offset', offset));
    if (!Number.isSafeInteger(len) || len < 0 || start + len > this.length) {
      throw efault(`[${start}, +${len}) is outside the ${this.length}-byte mapping`);
    }
    // x86: PROT_WRITE alone is readable; anything else needed and missing is a SIGSEGV.
    if (len > 0 && !(this.prot & protNeeded)) {
      throw efault(`prot ${this.prot} does not allow ${op === 'read' ? 'reading' : 'writing'} (would be SIGSEGV)`, { signal: 'SIGSEGV' });
    }
    return start;
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
