import { HostAccessFault, gmErr } from '../errors/guest-mem-error.js';
import type { GuestMemFile } from '../file/guest-mem-file.js';
import type { HostAccessKind } from '../file/types.js';
import { PAGE_SIZE, PAGE_SIZE_N, toBig } from '../types/brands.js';

/** Options of {@link HostMapping}. */
export interface HostMappingOptions {
  /** File byte offset of the first mapped byte (page-aligned). May be at or past EOF, as mmap allows. */
  offset?: bigint | number;
  /** Mapping length in bytes (> 0; rounded up to pages like mmap). */
  length: number;
  /** Permissions (default read+write). */
  prot?: { read?: boolean; write?: boolean };
}

/**
 * The host's view of a file range — the `mmap(MAP_SHARED)` analogue.
 *
 * It never hands out views of folio memory: every access copies through accessor methods, checked
 * page by page *before* the page is touched, so no caller can keep a reference that later shows a
 * punched or recycled page's old bytes.
 *
 * Per page, in order: outside the mapping or without permission → `EFAULT` (the SIGSEGV analogue);
 * past EOF → {@link HostAccessFault} (`SIGBUS`); `ops.hostAccess` says `'sigbus'` →
 * HostAccessFault; a poisoned page → HostAccessFault; otherwise the page is faulted in (created and
 * zeroed on first touch) and accessed. A multi-page write that faults keeps the pages written
 * before the faulting one, like a `memset` interrupted by SIGBUS.
 *
 * A mapping holds a file reference until {@link unmap}.
 */
export class HostMapping {
  readonly offset: bigint;
  readonly length: number;
  readonly readable: boolean;
  readonly writable: boolean;
  private mapped = true;
  /** `offset` as a number when every mapped offset is an exact double, else -1. */
  private readonly offsetNumber: number;

  constructor(
    readonly file: GuestMemFile<any>,
    opts: HostMappingOptions,
  ) {
    if (file.released) throw gmErr('EBADF', 'mmap', file.ops.backend, `guest-memory file ${file.id} was released`);
    const off = toBig(opts.offset ?? 0, 'mmap', file.ops.backend);
    if (off < 0n || off % PAGE_SIZE_N !== 0n || !(Number.isSafeInteger(opts.length) && opts.length > 0)) {
      throw gmErr('EINVAL', 'mmap', file.ops.backend, `offset ${off} must be page-aligned and length ${opts.length} > 0`);
    }
    this.offset = off;
    this.offsetNumber = off + BigInt(Math.ceil(opts.length / PAGE_SIZE) * PAGE_SIZE) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(off) : -1;
    this.length = Math.ceil(opts.length / PAGE_SIZE) * PAGE_SIZE;
    this.readable = opts.prot?.read ?? true;
    this.writable = opts.prot?.write ?? true;
    file.acquire();
  }

  get isMapped(): boolean {
    return this.mapped;
  }

  /** Copies `len` bytes at mapping offset `at`. */
  read(at: number, len: number): Uint8Array {
    // A bad length is refused by access() before the buffer is used.
    const out = new Uint8Array(Number.isSafeInteger(len) && len >= 0 ? len : 0);
    this.access('read', at, len, out, 0);
    return out;
  }

  /** Copies `dst.length - dstOffset` bytes at mapping offset `at` into `dst` (no allocation). */
  readInto(at: number, dst: Uint8Array, dstOffset = 0): void {
    if (!(Number.isSafeInteger(dstOffset) && dstOffset >= 0 && dstOffset <= dst.length)) {
      throw gmErr('EINVAL', 'host read', this.file.ops.backend, `dstOffset ${dstOffset} is outside the ${dst.length}-byte buffer`);
    }
    this.access('read', at, dst.length - dstOffset, dst, dstOffset);
  }

  /** Writes `data` at mapping offset `at`. */
  write(at: number, data: Uint8Array): void {
    this.access('write', at, data.length, data, 0);
  }

  /** Fills `len` bytes at `at` with `byte` (a `memset`). */
  fill(at: number, len: number, byte: number): void {
    this.access('write', at, len, undefined, byte);
  }

  /** Reads one byte. */
  readU8(at: number): number {
    return this.read(at, 1)[0]!;
  }

  /** Unmaps and drops the file reference (idempotent). */
  unmap(): void {
    if (!this.mapped) return;
    this.mapped = false;
    this.file.release();
  }

  /** Checks and performs an access page by page: a read into `buf`, a write from `buf`, or a fill with `byte`. */
  private access(kind: HostAccessKind, at: number, len: number, buf: Uint8Array | undefined, byteOrBufOffset: number): void {
    const backend = this.file.ops.backend;
    if (!this.mapped) throw gmErr('EFAULT', `host ${kind}`, backend, 'the mapping was unmapped');
    // A zero-length copy touches no page, so the kernel can neither fault nor refuse it.
    if (len === 0 && Number.isSafeInteger(at) && at >= 0 && at <= this.length) return;
    if (!(Number.isSafeInteger(at) && Number.isSafeInteger(len) && at >= 0 && len >= 0 && at + len <= this.length)) {
      throw gmErr('EFAULT', `host ${kind}`, backend, `[${at}, +${len}) is outside the ${this.length}-byte mapping`);
    }
    if ((kind === 'read' && !this.readable) || (kind === 'write' && !this.writable)) {
      throw gmErr('EFAULT', `host ${kind}`, backend, `the mapping is not ${kind === 'read' ? 'readable' : 'writable'}`);
    }
    // File offsets are exact doubles below 2^53 (every file a real VMM maps); past that, bigints.
    const base = this.offsetNumber;
    if (base >= 0 && len > PAGE_SIZE) {
      // Large accesses: check the pages up to the first one that would fault, move everything
      // before it with one file call, then fault on that page (the bytes before it stay moved).
      const first = Math.floor((base + at) / PAGE_SIZE);
      const end = Math.floor((base + at + len - 1) / PAGE_SIZE) + 1;
      let bad = first;
      while (bad < end && this.allowed(kind, bad)) bad++;
      const n = Math.min(len, bad * PAGE_SIZE - (base + at));
      if (n > 0) {
        if (kind === 'read') this.file.read(base + at, n, buf, byteOrBufOffset);
        else if (buf) this.file.write(base + at, buf, byteOrBufOffset, n);
        else this.file.fill(base + at, n, byteOrBufOffset);
      }
      if (bad < end) this.check(kind, bad, Math.max(bad * PAGE_SIZE, base + at));
      return;
    }
    let done = 0;
    while (done < len) {
      const fileOffBig = base < 0 ? this.offset + BigInt(at + done) : undefined;
      const fileOff = fileOffBig ?? base + at + done;
      const index = fileOffBig === undefined ? Math.floor((base + at + done) / PAGE_SIZE) : Number(fileOffBig / PAGE_SIZE_N);
      const inPage = fileOffBig === undefined ? (base + at + done) % PAGE_SIZE : Number(fileOffBig % PAGE_SIZE_N);
      const n = Math.min(len - done, PAGE_SIZE - inPage);
      this.check(kind, index, fileOff);
      if (kind === 'read') this.file.read(fileOff, n, buf, byteOrBufOffset + done);
      else if (buf) this.file.write(fileOff, buf, byteOrBufOffset + done, n);
      else this.file.fill(fileOff, n, byteOrBufOffset);
      done += n;
    }
  }

  /** True when {@link check} would let the access to page `index` through. */
  private allowed(kind: HostAccessKind, index: number): boolean {
    const f = this.file;
    return index < f.pages && !(f.ops.hostAccess && f.ops.hostAccess(f, index, kind) === 'sigbus') && !f.isPoisoned(index);
  }

  private check(kind: HostAccessKind, index: number, fileOff: bigint | number): void {
    const f = this.file;
    const op = `host ${kind}`;
    if (index >= f.pages) {
      throw new HostAccessFault({ op, backend: f.ops.backend, offset: fileOff, detail: `offset ${fileOff} is at or past EOF (${f.size})` });
    }
    if (f.ops.hostAccess && f.ops.hostAccess(f, index, kind) === 'sigbus') {
      throw new HostAccessFault({
        op,
        backend: f.ops.backend,
        offset: fileOff,
        detail: `the backend does not let the host ${kind} page ${index}`,
      });
    }
    if (f.isPoisoned(index)) {
      throw new HostAccessFault({ op, backend: f.ops.backend, offset: fileOff, detail: `page ${index} is poisoned` });
    }
  }
}
