/**
 * `madvise`, `mprotect`, `mlock2` and `munlock` on a native guest_memfd mapping (`KvmGmemMapping`).
 * The kernel answers every request that stays inside the mapping (or that it refuses on its
 * arguments alone, before any VMA lookup); for a request reaching outside, the call is issued for the
 * part inside only and the part outside gets the kernel's "nothing mapped here" answer
 * (`outsidePlan` in `../mm-range.ts`), so memory of the Node process is never touched.
 *
 * Safety (every call below): the address range passed to the kernel is either refused by the kernel
 * before it looks at any VMA, or lies inside `[address, address + mapped)`, which this mapping owns
 * until `munmap()` (after which `mapped` is 0 and nothing is passed). `mprotect` results are recorded
 * in `vmas`, which the access pre-check reads, so a later access never runs into a SIGSEGV.
 */
import { GuestMemError, type GuestMemErrorCode } from '@guestmem/core';
import type { IntArg } from '../api.js';
import { madviseRange, refuseUnsafeMadvise } from '../mmap-policy.js';
import { mlockArgs, mprotectArgs, outsidePlan, rangeSpan, type ArgVerdict, type MappingVmas, type MmOp } from '../mm-range.js';
import { i32, u64 } from './codecs.js';
import { MADV_POPULATE_READ, MADV_POPULATE_WRITE, MLOCK_ONFAULT } from '../uapi/constants.js';
import { NATIVE_BACKEND, syscallError } from './errors.js';
import type { Libc } from './libc.js';

const U64 = (1n << 64n) - 1n;

/** What the operations need from a native mapping. */
export interface NativeMmTarget {
  readonly c: Libc;
  readonly address: bigint;
  /** Page-rounded mapped length; 0 once unmapped. */
  readonly mappedBytes: bigint;
  readonly vmas: MappingVmas;
}

function libraryAnswer(code: GuestMemErrorCode, op: string, syscall: string, info: Record<string, unknown>): GuestMemError {
  return new GuestMemError({
    code,
    op,
    backend: NATIVE_BACKEND,
    syscall,
    detail: 'answered by guestmem: the range reaches outside this mapping, where nothing is mapped for it',
    info,
  });
}

/**
 * Shared skeleton: `whole()` issues the original request; `part(from, to)` the request for mapping
 * offsets `[from, to)`; `applied(first, end)` learns which pages the kernel changed (before an error
 * for the part outside is thrown).
 */
function run(
  t: NativeMmTarget,
  op: MmOp,
  v: ArgVerdict,
  prot: number,
  syscall: string,
  info: Record<string, unknown>,
  whole: () => void,
  part: (from: bigint, to: bigint) => void,
  applied: (first: number, end: number) => void = () => {},
): void {
  if (v.kind !== 'range') return whole();
  const span = rangeSpan(t.address, t.mappedBytes, v.start, v.end);
  if (span.inside && !span.startsOutside && !span.runsPast) {
    whole();
    return applied(Number(span.inside.from >> 12n), Number(span.inside.to >> 12n));
  }
  const plan = outsidePlan(op, span, prot);
  if (plan.before) throw libraryAnswer(plan.before, op, syscall, info);
  if (span.inside) {
    part(span.inside.from, span.inside.to);
    applied(Number(span.inside.from >> 12n), Number(span.inside.to >> 12n));
  }
  if (plan.after) throw libraryAnswer(plan.after, op, syscall, info);
}

export function nativeMadvise(t: NativeMmTarget, offset: IntArg, len: IntArg, advice: number): void {
  refuseUnsafeMadvise(advice, NATIVE_BACKEND);
  const adv = i32('advice', advice);
  const info = { offset, len, advice };
  const r = madviseRange(t.address, t.mappedBytes, u64('offset', offset), u64('len', len));
  const call = (start: bigint, n: bigint) => {
    // Why: advice on our own pages (or a request the kernel refuses before its VMA walk).
    if (t.c.madvise(start, n, adv) < 0) throw syscallError(t.c.errno(), 'madvise', 'madvise', info);
  };
  if (r.refusedEarly || r.empty) return call(r.start, r.len);
  // Why: with length 0 the kernel only validates the advice (EINVAL for unknown advice) and touches nothing.
  call(r.start, 0n);
  const end = r.start + ((r.len + 4095n) & ~4095n & U64);
  const populate = adv === MADV_POPULATE_READ || adv === MADV_POPULATE_WRITE;
  run(
    t,
    populate ? 'madvise-populate' : 'madvise',
    { kind: 'range', start: r.start, end },
    0,
    'madvise',
    info,
    () => call(r.start, r.len),
    (from, to) => call(t.address + from, to - from),
  );
}

export function nativeMprotect(t: NativeMmTarget, offset: IntArg, len: IntArg, prot: number): void {
  const p = i32('prot', prot);
  const info = { offset, len, prot };
  const start = (t.address + u64('offset', offset)) & U64;
  const n = u64('len', len);
  const call = (s: bigint, l: bigint) => {
    // Why: change the protection of our own pages (or a request refused on its arguments).
    if (t.c.mprotect(s, l, p) < 0) throw syscallError(t.c.errno(), 'mprotect', 'mprotect', info);
  };
  run(
    t,
    'mprotect',
    mprotectArgs(start, n, p),
    p,
    'mprotect',
    info,
    () => call(start, n),
    (from, to) => call(t.address + from, to - from),
    (first, end) => t.vmas.protect(first, end, p),
  );
}

export function nativeMlock(t: NativeMmTarget, offset: IntArg, len: IntArg, flags = 0): void {
  const fl = i32('flags', flags);
  const info = { offset, len, flags };
  const start = (t.address + u64('offset', offset)) & U64;
  const n = u64('len', len);
  const call = (s: bigint, l: bigint, f: number) => {
    // Why: lock (and, without MLOCK_ONFAULT, populate) our own pages.
    if (t.c.mlock2(s, l, f) < 0) throw syscallError(t.c.errno(), 'mlock', 'mlock2', info);
  };
  // The part inside a request running past the mapping is locked without populating, as the kernel
  // does when apply_vma_lock_flags fails at the hole: MLOCK_ONFAULT locks without faulting pages in.
  run(
    t,
    'mlock',
    mlockArgs(start, n, fl),
    0,
    'mlock2',
    info,
    () => call(start, n, fl),
    (from, to) => call(t.address + from, to - from, fl | MLOCK_ONFAULT),
  );
}

export function nativeMunlock(t: NativeMmTarget, offset: IntArg, len: IntArg): void {
  const info = { offset, len };
  const start = (t.address + u64('offset', offset)) & U64;
  const n = u64('len', len);
  const call = (s: bigint, l: bigint) => {
    // Why: unlock our own pages.
    if (t.c.munlock(s, l) < 0) throw syscallError(t.c.errno(), 'munlock', 'munlock', info);
  };
  run(
    t,
    'munlock',
    mlockArgs(start, n, undefined),
    0,
    'munlock',
    info,
    () => call(start, n),
    (from, to) => call(t.address + from, to - from),
  );
}
