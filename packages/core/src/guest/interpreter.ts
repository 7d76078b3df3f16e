/**
 * Runs a {@link GuestImage}'s operation list on a backend without an instruction emulator: each op
 * becomes the guest accesses its x86 code makes (same sizes, same order), performed through the
 * backend's guest-access path ({@link GuestAccessPort}). Exits come out where the x86 code would
 * exit: each `out`, `hlt`, and every access the port stops.
 */
import { gmErr } from '../errors/guest-mem-error.js';
import type { VcpuExit, VcpuMmioExit } from '../hypervisor/vcpu.js';
import type { MemoryAccess } from '../hypervisor/interfaces.js';
import type { GuestImage } from './image.js';
import type { GuestOp } from './program.js';

const PAGE = 4096n;

/** A backend's guest-access path, as a simulated vCPU uses it. */
export interface GuestAccessPort {
  /**
   * One guest access of `buf.length` bytes at `gpa` (reads fill `buf`, writes take it). Returns
   * `undefined` when it completed, else the exit that stopped it:
   * - `'memory-fault'`, `'internal-error'`, `'shutdown'`: the access is retried by the next run;
   * - `'mmio'` (no memory there): a write is done with the exit; a read takes the bytes given to
   *   {@link GuestOpInterpreter.completeRead}. A port reports MMIO only for the whole access.
   * Pages before a failing one may have been accessed (retrying is harmless: the ops are idempotent
   * per access).
   */
  access(kind: 'read' | 'write', gpa: bigint, buf: Uint8Array, view: MemoryAccess | undefined): VcpuExit | undefined;
  /**
   * Optional bulk form of a `touch` op: the one-byte accesses {@link access} would make at `gpa`,
   * `gpa + 4096`, … below `end` (a read, or a write of `value`), in that order, with exactly their
   * results, stopping at the first that does not complete. Returns undefined when all completed,
   * else the address of that access and its exit (as {@link access} would give for it). Without
   * it, the interpreter calls {@link access} per page.
   */
  touch?(
    kind: 'read' | 'write',
    gpa: bigint,
    end: bigint,
    value: number,
    view: MemoryAccess | undefined,
  ): { readonly at: bigint; readonly exit: VcpuExit } | undefined;
}

type Step = Generator<VcpuExit, void, void>;

/**
 * The `mmio` exit a port reports for a whole access of `buf` at `gpa`: a write carries a copy of its
 * bytes, a read zeros (its data comes through {@link GuestOpInterpreter.completeRead}). `info`
 * builds the backend's raw record from the exit's data.
 */
export function mmioAccessExit(
  write: boolean,
  gpa: bigint,
  buf: Uint8Array,
  info: (data: Uint8Array) => Record<string, unknown>,
): VcpuMmioExit {
  const data = write ? new Uint8Array(buf) : new Uint8Array(buf.length);
  return { kind: 'mmio', gpa, size: buf.length, write, data, info: info(data) };
}

/** An exit the guest produces on its own (`out`, `hlt`): `info` says it came from the op list. */
function ioExit(op: GuestOp, port: number, size: number, data: Uint8Array): VcpuExit {
  return { kind: 'io', port, size, direction: 'out', data, info: { source: 'guest-op-interpreter', op: op.op } };
}

/** Largest access a range op makes at once when no MMIO is in the way: up to the end of the page. */
function chunkEnd(at: bigint, end: bigint): bigint {
  const pageEnd = (at / PAGE + 1n) * PAGE;
  return pageEnd < end ? pageEnd : end;
}

/** The operation-list vCPU: `load`, then `run()` to the next exit. */
export class GuestOpInterpreter {
  #steps: Step | undefined;
  #pendingRead: Uint8Array | undefined;
  #completed: Uint8Array | undefined;
  #ended = false;
  /** An MMIO exit was yielded and not yet resumed. */
  #mmioPending = false;
  /** The VMM asked for the pending MMIO access to be re-executed. */
  #retry = false;

  constructor(private readonly port: GuestAccessPort) {}

  /** Starts `image`'s op list from the beginning. */
  load(image: GuestImage): void {
    this.#steps = this.#program(image.ops);
    this.#pendingRead = undefined;
    this.#completed = undefined;
    this.#ended = false;
    this.#mmioPending = false;
    this.#retry = false;
  }

  /** Runs to the next exit. After the final `hlt`, an `internal-error` (nothing left to run). */
  run(): VcpuExit {
    if (!this.#steps) throw gmErr('EINVAL', 'run', 'core', 'no guest image loaded (Vcpu.load)');
    if (this.#pendingRead && !this.#completed) this.#completed = new Uint8Array(this.#pendingRead.length);
    const r = this.#steps.next();
    if (r.done) {
      this.#ended = true;
      return { kind: 'internal-error', info: { source: 'guest-op-interpreter', reason: 'ran past the end of the program' } };
    }
    return r.value;
  }

  /** True once the program ran past its last op. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The data of the pending `in`/MMIO read. */
  completeRead(data: Uint8Array): void {
    if (!this.#pendingRead) throw gmErr('EINVAL', 'completeRead', 'core', 'no read is pending');
    if (data.length < this.#pendingRead.length)
      throw gmErr('EINVAL', 'completeRead', 'core', `needs ${this.#pendingRead.length} bytes, got ${data.length}`);
    this.#completed = new Uint8Array(data.subarray(0, this.#pendingRead.length));
  }

  /** Re-execute the pending MMIO access on the next run instead of completing it (see `Vcpu.retryMmio`). */
  retryMmio(): void {
    if (!this.#mmioPending) throw gmErr('EINVAL', 'retryMmio', 'core', 'no MMIO access is pending');
    this.#retry = true;
  }

  *#program(ops: readonly GuestOp[]): Step {
    for (const op of ops) yield* this.#op(op);
  }

  /** One access, retried after faults; an MMIO read takes the completed bytes. */
  *#access(kind: 'read' | 'write', gpa: bigint, buf: Uint8Array, view: MemoryAccess | undefined): Step {
    for (;;) {
      const exit = this.port.access(kind, gpa, buf, view);
      if (!exit) return;
      if (exit.kind === 'mmio') {
        if (yield* this.#finishMmio(kind, exit, buf)) continue;
        return;
      }
      yield exit;
    }
  }

  /**
   * A range access as `rep stosb`/`lodsb` loops make it: page-sized pieces; a piece the port
   * reports as MMIO is redone byte by byte (each byte its own access, as the instructions are).
   */
  *#rangeAccess(
    kind: 'read' | 'write',
    gpa: bigint,
    len: bigint,
    view: MemoryAccess | undefined,
    bytes: (at: bigint, n: number) => Uint8Array,
    sink?: (b: Uint8Array) => void,
  ): Step {
    const end = gpa + len;
    for (let at = gpa; at < end; ) {
      const to = chunkEnd(at, end);
      const buf = bytes(at, Number(to - at));
      const exit = this.port.access(kind, at, buf, view);
      if (exit === undefined) {
        sink?.(buf);
        at = to;
      } else if (exit.kind === 'mmio' && buf.length > 1) {
        for (let b = at; b < to; b++) {
          const one = bytes(b, 1);
          yield* this.#access(kind, b, one, view);
          sink?.(one);
        }
        at = to;
      } else {
        // Fault or MMIO of a one-byte piece: handled like a single access, then this piece again.
        if (exit.kind === 'mmio') {
          if (yield* this.#finishMmio(kind, exit, buf)) continue;
          sink?.(buf);
          at = to;
        } else {
          yield exit;
        }
      }
    }
  }

  /** Yields an MMIO exit and completes the access; true when the VMM asked for it to be re-executed instead. */
  *#finishMmio(kind: 'read' | 'write', exit: VcpuExit, buf: Uint8Array): Generator<VcpuExit, boolean, void> {
    this.#mmioPending = true;
    this.#retry = false;
    if (kind === 'read') {
      this.#pendingRead = buf;
      this.#completed = undefined;
    }
    yield exit;
    this.#mmioPending = false;
    const retry = this.#retry;
    this.#retry = false;
    if (kind === 'read') {
      if (!retry) buf.set(this.#completed!);
      this.#pendingRead = undefined;
      this.#completed = undefined;
    }
    return retry;
  }

  *#op(op: GuestOp): Step {
    switch (op.op) {
      case 'store': {
        const d = op.data;
        let i = 0;
        for (; i + 8 <= d.length; i += 8) yield* this.#access('write', op.gpa + BigInt(i), d.subarray(i, i + 8), op.view);
        for (; i < d.length; i++) yield* this.#access('write', op.gpa + BigInt(i), d.subarray(i, i + 1), op.view);
        return;
      }
      case 'load-report': {
        const buf = new Uint8Array(op.size);
        yield* this.#access('read', op.gpa, buf, op.view);
        yield ioExit(op, op.port, op.size, buf);
        return;
      }
      case 'fill':
        yield* this.#rangeAccess('write', op.gpa, op.len, op.view, (_at, n) => new Uint8Array(n).fill(op.byte));
        return;
      case 'checksum': {
        let sum = 0;
        yield* this.#rangeAccess(
          'read',
          op.gpa,
          op.len,
          op.view,
          (_at, n) => new Uint8Array(n),
          (b) => {
            for (let i = 0; i < b.length; i++) sum += b[i]!;
            sum >>>= 0;
          },
        );
        const data = new Uint8Array(4);
        new DataView(data.buffer).setUint32(0, sum >>> 0, true);
        yield ioExit(op, op.port, 4, data);
        return;
      }
      case 'out': {
        const data = new Uint8Array(op.size);
        for (let i = 0; i < op.size; i++) data[i] = (op.value >>> (8 * i)) & 0xff;
        yield ioExit(op, op.port, op.size, data);
        return;
      }
      case 'touch': {
        const buf = new Uint8Array(1);
        const port = this.port;
        const end = op.gpa + op.len;
        const kind = op.access === 'write' ? 'write' : 'read';
        if (kind === 'write') buf[0] = op.value;
        for (let at = op.gpa; at < end; ) {
          // The fast path is one port call per run of pages (or per page); only an exit enters the
          // generator machinery.
          let exit: VcpuExit | undefined;
          if (port.touch) {
            const stopped = port.touch(kind, at, end, op.value, op.view);
            if (stopped === undefined) break;
            at = stopped.at;
            exit = stopped.exit;
          } else {
            exit = port.access(kind, at, buf, op.view);
            if (exit === undefined) {
              at += PAGE;
              continue;
            }
          }
          if (exit.kind === 'mmio') {
            if (yield* this.#finishMmio(kind, exit, buf)) continue; // retried: this page again
            at += PAGE;
          } else {
            yield exit; // retried by the next run: this page again
          }
        }
        return;
      }
      case 'hlt':
        yield { kind: 'hlt', info: { source: 'guest-op-interpreter', op: op.op } };
        return;
    }
  }
}
