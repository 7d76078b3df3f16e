/**
 * The guest's view of memory (sim-only): one guest access resolved page by page the way the x86 MMU
 * resolves a guest fault (docs/kvm-guest-memfd.md §2.8), populating and observing "SPTEs" so invalidation is testable.
 */
import {
  GuestMemError,
  HostAccessFault,
  PAGE_SIZE,
  PAGE_SIZE_N,
  SMALL_COPY_MAX,
  bytesAt,
  copySmall,
  type GuestMemErrorCode,
} from '@guestmem/core';
import type { IntArg } from '../api.js';
import { u64 } from './codecs.js';
import { KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEM_READONLY } from '../uapi/constants.js';
import { TASK_SIZE } from './address-space.js';
import { SimAnonMapping } from './anon-memory.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import type { SimGmemFile } from './guest-memfd.js';
import type { SimMemslot } from './memslot.js';
import type { SimVmState } from './vm-state.js';

const PAGE = BigInt(PAGE_SIZE);
const PAGE_MASK = PAGE - 1n;
const KVM_RUN = 'ioctl(KVM_RUN)';
const EMPTY = new Uint8Array(0);

/** Arguments of {@link guestAccess}. */
export interface SimGuestAccess {
  /** Guest physical address of the first byte. */
  gpa: IntArg;
  /** Bytes to access (may cross pages and slots). */
  len: number;
  /** A write (default: a read). */
  write?: boolean;
  /** Bytes to write (`len` of them); default: `len` bytes of {@link fill}. */
  data?: Uint8Array;
  /** The byte a write without `data` stores (a guest `memset`); default 0. */
  fill?: number;
  /**
   * The access kind the hardware reports (SNP C-bit / TDX shared bit). Omitted: the kernel derives
   * it from the gfn's attribute, as it does for `KVM_X86_SW_PROTECTED_VM`. `true` on a VM type
   * without private memory is EINVAL (no hardware produces it).
   */
  private?: boolean;
}

/** The `struct kvm_run` fields KVM_RUN fills with `KVM_EXIT_MEMORY_FAULT` (docs/kvm-guest-memfd.md §1.2, §1.4). */
export interface KvmMemoryFaultExit {
  /** `run->exit_reason`: `KVM_EXIT_MEMORY_FAULT` (39). */
  readonly exitReason: number;
  readonly memoryFault: {
    /** `KVM_MEMORY_EXIT_FLAG_PRIVATE` (1 << 3) when the faulting access was private, else 0. */
    readonly flags: bigint;
    /** The faulting page's guest physical address. */
    readonly gpa: bigint;
    /** `PAGE_SIZE` on x86. */
    readonly size: bigint;
  };
}

/**
 * The KVM_EXIT_MEMORY_FAULT record a failed simulated guest access carries, or undefined when the
 * failure came without one (treat `exit_reason` as stale then, as api.rst says for other errnos).
 */
export function memoryFaultExit(e: unknown): KvmMemoryFaultExit | undefined {
  if (!GuestMemError.is(e)) return undefined;
  const info = e.info as Partial<KvmMemoryFaultExit>;
  return info.exitReason === KVM_EXIT_MEMORY_FAULT && info.memoryFault
    ? { exitReason: info.exitReason, memoryFault: info.memoryFault }
    : undefined;
}

/** One page of a guest access, resolved to its backing. */
interface ResolvedPage {
  read(n: number, out: Uint8Array<ArrayBuffer>, done: number): void;
  /** Writes `data[from…from+n)` (no view of a small on-heap buffer: V8 would copy it). */
  write(data: Uint8Array, from: number, n: number): void;
}

/**
 * One guest memory access, resolved page by page the way the x86 MMU resolves a guest fault
 * (docs/kvm-guest-memfd.md §2.8), so a VMM's exit handling can be tested without hardware.
 *
 * Per page, in the kernel's order:
 * 1. `is_private`: `args.private` when given (what SNP/TDX hardware reports: the C-bit / shared
 *    bit the guest chose); otherwise the gfn's PRIVATE attribute, because for
 *    `KVM_X86_SW_PROTECTED_VM` `kvm_mmu_page_fault` synthesizes `PFERR_PRIVATE_ACCESS` from the
 *    attributes (the attributes are the source of truth for such VMs).
 * 2. `is_private` ≠ the attribute → KVM_EXIT_MEMORY_FAULT, EFAULT (`kvm_mmu_faultin_pfn`).
 * 3. No memslot: a private access → MEMORY_FAULT, EFAULT (`kvm_handle_noslot_fault`); a shared
 *    one is MMIO → EFAULT without an exit record here.
 * 4. Private, or a gmem-only slot (file with MMAP): served from guest_memfd. A slot without
 *    guest_memfd, or whose file was released → MEMORY_FAULT, EFAULT; a poisoned page →
 *    MEMORY_FAULT, EHWPOISON; other `kvm_gmem_get_pfn` errors (ENOMEM…) → MEMORY_FAULT with that errno.
 * 5. Otherwise through `userspace_addr` (anonymous memory or a guest_memfd mapping): nothing
 *    mapped, or a SIGBUS/SIGSEGV there → EFAULT; a hwpoisoned anonymous page → SIGBUS (KVM sends
 *    the vCPU thread SIGBUS, `kvm_send_hwpoison_signal`).
 *
 * Failures throw a `GuestMemError` with `syscall 'ioctl(KVM_RUN)'`; those that come with a
 * KVM_EXIT_MEMORY_FAULT carry it as `info` (read it with {@link memoryFaultExit}). A multi-page
 * access stops at the first failing page; pages before it were accessed (writes stay).
 * Returns the bytes read (an empty array for writes).
 */
export function guestAccess(vm: SimVmState, args: SimGuestAccess): Uint8Array {
  const fast = fastAccess(vm, args.gpa, args.len, args.write === true, args.data, args.private);
  if (fast !== undefined) return fast;
  return slowAccess(vm, args);
}

/** The last page the full path installed an SPTE for (see {@link fastAccess}); kept in {@link SimVmState.tlb}. */
export interface SimGuestTlb {
  readonly base: bigint;
  readonly end: bigint;
  /** `base` as a number, NaN past 2^53 (so a number address never matches there). */
  readonly baseNum: number;
  readonly slot: SimMemslot;
  readonly slotPage: number;
  readonly folio: number;
  readonly file: SimGmemFile;
  readonly isPrivate: boolean;
  readonly arena: Uint8Array;
  readonly at: number;
}

/**
 * A shortcut with no behaviour of its own (exported for the VM's read/write shorthands, which skip
 * building an argument object): a one-page access to the page whose SPTE the full path
 * ({@link slowAccess}) installed last, while that SPTE is still installed. Everything that changes
 * the answer — punch, poison, conversion (attributes), slot delete/move, file release — zaps the
 * SPTE, replaces the slot or orphans it, which this checks, so the access then takes the full path.
 */
export function fastAccess(
  vm: SimVmState,
  gpa: IntArg,
  len: number,
  write: boolean,
  data: Uint8Array | undefined,
  wantPrivate: boolean | undefined,
): Uint8Array | undefined {
  const t = vm.tlb;
  if (t === undefined || typeof len !== 'number') return undefined;
  // The offset in the page, without BigInt arithmetic for number addresses (the common case).
  let inPage: number;
  if (typeof gpa === 'number') inPage = gpa - t.baseNum;
  else if (typeof gpa === 'bigint' && gpa >= t.base && gpa < t.end) inPage = Number(gpa - t.base);
  else return undefined;
  if (!(inPage >= 0 && len >= 0 && inPage + len <= PAGE_SIZE && Number.isInteger(inPage) && Number.isInteger(len))) return undefined;
  if (wantPrivate !== undefined && wantPrivate !== t.isPrivate) return undefined;
  const slot = t.slot;
  if (slot.sptes.get(t.slotPage) !== t.folio || vm.slots.get(slot.id) !== slot || slot.gmem?.file !== t.file) return undefined;
  const arena = t.arena;
  const at = t.at + inPage;
  if (write) {
    if (data === undefined || data.length !== len) return undefined;
    if (len <= SMALL_COPY_MAX) copySmall(arena, at, data, 0, len);
    else arena.set(data, at);
    return EMPTY;
  }
  return bytesAt(arena, at, len);
}

/** Arguments of {@link guestTouch}. */
export interface SimGuestTouch {
  /** Address of the first access (each following one is a page further). */
  gpa: bigint;
  /** No access starts at or after this address. */
  end: bigint;
  /** Writes of {@link value} (default: one-byte reads). */
  write?: boolean;
  /** The byte each write stores. */
  value?: number;
  /** As {@link SimGuestAccess.private}. */
  private?: boolean;
}

/**
 * A guest touching pages (`GuestProgram.touch`): one-byte accesses at `gpa`, `gpa + 4096`, … below
 * `end`, in that order. Each is exactly the {@link guestAccess} of that one byte: same rules, same
 * SPTEs installed, same folios allocated, same error. The first access that fails stops the touch.
 * Returns where it stopped: `{ at: end }` when every access completed, else the failing access's
 * address and the error {@link guestAccess} threw for it (accesses before it happened).
 *
 * A run of pages in one gmem-served slot (private, or a gmem-only slot) with one attribute is
 * resolved once and then served page by page from guest_memfd without BigInt arithmetic; every other
 * page, and any page whose folio cannot be had, takes {@link guestAccess} itself.
 */
export function guestTouch(vm: SimVmState, args: SimGuestTouch): { at: bigint; error?: unknown } {
  const write = args.write === true;
  const one = Uint8Array.of(args.value ?? 0);
  const want = args.private;
  const single: SimGuestAccess = { gpa: 0n, len: 1, write, data: one, private: want };
  let at = args.gpa;
  const end = args.end;
  while (at < end) {
    const run = at < NUM_LIMIT ? gmemRun(vm, at, write, want) : undefined;
    if (run === undefined) {
      single.gpa = at;
      try {
        guestAccess(vm, single);
      } catch (error) {
        return { at, error };
      }
      at += PAGE;
      continue;
    }
    // Pages [at, runEnd) share the slot, the attribute and the file: the per-page rules left are
    // the folio's (allocate, prepare, poison), checked by getFolio, as in resolve().
    const { slot, file, isPrivate } = run;
    // The run installs SPTEs without describing them in the shortcut's last page: forget it, so
    // it never vouches for an SPTE this run put back (possibly after a conversion).
    vm.tlb = undefined;
    const core = file.core;
    const alloc = core.allocator;
    const baseGfn = Number(slot.baseGfn);
    const pgoff = slot.gmem!.pgoff;
    const sptes = slot.sptes;
    let runEnd = run.endGpa < end ? run.endGpa : end;
    if (runEnd > NUM_LIMIT) runEnd = NUM_LIMIT;
    const inPage = Number(at & PAGE_MASK);
    const stop = Number(runEnd);
    const byte = one[0]!;
    let gpa = Number(at);
    while (gpa < stop) {
      // A batch of pages (at most 512: a 2 MiB footprint, still in cache when touched): fault them in
      // together (getFolio's rules, page by page, adjacent new folios zeroed at once), then access them.
      const firstIndex = pgoff + ((gpa - inPage) / PAGE_SIZE - baseGfn);
      const pages = Math.min(TOUCH_BATCH, Math.ceil((stop - gpa) / PAGE_SIZE));
      const faulted = core.faultIn(firstIndex, firstIndex + pages, touchFolios);
      for (let index = firstIndex; index < faulted.stop; index++, gpa += PAGE_SIZE) {
        const folio = touchFolios[index - firstIndex]!;
        sptes.set(index - pgoff, folio);
        if (write) {
          const off = alloc.arenaOffset(folio) + (alloc.orderOf(folio) === 9 ? (index % 512) * PAGE_SIZE : 0) + inPage;
          alloc.arenaOf(folio)[off] = byte;
        }
      }
      if (faulted.error !== undefined) {
        // resolve()'s answer for a folio that cannot be had (§2.8 steps 4–5).
        const e = faulted.error;
        // Not an errno (a bug in an allocator): the failing access threw it as it is.
        if (!GuestMemError.is(e)) return { at: BigInt(gpa), error: e };
        const gfn = BigInt(gpa) >> 12n;
        return { at: BigInt(gpa), error: memoryFaultError(write ? 'guestWrite' : 'guestRead', gfn, isPrivate, e.code, e.message) };
      }
    }
    at = BigInt(gpa);
  }
  return { at: end };
}

/** Pages a touch faults in at once. */
const TOUCH_BATCH = 512;
/** The folios of the batch a touch faulted in (see `GuestMemFile.faultIn`). */
const touchFolios = new Int32Array(TOUCH_BATCH);

/** The run path works on number addresses: it serves accesses below this (2^53 − 4096), the rest take {@link guestAccess}. */
const NUM_LIMIT = (1n << 53n) - PAGE;

/**
 * The run of pages from `at` a touch can serve straight from guest_memfd: same slot, same PRIVATE
 * attribute, an access kind that matches it, served from the slot's live file (private, or a
 * gmem-only slot), and not a write to a READONLY slot. Undefined when `at`'s page takes another
 * rule of {@link resolve}.
 */
function gmemRun(
  vm: SimVmState,
  at: bigint,
  write: boolean,
  want: boolean | undefined,
): { slot: SimMemslot; file: SimGmemFile; isPrivate: boolean; endGpa: bigint } | undefined {
  const gfn = at >> 12n;
  const g = Number(gfn);
  const attrPrivate = vm.vmType.hasPrivateMem && vm.attributes.get(g);
  const isPrivate = want ?? attrPrivate;
  if (isPrivate !== attrPrivate) return undefined;
  const slot = vm.slotAt(gfn);
  if (!slot || (write && slot.flags & KVM_MEM_READONLY)) return undefined;
  if (!(isPrivate || slot.gmemOnly)) return undefined;
  const file = slot.gmem?.file;
  if (!file) return undefined;
  let endGfn = slot.endGfn;
  if (vm.vmType.hasPrivateMem) {
    const attrEnd = BigInt(vm.attributes.runEnd(g));
    if (attrEnd < endGfn) endGfn = attrEnd;
  }
  return { slot, file, isPrivate, endGpa: endGfn << 12n };
}

/** The full path: every rule of {@link guestAccess}, page by page. */
function slowAccess(vm: SimVmState, args: SimGuestAccess): Uint8Array {
  const write = args.write === true;
  const op = write ? 'guestWrite' : 'guestRead';
  const gpa = u64('gpa', args.gpa);
  const len = args.len;
  if (!Number.isSafeInteger(len) || len < 0) throw sysErr('EINVAL', op, undefined, `bad length ${len}`, { len });
  let data: Uint8Array | undefined;
  if (write) {
    data = args.data ?? new Uint8Array(len).fill(args.fill ?? 0);
    if (data.length !== len) throw sysErr('EINVAL', op, undefined, `data has ${data.length} bytes, len is ${len}`, { len });
  }
  if (args.private === true && !vm.vmType.hasPrivateMem) {
    throw sysErr('EINVAL', op, undefined, 'a private access on a VM type without private memory cannot happen', { gpa });
  }
  const out = new Uint8Array(write ? 0 : len);
  let done = 0;
  while (done < len) {
    const at = gpa + BigInt(done);
    const n = Math.min(len - done, PAGE_SIZE - Number(at & PAGE_MASK));
    const page = resolve(vm, op, at, write, args.private);
    if (write) page.write(data!, done, n);
    else page.read(n, out, done);
    done += n;
  }
  return out;
}

/** A failed access that exits with KVM_EXIT_MEMORY_FAULT for page `gfn` (errno `code`). */
function memoryFaultError(
  op: string,
  gfn: bigint,
  isPrivate: boolean,
  code: GuestMemErrorCode,
  detail: string,
  extra: Record<string, unknown> = {},
): GuestMemError {
  return sysErr(code, op, KVM_RUN, detail, {
    exitReason: KVM_EXIT_MEMORY_FAULT,
    // kvm_mmu_prepare_memory_fault_exit: the faulting page, PRIVATE iff fault->is_private (§1.4).
    memoryFault: { flags: isPrivate ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0n, gpa: gfn << 12n, size: PAGE },
    ...extra,
  });
}

/** Resolves the page containing `at` for one access (steps 1–5 of {@link guestAccess}). */
function resolve(vm: SimVmState, op: string, at: bigint, write: boolean, wantPrivate: boolean | undefined): ResolvedPage {
  const gfn = at >> 12n;
  const inPage = Number(at & PAGE_MASK);
  const attrPrivate = vm.vmType.hasPrivateMem && vm.attributes.get(Number(gfn));
  // Why: SW_PROTECTED VMs take is_private from the attributes (kvm_mmu_page_fault); hardware
  // CoCo types report it, which `wantPrivate` stands for (docs/kvm-guest-memfd.md §2.8).
  const isPrivate = wantPrivate ?? attrPrivate;
  const exit = (code: GuestMemErrorCode, detail: string, extra: Record<string, unknown> = {}): GuestMemError =>
    memoryFaultError(op, gfn, isPrivate, code, detail, extra);
  // Why: a private/shared mismatch exits to userspace before anything else (kvm_mmu_faultin_pfn).
  if (isPrivate !== attrPrivate) {
    throw exit('EFAULT', `${isPrivate ? 'private' : 'shared'} access to a ${attrPrivate ? 'private' : 'shared'} gfn 0x${gfn.toString(16)}`);
  }
  const slot = vm.slotAt(gfn);
  if (!slot) {
    // Why: kvm_handle_noslot_fault refuses to emulate MMIO for a private fault (kvm_exits §3.4).
    if (isPrivate) throw exit('EFAULT', `private access to gpa 0x${at.toString(16)} with no memslot`);
    throw sysErr('EFAULT', op, undefined, `no memslot at gpa 0x${at.toString(16)} (MMIO exit)`, { gpa: at, mmio: true });
  }
  if (write && slot.flags & KVM_MEM_READONLY) {
    throw sysErr('EFAULT', op, undefined, `write to a READONLY slot at 0x${at.toString(16)} (MMIO exit)`, { gpa: at, mmio: true });
  }
  const slotPage = Number(gfn - slot.baseGfn);
  // fault_from_gmem(): private faults and every fault on a gmem-only slot use guest_memfd (§2.8).
  if (isPrivate || slot.gmemOnly) {
    // Why: kvm_mmu_faultin_pfn_gmem exits when the slot has no guest_memfd at all (kvm_exits §3.4).
    if (!slot.gmem) throw exit('EFAULT', `private access to gfn 0x${gfn.toString(16)} in slot ${slot.id}, which has no guest_memfd`);
    const file = slot.gmem.file;
    // kvm_gmem_get_pfn: a released file gives -EFAULT with a memory-fault exit (§2.8 step 1).
    if (!file) {
      // `gmemReleased` lets a vCPU model pick the exit its host gives (SimKernelOptions.releasedMemoryExit).
      if (vm.kernel.releasedMemoryExit === 'mmio') {
        throw sysErr('EFAULT', op, undefined, `slot ${slot.id}'s guest_memfd was released (MMIO exit on this profile)`, {
          gpa: at,
          gmemReleased: true,
          mmio: true,
        });
      }
      throw exit('EFAULT', `slot ${slot.id}'s guest_memfd was released`, { gmemReleased: true });
    }
    const index = slot.gmem.pgoff + slotPage;
    try {
      const folio = file.core.getFolio(index);
      slot.sptes.set(slotPage, folio);
      const alloc = file.core.allocator;
      const inFolio = alloc.orderOf(folio) === 9 ? (index % 512) * PAGE_SIZE : 0;
      const base = gfn << 12n;
      const baseNum = base <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(base) : Number.NaN;
      vm.tlb = {
        base,
        end: base + PAGE,
        baseNum,
        slot,
        slotPage,
        folio,
        file,
        isPrivate,
        arena: alloc.arenaOf(folio),
        at: alloc.arenaOffset(folio) + inFolio,
      };
    } catch (e) {
      // §2.8 steps 4–5: EHWPOISON for a poisoned folio, allocation errors passed through.
      if (GuestMemError.is(e)) throw exit(e.code, e.message);
      throw e;
    }
    const fileOff = BigInt(index) * PAGE_SIZE_N + BigInt(inPage);
    return {
      read: (n, out, d) => void file.core.read(fileOff, n, out, d),
      write: (data, from, n) => file.core.write(fileOff, data, from, n),
    };
  }
  const hva = slot.userspaceAddr + (at - (slot.baseGfn << 12n));
  const vma = hva < TASK_SIZE ? vm.kernel.addressSpace.find(hva) : undefined;
  if (!vma) throw sysErr('EFAULT', op, KVM_RUN, `nothing mapped at hva 0x${hva.toString(16)}`, { gpa: at });
  const m = vma.owner;
  const mOff = Number(hva - vma.start);
  if (m instanceof SimAnonMapping && m.isPoisoned(mOff)) {
    // Why: hva_to_pfn finds a hwpoisoned page and KVM signals the vCPU thread (kvm_send_hwpoison_signal).
    throw new HostAccessFault({
      op,
      backend: SIM_BACKEND,
      offset: BigInt(mOff),
      detail: `hva 0x${hva.toString(16)} is hwpoisoned`,
      syscall: KVM_RUN,
    });
  }
  const viaHva = <T>(access: () => T): T => {
    try {
      return access();
    } catch (e) {
      // A SIGBUS or SIGSEGV on the userspace mapping is an EFAULT for KVM (get_user_pages fails).
      if (e instanceof HostAccessFault || GuestMemError.is(e, 'EFAULT')) {
        throw sysErr('EFAULT', op, KVM_RUN, e.message, { gpa: at });
      }
      throw e;
    }
  };
  return {
    read: (n, out, d) => viaHva(() => out.set(m.read(mOff, n), d)),
    write: (data, from, n) => viaHva(() => m.write(mOff, from === 0 && n === data.length ? data : data.subarray(from, from + n))),
  };
}
