/**
 * A simulated host mapping of a guest_memfd (`mmap` of the file) and the memory-management calls on
 * it: `madvise`, `mprotect`, `mlock2`, `munlock` (`KvmGmemMapping` in `api.ts`). The range arithmetic
 * and the outside-the-mapping answers are shared with the native driver (`../mm-range.ts`); this file
 * holds the per-VMA rules, applied run by run in address order and stopping at the first error, as
 * `madvise_walk_vmas` / the mprotect and mlock loops do. Rules were read in mm/madvise.c, mm/mprotect.c,
 * mm/mlock.c and checked against the probe kernel (6.18); "probed" marks those only observed.
 */
import { GuestMemError, HostAccessFault, HostMapping, type GuestMemErrorCode, type GuestMemFile } from '@guestmem/core';
import type { IntArg, KvmGmemMapping } from '../api.js';
import { madviseRange, refuseUnsafeMadvise } from '../mmap-policy.js';
import {
  MappingVmas,
  VM_LOCKED,
  VM_LOCKONFAULT,
  mlockArgs,
  mprotectArgs,
  outsidePlan,
  rangeSpan,
  type ArgVerdict,
  type MmOp,
} from '../mm-range.js';
import { i32, u64 } from './codecs.js';
import {
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_GUARD_REMOVE,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MADV_WIPEONFORK,
  MLOCK_ONFAULT,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import type { SimKernel } from './kernel.js';
import { SimMappingBase } from './mapping-base.js';

const U64 = (1n << 64n) - 1n;

/** `madvise_behavior_valid` on x86-64 6.18 with THP and KSM (probed: 0–4, 8–25 and GUARD_REMOVE). */
const KNOWN_ADVICE = new Set([0, 1, 2, 3, 4, ...Array.from({ length: 18 }, (_, i) => 8 + i), MADV_GUARD_REMOVE]);
/** Advice that only applies to private anonymous memory, or to THP-capable files: EINVAL on a guest_memfd VMA (probed). */
const REFUSED_ON_FILE = new Set([MADV_FREE, MADV_WIPEONFORK, MADV_COLLAPSE]);
/** Advice refused on a VM_LOCKED VMA: `madvise_dontneed_free_valid_vma`, `can_madv_lru_vma`, `madvise_remove`. */
const REFUSED_WHEN_LOCKED = new Set([MADV_DONTNEED, MADV_COLD, MADV_PAGEOUT, MADV_REMOVE]);

type Fail = (code: GuestMemErrorCode, detail: string) => GuestMemError;

export class SimMapping extends SimMappingBase implements KvmGmemMapping {
  /** The VMA flags of each page (protection, lock). */
  readonly #vmas: MappingVmas;
  readonly #pages: number;

  constructor(kernel: SimKernel, file: GuestMemFile<any>, address: bigint, length: number, offset: bigint, prot: number, flags: number) {
    // The mapping takes its own file reference (docs/kvm-guest-memfd.md §2.5, LT1/S2b).
    super(kernel, new HostMapping(file, { offset, length }), address, length, offset, prot, flags);
    this.#pages = Math.ceil(length / 4096);
    this.#vmas = new MappingVmas(this.#pages, prot);
  }

  protected override protRoom(start: number, len: number, needed: number): number {
    return this.#vmas.room(start, len, needed);
  }

  protAt(offset: IntArg): number {
    const off = u64('offset', offset);
    if (off >= BigInt(this.#pages) * 4096n) {
      throw new GuestMemError({
        code: 'EFAULT',
        op: 'mapping.protAt',
        backend: SIM_BACKEND,
        detail: `offset ${off} is outside the mapping`,
        info: { offset },
      });
    }
    return this.#vmas.at(Number(off >> 12n)) & (PROT_READ | PROT_WRITE | PROT_EXEC);
  }

  madvise(offset: IntArg, len: IntArg, advice: number): void {
    refuseUnsafeMadvise(advice, SIM_BACKEND);
    const adv = i32('advice', advice);
    const fail: Fail = (code, detail) => sysErr(code, 'madvise', 'madvise', detail, { offset, len, advice });
    if (!KNOWN_ADVICE.has(adv)) throw fail('EINVAL', `advice ${adv} is unknown`);
    const r = madviseRange(this.address, 0n, u64('offset', offset), u64('len', len));
    if (r.refusedEarly) throw fail('EINVAL', 'start is not page-aligned or the length wraps');
    if (r.empty) return;
    const end = r.start + ((r.len + 4095n) & ~4095n & U64);
    const populate = adv === MADV_POPULATE_READ || adv === MADV_POPULATE_WRITE;
    this.#walk(populate ? 'madvise-populate' : 'madvise', { kind: 'range', start: r.start, end }, fail, 0, (first, last) =>
      populate
        ? this.#populate(first, last, adv === MADV_POPULATE_WRITE ? PROT_WRITE : PROT_READ, fail, 'EFAULT')
        : this.#advise(first, last, adv, fail),
    );
  }

  mprotect(offset: IntArg, len: IntArg, prot: number): void {
    const p = i32('prot', prot);
    const fail: Fail = (code, detail) => sysErr(code, 'mprotect', 'mprotect', detail, { offset, len, prot });
    const v = mprotectArgs((this.address + u64('offset', offset)) & U64, u64('len', len), p);
    this.#walk('mprotect', v, fail, p, (first, last) => {
      // mprotect_fixup's caller: PROT_EXEC needs VM_MAYEXEC, which a noexec mount never grants.
      if (p & PROT_EXEC) throw fail('EACCES', 'PROT_EXEC on a mapping of a noexec mount');
      this.#vmas.protect(first, last, p);
    });
  }

  mlock(offset: IntArg, len: IntArg, flags = 0): void {
    const fl = i32('flags', flags);
    const fail: Fail = (code, detail) => sysErr(code, 'mlock', 'mlock2', detail, { offset, len, flags });
    const v = mlockArgs((this.address + u64('offset', offset)) & U64, u64('len', len), fl);
    let locked: [number, number] | undefined;
    this.#walk('mlock', v, fail, 0, (first, last) => {
      this.#vmas.lock(first, last, VM_LOCKED | (fl & MLOCK_ONFAULT ? VM_LOCKONFAULT : 0));
      locked = [first, last];
    });
    // __mm_populate after the flags changed; __mlock_posix_error_return turns EFAULT into ENOMEM.
    if (locked && !(fl & MLOCK_ONFAULT)) this.#populate(locked[0], locked[1], 0, fail, 'ENOMEM');
  }

  munlock(offset: IntArg, len: IntArg): void {
    const fail: Fail = (code, detail) => sysErr(code, 'munlock', 'munlock', detail, { offset, len });
    const v = mlockArgs((this.address + u64('offset', offset)) & U64, u64('len', len), undefined);
    this.#walk('munlock', v, fail, 0, (first, last) => this.#vmas.lock(first, last, 0));
  }

  /**
   * The argument verdict, then the outside rules around `inside(firstPage, endPage)` (see
   * `outsidePlan`); `inside` throws its own error. For mlock the populate step is the caller's.
   */
  #walk(op: MmOp, v: ArgVerdict, fail: Fail, prot: number, inside: (first: number, end: number) => void): void {
    if (v.kind === 'error') throw fail(v.code, `${op}: arguments refused`);
    if (v.kind === 'noop') return;
    const span = rangeSpan(this.address, this.unmapped ? 0n : BigInt(this.#pages) * 4096n, v.start, v.end);
    const plan = outsidePlan(op, span, prot);
    if (plan.before) throw fail(plan.before, `${op}: the range starts outside the mapping`);
    if (span.inside) inside(Number(span.inside.from >> 12n), Number(span.inside.to >> 12n));
    if (plan.after) throw fail(plan.after, `${op}: the range runs past the mapping`);
  }

  /** madvise on pages `[first, end)`, VMA by VMA. */
  #advise(first: number, end: number, adv: number, fail: Fail): void {
    for (const run of this.#vmas.runs(first, end)) {
      if (REFUSED_ON_FILE.has(adv)) throw fail('EINVAL', `advice ${adv} does not apply to a guest_memfd mapping`);
      if (run.state & VM_LOCKED && REFUSED_WHEN_LOCKED.has(adv)) throw fail('EINVAL', `advice ${adv} on an mlocked range`);
      if (adv === MADV_REMOVE) {
        // madvise_remove: vfs_fallocate(PUNCH_HOLE | KEEP_SIZE) over the VMA's file range; it needs a
        // shared VMA that may be written (VM_MAYWRITE, not VM_WRITE: a PROT_READ mapping punches too, probed).
        const file = this.host.file;
        file.punchHole(this.offset + BigInt(run.first) * 4096n, BigInt(run.end - run.first) * 4096n);
      }
      // Every other accepted advice leaves a shared file mapping's contents alone (DONTNEED only zaps PTEs).
    }
  }

  /**
   * Faults pages `[first, end)` in, in order. `need` is the VM flag the fault needs (0 for mlock,
   * whose GUP sets FOLL_FORCE on accessible VMAs); a VMA without it, or PROT_NONE, is EINVAL for
   * POPULATE (probed) and EFAULT→`sigbusCode` for mlock; a page that would SIGBUS is `sigbusCode`.
   */
  #populate(first: number, end: number, need: number, fail: Fail, sigbusCode: GuestMemErrorCode): void {
    for (const run of this.#vmas.runs(first, end)) {
      const prot = run.state & (PROT_READ | PROT_WRITE);
      if (need ? !(prot & need) : !prot) throw fail(need ? 'EINVAL' : sigbusCode, 'the VMA does not allow this access');
      if (run.state & VM_LOCKONFAULT && !need) continue;
      for (let p = run.first; p < run.end; p++) {
        try {
          this.host.read(p * 4096, 1);
        } catch (e) {
          if (e instanceof HostAccessFault) throw fail(sigbusCode, `page ${p} of the mapping would SIGBUS`);
          throw e;
        }
      }
    }
  }
}
