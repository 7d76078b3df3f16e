/**
 * Anonymous private host memory on the real kernel: `mmap(NULL, len, PROT_READ|PROT_WRITE,
 * MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)` through koffi (see `KvmAnonMapping` in `api.ts`).
 */
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import type { IntArg, KvmAnonMapping } from '../api.js';
import { madviseRange, refuseUnsafeMadvise } from '../mmap-policy.js';
import { i32, u64 } from './codecs.js';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { NATIVE_BACKEND, syscallError } from './errors.js';
import type { Libc } from './libc.js';
import { NativeMappingBase } from './mapping.js';

const ANON_PROT = PROT_READ | PROT_WRITE;
const ANON_FLAGS = MAP_PRIVATE | MAP_ANONYMOUS;

/** `mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`. */
export function mmapAnonymous(c: Libc, length: IntArg): NativeAnonMapping {
  const len = u64('length', length);
  // Why: fresh zero-filled private memory; no fd, so it holds no file reference.
  const address: bigint = c.mmap(0n, len, ANON_PROT, ANON_FLAGS, -1, 0);
  if (address === MAP_FAILED) throw syscallError(c.errno(), 'mmapAnonymous', 'mmap', { length });
  // The kernel refuses anything past TASK_SIZE (2^47), so the length is always a safe integer here.
  return new NativeAnonMapping(c, address, Number(len));
}

/**
 * One anonymous private mapping. Private anonymous memory never SIGBUSes for an in-range access
 * (a missing page is a fresh zero page), so the access pre-check is only bounds, unmapped and prot
 * ({@link NativeMappingBase}); what it cannot see is the same as for a guest_memfd mapping (hardware
 * poison, OOM inside the fault, foreign munmap), see README "Native driver".
 */
export class NativeAnonMapping extends NativeMappingBase implements KvmAnonMapping {
  protected readonly accessible: number;
  /** The VMA's extent: the length rounded up to whole pages (the kernel maps whole pages). */
  readonly #mapped: bigint;

  /**
   * `prot`/`flags` default to `mmapAnonymous`'s; a guest_memfd `mmap` with `MAP_FIXED_NOREPLACE |
   * MAP_ANONYMOUS` passes its own (the kernel ignored the fd and mapped anonymous memory).
   */
  constructor(c: Libc, address: bigint, length: number, prot = ANON_PROT, flags = ANON_FLAGS) {
    super(c, address, length, 0n, prot, flags);
    this.accessible = this.mapped;
    this.#mapped = (BigInt(length) + 4095n) & ~4095n;
  }

  protected fault(op: string, mappingOffset: number): HostAccessFault {
    // Unreachable: every in-range byte is accessible. Kept total for the base class.
    return new HostAccessFault({ op: `mapping.${op}`, backend: NATIVE_BACKEND, offset: BigInt(mappingOffset), detail: 'anonymous memory' });
  }

  /**
   * `madvise(address + offset, len, advice)`. The kernel answers; guestmem only keeps the request
   * inside this mapping (see `KvmAnonMapping.madvise` and {@link madviseRange}):
   * - requests the kernel refuses before its VMA walk, and requests inside the mapping, are issued
   *   unchanged;
   * - a request reaching outside is issued as a zero-length call at its start (the kernel's argument
   *   checks: unknown advice → EINVAL), then on the part inside, then answered ENOMEM — what the
   *   kernel answers when nothing is mapped outside, without touching what actually is.
   */
  madvise(offset: IntArg, len: IntArg, advice: number): void {
    refuseUnsafeMadvise(advice, NATIVE_BACKEND);
    const adv = i32('advice', advice);
    const r = madviseRange(this.address, this.unmapped ? 0n : this.#mapped, u64('offset', offset), u64('len', len));
    const info = { offset, len, advice };
    if (r.refusedEarly || r.empty || (r.inside && !r.outside)) {
      // Why: the whole request is ours (or the kernel refuses it before touching any page).
      if (this.c.madvise(r.start, r.len, adv) < 0) throw syscallError(this.c.errno(), 'madvise', 'madvise', info);
      return;
    }
    // Why: zero length — only the kernel's argument checks run, nothing is touched.
    if (this.c.madvise(r.start, 0, adv) < 0) throw syscallError(this.c.errno(), 'madvise', 'madvise', info);
    if (r.inside) {
      // Why: apply the advice to the part of the request that is this mapping.
      if (this.c.madvise(this.address + r.inside.from, r.inside.to - r.inside.from, adv) < 0) {
        throw syscallError(this.c.errno(), 'madvise', 'madvise', info);
      }
    }
    throw new GuestMemError({
      code: 'ENOMEM',
      op: 'madvise',
      backend: NATIVE_BACKEND,
      syscall: 'madvise',
      detail: 'part of the range is outside the mapping (treated as unmapped; never passed to the kernel)',
      info,
    });
  }
}
