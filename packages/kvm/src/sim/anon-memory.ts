/**
 * Anonymous host memory in the simulated process: `mmap(NULL, len, PROT_READ|PROT_WRITE,
 * MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`, the "normal" guest RAM every VMM has (QEMU, Cloud Hypervisor,
 * the kernel selftests' `VM_MEM_SRC_ANONYMOUS`).
 *
 * Why it exists: on a private-memory VM (`KVM_X86_SW_PROTECTED_VM`) guest_memfd cannot be
 * INIT_SHARED, so every host fault on it is SIGBUS (docs/kvm-guest-memfd.md §2.5) and the *shared* side of a gmem
 * slot must come from other host memory at `userspace_addr` (docs/kvm-guest-memfd.md §1.4 REGION2: "a valid
 * guest_memfd (private memory) and userspace_addr (shared memory)"). This object is that memory.
 *
 * `KvmAnonMapping` of `api.ts`; the native counterpart is `native/anon-memory.ts`. Sim-only extras:
 * {@link SimAnonMapping.markPoisoned}, `isPoisoned`, `isPresent`.
 */
import { GuestMemFile, HostMapping, PAGE_SIZE_N } from '@guestmem/core';
import type { IntArg, KvmAnonMapping } from '../api.js';
import { madviseRange, refuseUnsafeMadvise } from '../mmap-policy.js';
import { i32, u64 } from './codecs.js';
import {
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_GUARD_REMOVE,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import type { SimKernel } from './kernel.js';
import { SimMappingBase } from './mapping-base.js';

const PAGE_MASK = PAGE_SIZE_N - 1n;
const HPAGE = 0x20_0000n;

/**
 * The advice values 6.18 accepts on a private anonymous mapping of the target kernel (probed: 0–4,
 * 8–25 and `MADV_GUARD_REMOVE`; 5–7, 26–99 and the rest are EINVAL; 100–102 are guestmem refusals).
 */
const KNOWN_ADVICE = new Set([0, 1, 2, 3, 4, ...Array.from({ length: 18 }, (_, i) => 8 + i), MADV_GUARD_REMOVE]);
/** `MADV_DOFORK`, `MADV_WIPEONFORK`, `MADV_KEEPONFORK`, `MADV_PAGEOUT`. */
const MADV_DOFORK = 17;
const MADV_WIPEONFORK = 18;
const MADV_KEEPONFORK = 19;
const MADV_PAGEOUT = 21;
/** `MAP_DROPPABLE` (6.11+): anonymous memory the kernel may drop instead of swapping. */
const MAP_DROPPABLE = 0x08;

/**
 * One anonymous private mapping. Pages are created and zeroed on first touch and accounted in the
 * kernel's folio allocator (so leak checks see them); `madvise(MADV_DONTNEED)` frees them and the
 * range reads zero again; {@link markPoisoned} injects a memory failure (host access then SIGBUS).
 */
export class SimAnonMapping extends SimMappingBase implements KvmAnonMapping {
  /** The pages behind the mapping (anonymous memory has no file; core's file is its page store). */
  private readonly store: GuestMemFile<never>;

  /**
   * `prot`/`flags` default to `mmapAnonymous`'s; a guest_memfd `mmap` with `MAP_FIXED_NOREPLACE |
   * MAP_ANONYMOUS` passes its own (the kernel ignores the fd and maps anonymous memory).
   */
  constructor(kernel: SimKernel, address: bigint, length: number, prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS) {
    const size = (BigInt(length) + PAGE_MASK) & ~PAGE_MASK;
    const store = GuestMemFile.create<never>(size, 0n, { backend: SIM_BACKEND }, { allocator: kernel.allocator });
    super(kernel, new HostMapping(store, { length }), address, length, 0n, prot, flags);
    this.store = store;
    // The mapping's own reference is the only one: drop the creation reference.
    store.release();
  }

  /**
   * `madvise(address + offset, len, advice)` with Linux 6.18's answers (probed on the target kernel,
   * see `KvmAnonMapping.madvise`), in its order: guestmem's refusals; unknown advice EINVAL; the
   * argument checks (unaligned start, wrapping length: EINVAL; empty: 0); the part inside the mapping
   * (`MADV_REMOVE` EINVAL, `MADV_DONTNEED`/`_LOCKED` free the pages, `MADV_POPULATE_*` fault them in,
   * `MADV_COLLAPSE` EINVAL without a 2 MiB-aligned block, anything else keeps the contents); then
   * ENOMEM when part of the range is outside the mapping (or the mapping is gone).
   */
  madvise(offset: IntArg, len: IntArg, advice: number): void {
    refuseUnsafeMadvise(advice, SIM_BACKEND);
    const adv = i32('advice', advice);
    const fail = (code: 'EINVAL' | 'ENOMEM', detail: string) => sysErr(code, 'madvise', 'madvise', detail, { offset, len, advice });
    // madvise_behavior_valid (x86-64 6.18 with THP and KSM, as probed: 0–4, 8–25, 103).
    if (!KNOWN_ADVICE.has(adv)) throw fail('EINVAL', `advice ${adv} is unknown`);
    const r = madviseRange(this.address, this.unmapped ? 0n : this.store.size, u64('offset', offset), u64('len', len));
    if (r.refusedEarly) throw fail('EINVAL', 'start is not page-aligned or the length wraps');
    if (r.empty) return;
    if (r.inside) {
      const { from, to } = r.inside;
      // Why: MADV_POPULATE_READ/WRITE fault the range in for reading/writing; a VMA without that
      // permission is EINVAL (madvise_populate: incompatible permissions), and the part inside the
      // mapping is judged first (guestmem's policy above). x86 PROT_WRITE does not grant VM_READ (probed).
      if (adv === MADV_POPULATE_READ && !(this.prot & PROT_READ)) throw fail('EINVAL', 'MADV_POPULATE_READ on a mapping without PROT_READ');
      if (adv === MADV_POPULATE_WRITE && !(this.prot & PROT_WRITE))
        throw fail('EINVAL', 'MADV_POPULATE_WRITE on a mapping without PROT_WRITE');
      if (this.shared) {
        // Why: shared anonymous memory is a shmem file (probed, mm/madvise.c): MADV_FREE and
        // MADV_WIPEONFORK refuse a non-anonymous or VM_SHARED VMA (EINVAL); MADV_DONTNEED only zaps
        // the page tables, the pages stay in the file; MADV_REMOVE punches the file (reads zero).
        if (adv === MADV_FREE) throw fail('EINVAL', 'MADV_FREE needs private anonymous memory (this is shmem)');
        if (adv === MADV_WIPEONFORK) throw fail('EINVAL', 'MADV_WIPEONFORK refuses a shared mapping');
        if (adv === MADV_COLLAPSE && !this.holdsHugeBlock()) throw fail('EINVAL', 'the VMA holds no 2 MiB-aligned 2 MiB block');
        if (adv === MADV_REMOVE) this.store.punchHole(from, to - from);
        else if (adv === MADV_POPULATE_READ || adv === MADV_POPULATE_WRITE) this.store.allocate(from, to - from);
      } else {
        // Why: a VM_DROPPABLE VMA is always wipe-on-fork and dont-copy, so MADV_DOFORK and
        // MADV_KEEPONFORK are EINVAL, and reclaim (MADV_PAGEOUT) drops its pages instead of
        // swapping them: the range reads zero afterwards (probed).
        if (this.droppable && (adv === MADV_DOFORK || adv === MADV_KEEPONFORK))
          throw fail('EINVAL', 'a MAP_DROPPABLE mapping is always wipe-on-fork and dont-copy');
        if (this.droppable && adv === MADV_PAGEOUT) this.store.punchHole(from, to - from);
        if (adv === MADV_REMOVE) throw fail('EINVAL', 'MADV_REMOVE needs a file mapping (private anonymous memory has none)');
        if (adv === MADV_COLLAPSE && !this.holdsHugeBlock()) throw fail('EINVAL', 'the VMA holds no 2 MiB-aligned 2 MiB block');
        if (adv === MADV_DONTNEED || adv === MADV_DONTNEED_LOCKED) this.store.punchHole(from, to - from);
        else if (adv === MADV_POPULATE_READ || adv === MADV_POPULATE_WRITE) this.store.allocate(from, to - from);
      }
    }
    if (r.outside) throw fail('ENOMEM', 'part of the range is not mapped');
  }

  /** `MAP_SHARED | MAP_ANONYMOUS` (from a guest_memfd `mmap` with `MAP_FIXED_NOREPLACE`): shmem-backed. */
  private get shared(): boolean {
    return (this.flags & 0x0f) === MAP_SHARED;
  }

  /** `MAP_DROPPABLE | MAP_ANONYMOUS` (from a guest_memfd `mmap` with `MAP_FIXED_NOREPLACE`). */
  private get droppable(): boolean {
    return (this.flags & 0x0f) === MAP_DROPPABLE;
  }

  /** `thp_vma_suitable_order` for PMD order: a 2 MiB-aligned 2 MiB block fits in the VMA. */
  private holdsHugeBlock(): boolean {
    const end = this.address + this.store.size;
    return ((end - HPAGE) & ~(HPAGE - 1n)) >= this.address && end >= HPAGE;
  }

  /**
   * Sim-only memory-failure injection (`MADV_HWPOISON` on this page): the page at `offset` becomes
   * poisoned; host access to it then fails with SIGBUS (a {@link HostAccessFault}), and a guest
   * access through a memslot whose `userspace_addr` covers it fails the same way (KVM sends the
   * vCPU thread SIGBUS for a hwpoisoned hva, `kvm_send_hwpoison_signal`).
   */
  markPoisoned(offset: IntArg): void {
    const off = u64('offset', offset);
    if (this.unmapped || off >= this.store.size) {
      throw sysErr('EFAULT', 'markPoisoned', undefined, `offset ${off} is outside the mapping`, { offset });
    }
    this.store.markPoisoned(Number(off >> 12n));
  }

  /** True when the page at `offset` was poisoned by {@link markPoisoned}. */
  isPoisoned(offset: IntArg): boolean {
    const index = Number(u64('offset', offset) >> 12n);
    return index < this.store.pages && this.store.isPoisoned(index);
  }

  /** True when the page at `offset` is backed (touched and not discarded). */
  isPresent(offset: IntArg): boolean {
    return this.store.isPresent(Number(u64('offset', offset) >> 12n));
  }
}
