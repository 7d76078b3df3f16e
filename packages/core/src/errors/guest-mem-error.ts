import { ERRNO, strerror, type ErrnoCode, type GuestMemErrorCode } from './errno.js';

/** What every {@link GuestMemError} is constructed from. */
export interface GuestMemErrorOptions {
  /** Symbolic code: an errno code such as `'EINVAL'`, or `'SIGBUS'`. */
  code: GuestMemErrorCode;
  /** The operation the caller asked for, e.g. `'fallocate'`, `'createGuestMemfd'`, `'bind'`. */
  op: string;
  /** The backend id that produced the error, one per backend (`'kvm'`, `'kvm-sim'`, `'gunyah-sim'`, `'gunyah-ack-sim'`…), or `'core'` outside any backend. */
  backend: string;
  /** The raw syscall or ioctl, when one is involved: `'ioctl(KVM_SET_USER_MEMORY_REGION2)'`, `'mmap'`. */
  syscall?: string;
  /** Human detail naming the offending values. Prefixed with strerror text in `message`. */
  detail?: string;
  /** Structured context (offending values), kept for programmatic inspection. */
  info?: Readonly<Record<string, unknown>>;
  /** An underlying error. */
  cause?: unknown;
}

/**
 * The one error type of guestmem, shaped like Node's `SystemError`: a symbolic `code`, the Linux
 * `errno` number, the `syscall` (when a raw one was involved) plus the high-level `op` and the
 * `backend` that failed.
 *
 * Callers branch on `code` (`err.code === 'EEXIST'`), never on message text. Simulated and native
 * backends produce the same `code`/`errno` for the same failure; that is what the differential
 * tests compare.
 */
export class GuestMemError extends Error {
  readonly code: GuestMemErrorCode;
  /** Linux errno number; 0 for `'SIGBUS'`, which is a signal, not an errno. */
  readonly errno: number;
  readonly op: string;
  readonly backend: string;
  readonly syscall: string | undefined;
  readonly info: Readonly<Record<string, unknown>>;

  constructor(opts: GuestMemErrorOptions) {
    const where = opts.syscall ? `${opts.op} [${opts.syscall}]` : opts.op;
    const detail = opts.detail ? `: ${opts.detail}` : '';
    super(`${opts.backend}: ${where} failed with ${opts.code} (${strerror(opts.code)})${detail}`, {
      cause: opts.cause,
    });
    this.name = new.target.name;
    this.code = opts.code;
    this.errno = opts.code === 'SIGBUS' ? 0 : ERRNO[opts.code];
    this.op = opts.op;
    this.backend = opts.backend;
    this.syscall = opts.syscall;
    this.info = Object.freeze({ ...(opts.info ?? {}) });
  }

  /**
   * What `JSON.stringify(err)` writes: every field, bigints (in `info` too) as decimal strings, the
   * `cause` chain as plain objects. Without it `JSON.stringify` throws on the bigint fields.
   */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      message: this.message,
      code: this.code,
      errno: this.errno,
      op: this.op,
      backend: this.backend,
      ...(this.syscall === undefined ? {} : { syscall: this.syscall }),
      info: jsonSafe(this.info, new WeakSet()),
      ...(this.cause === undefined ? {} : { cause: jsonSafe(this.cause, new WeakSet()) }),
    };
  }

  /** True when `e` is a GuestMemError, optionally with the given code. */
  static is(e: unknown, code?: GuestMemErrorCode): e is GuestMemError {
    return e instanceof GuestMemError && (code === undefined || e.code === code);
  }
}

/** A JSON-safe copy: bigints as strings, errors as plain objects, cycles cut. */
function jsonSafe(v: unknown, seen: WeakSet<object>): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'function' || typeof v === 'symbol') return undefined;
  if (v === null || typeof v !== 'object') return v;
  if (seen.has(v)) return '[Circular]';
  seen.add(v);
  if (v instanceof GuestMemError) return v.toJSON();
  if (v instanceof Error) {
    const out: Record<string, unknown> = { name: v.name, message: v.message };
    const code = (v as { code?: unknown }).code;
    if (code !== undefined) out.code = jsonSafe(code, seen);
    if (v.cause !== undefined) out.cause = jsonSafe(v.cause, seen);
    return out;
  }
  if (ArrayBuffer.isView(v)) return Array.from(v as Uint8Array);
  if (Array.isArray(v)) return v.map((x) => jsonSafe(x, seen));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = jsonSafe(x, seen);
  return out;
}

/**
 * A host access that the real kernel would answer with SIGBUS (past EOF, a page the backend keeps
 * private or lent, a poisoned page). Thrown *instead of* touching memory, so the Node process is
 * never killed by a real signal.
 */
export class HostAccessFault extends GuestMemError {
  /** The file byte offset whose access was refused. */
  readonly offset: bigint;
  constructor(opts: Omit<GuestMemErrorOptions, 'code'> & { offset: bigint | number }) {
    super({ ...opts, code: 'SIGBUS', info: { ...(opts.info ?? {}), offset: BigInt(opts.offset) } });
    this.offset = BigInt(opts.offset);
  }
}

/** Shorthand used throughout the code base: `throw gmErr('EINVAL', 'fallocate', 'core', 'len 0')`. */
export function gmErr(
  code: GuestMemErrorCode,
  op: string,
  backend: string,
  detail?: string,
  extra?: Pick<GuestMemErrorOptions, 'syscall' | 'info' | 'cause'>,
): GuestMemError {
  return new GuestMemError({ code, op, backend, detail, ...extra });
}

export type { ErrnoCode, GuestMemErrorCode };
