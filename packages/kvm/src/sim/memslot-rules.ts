/**
 * The rules of `KVM_SET_USER_MEMORY_REGION(2)` (`kvm_vm_ioctl_set_memory_region` +
 * `kvm_set_memory_region` + `kvm_gmem_bind` + `kvm_arch_prepare_memory_region`, docs/kvm-guest-memfd.md §2.6), as
 * one pure judgement in the kernel's check order: given what the VM holds ({@link MemslotWorld}) and
 * the decoded region, either the change the kernel makes or the first rule it refuses with.
 *
 * The simulated kernel applies the change (`memslots.ts`). The native driver asks the same question
 * of its own record of what it created after the real kernel refused, to name the most likely rule
 * (`native/diagnosis.ts`): both speak of the same {@link MemslotRule}s.
 */
import type { GuestMemErrorCode } from '@guestmem/core';
import { KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_USER_MEM_SLOTS } from '../uapi/constants.js';
import type { KvmUserspaceMemoryRegion2Decoded } from '../uapi/structs.js';
import { TASK_SIZE } from './address-space.js';

const PAGE_MASK = 4095n;
const U64_LIMIT = 1n << 64n;
/** `KVM_MEM_MAX_NR_PAGES` on x86: slot sizes are indexed with an unsigned int in dirty bitmaps. */
const KVM_MEM_MAX_NR_PAGES = 2n ** 31n - 1n;
/** Address spaces of the probe machine: no SMM, so only AS 0 (docs/kvm-guest-memfd.md §0.2, B40/B41). */
const NR_ADDRESS_SPACES = 1;

/** The rules a memslot ioctl can break, named as the simulated kernel names them. */
export type MemslotRule =
  | 'v1-flags'
  | 'slot-id'
  | 'flags'
  | 'memory-size-alignment'
  | 'gpa-alignment'
  | 'userspace-addr'
  | 'guest-memfd-offset'
  | 'address-space'
  | 'gpa-wrap'
  | 'too-many-pages'
  | 'no-such-slot'
  | 'guest-memfd-slot-immutable'
  | 'slot-fields-immutable'
  | 'gpa-overlap'
  | 'fd-not-open'
  | 'fd-not-guest-memfd'
  | 'fd-of-another-vm'
  | 'guest-memfd-offset-negative'
  | 'past-eof'
  | 'guest-memfd-range-bound'
  | 'above-max-gfn';

/** A refused memslot ioctl: the rule, the kernel's errno, and what was wrong. */
export interface MemslotRefusal {
  readonly rule: MemslotRule;
  readonly code: Extract<GuestMemErrorCode, 'EINVAL' | 'EEXIST' | 'EBADF'>;
  readonly detail: string;
}

/** What the judgement needs to know of one memslot. */
export interface SlotFacts {
  readonly id: number;
  readonly flags: number;
  readonly baseGfn: bigint;
  readonly npages: number;
  readonly userspaceAddr: bigint;
}

/** What the judgement needs to know of a guest_memfd file. */
export interface GuestMemfdFacts {
  readonly size: bigint;
  /** The file was created on the VM being judged. */
  readonly sameVm: boolean;
  /** The id of a slot bound to file pages overlapping `[first, end)`, if any. */
  boundSlotIn(first: number, end: number): number | undefined;
}

/** The VM (and process) a memslot ioctl is judged against. */
export interface MemslotWorld {
  /** `kvm_arch_has_readonly_mem()`. */
  readonly readonlyMem: boolean;
  /** `kvm_mmu_max_gfn()`. */
  readonly maxGfn: bigint;
  /** 6.18 checks `offset + size` against EOF in signed loff_t (docs/kvm-guest-memfd.md §2.6 E1). */
  readonly signedEofCheck: boolean;
  slot(id: number): SlotFacts | undefined;
  slots(): Iterable<SlotFacts>;
  /** `fget(fd)`: undefined when not open; `file` only for a guest_memfd. */
  fd(fd: number): { readonly kind: string; readonly file?: GuestMemfdFacts } | undefined;
}

/** The change an accepted memslot ioctl makes. */
export type MemslotChange =
  | { readonly change: 'delete'; readonly id: number }
  | { readonly change: 'none'; readonly id: number }
  | {
      readonly change: 'create' | 'move' | 'flags';
      readonly id: number;
      readonly baseGfn: bigint;
      readonly npages: number;
      /** The guest_memfd pages bound (`[first, end)`), for a GUEST_MEMFD slot. */
      readonly gmem?: { readonly fd: number; readonly first: number; readonly end: number };
    };

const refuse = (rule: MemslotRule, code: MemslotRefusal['code'], detail: string): MemslotRefusal => ({ rule, code, detail });

/** `kvm_vm_ioctl`'s v1 check: the v1 ioctl only knows LOG_DIRTY_PAGES and READONLY (§2.6 step 2, B32). */
export function judgeV1Flags(flags: number): MemslotRefusal | undefined {
  if (flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY))
    return refuse('v1-flags', 'EINVAL', `flags 0x${flags.toString(16)} are not v1 flags`);
  return undefined;
}

/** Judges one REGION/REGION2 request, checks in the kernel's order (docs/kvm-guest-memfd.md §2.6 steps 3–12). */
export function judgeMemoryRegion(world: MemslotWorld, r: KvmUserspaceMemoryRegion2Decoded): MemslotChange | MemslotRefusal {
  const asId = r.slot >>> 16;
  const id = r.slot & 0xffff;
  const size = r.memorySize;
  const gmem = (r.flags & KVM_MEM_GUEST_MEMFD) !== 0;
  // 3. (u16)slot >= KVM_USER_MEM_SLOTS (B38).
  if (id >= KVM_USER_MEM_SLOTS) return refuse('slot-id', 'EINVAL', `slot id ${id} >= ${KVM_USER_MEM_SLOTS}`);
  // 4. check_memory_region_flags: GUEST_MEMFD drops LOG_DIRTY and never allows READONLY (B29–B31).
  let valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD;
  if (gmem) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
  else if (world.readonlyMem) valid |= KVM_MEM_READONLY;
  if (r.flags & ~valid) return refuse('flags', 'EINVAL', `invalid flags 0x${r.flags.toString(16)}`);
  // 5. alignment; userspace_addr must pass access_ok (end ≤ TASK_SIZE_MAX, probed), 0 is fine (B37).
  if (size & PAGE_MASK) return refuse('memory-size-alignment', 'EINVAL', 'memory_size is not page-aligned');
  if (r.guestPhysAddr & PAGE_MASK) return refuse('gpa-alignment', 'EINVAL', 'guest_phys_addr is not page-aligned');
  if (r.userspaceAddr & PAGE_MASK || r.userspaceAddr + size > TASK_SIZE) {
    return refuse('userspace-addr', 'EINVAL', 'userspace_addr is not page-aligned or not a user address range');
  }
  // 6. guest_memfd_offset alignment and u64 wrap (B13–B16).
  if (gmem && (r.guestMemfdOffset & PAGE_MASK || r.guestMemfdOffset + size >= U64_LIMIT)) {
    return refuse('guest-memfd-offset', 'EINVAL', 'guest_memfd_offset is not page-aligned or offset + size wraps');
  }
  // 7. address space, GPA wrap, slot size limit.
  if (asId >= NR_ADDRESS_SPACES) return refuse('address-space', 'EINVAL', `address space ${asId} does not exist`);
  if (r.guestPhysAddr + size >= U64_LIMIT) return refuse('gpa-wrap', 'EINVAL', 'guest_phys_addr + memory_size wraps');
  const npagesBig = size >> 12n;
  if (npagesBig > KVM_MEM_MAX_NR_PAGES) return refuse('too-many-pages', 'EINVAL', 'memory_size exceeds KVM_MEM_MAX_NR_PAGES');
  const npages = Number(npagesBig);
  const baseGfn = r.guestPhysAddr >> 12n;
  const old = world.slot(id);
  // 8. delete: flags, fd and offset are ignored (B44/B45); a missing slot is EINVAL (B22/B46).
  if (size === 0n) return old ? { change: 'delete', id } : refuse('no-such-slot', 'EINVAL', `slot ${id} does not exist`);
  let change: 'create' | 'move' | 'flags';
  if (!old) {
    change = 'create';
  } else {
    // 9. Why: gmem slots are immutable — even an identical re-issue with GUEST_MEMFD is EINVAL (B2/B4).
    if (gmem) return refuse('guest-memfd-slot-immutable', 'EINVAL', `slot ${id} exists and GUEST_MEMFD slots cannot be modified`);
    if (
      r.userspaceAddr !== old.userspaceAddr ||
      npages !== old.npages ||
      (r.flags ^ old.flags) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD)
    ) {
      return refuse('slot-fields-immutable', 'EINVAL', `slot ${id}: only the GPA and LOG_DIRTY_PAGES may change`);
    }
    if (baseGfn !== old.baseGfn) change = 'move';
    else if (r.flags !== old.flags) change = 'flags';
    else return { change: 'none', id };
  }
  // 10. Why: the GPA overlap check precedes any guest_memfd validation, so it wins even with a
  // bad fd (docs/kvm-guest-memfd.md §2.6 step 10, B8/B9/B33/B35; set_memory_region_test's EEXIST cases).
  if (change !== 'flags') {
    const end = baseGfn + npagesBig;
    for (const s of world.slots()) {
      if (s.id !== id && s.baseGfn < end && baseGfn < s.baseGfn + BigInt(s.npages))
        return refuse('gpa-overlap', 'EEXIST', `GPA range overlaps slot ${s.id}`);
    }
  }
  // 11. kvm_gmem_bind.
  let bound: { fd: number; first: number; end: number } | undefined;
  if (gmem) {
    const b = judgeBind(world, r.guestMemfd, r.guestMemfdOffset, size, npages);
    if ('rule' in b) return b;
    bound = b;
  }
  // 12. kvm_set_memslot → kvm_arch_prepare_memory_region: a new or moved slot's last frame must not
  // exceed kvm_mmu_max_gfn() (x86.c). It runs after the bind, so a refusal takes the out_unbind path
  // of kvm_set_memory_region (kvm_gmem_unbind): the file range is free again.
  if (change !== 'flags' && baseGfn + npagesBig - 1n > world.maxGfn) {
    return refuse(
      'above-max-gfn',
      'EINVAL',
      `the slot's last frame 0x${(baseGfn + npagesBig - 1n).toString(16)} is above the MMU's highest frame 0x${world.maxGfn.toString(16)}`,
    );
  }
  return { change, id, baseGfn, npages, ...(bound ? { gmem: bound } : {}) };
}

/** `kvm_gmem_bind`'s checks, in order. */
function judgeBind(
  world: MemslotWorld,
  fd: number,
  offset: bigint,
  size: bigint,
  npages: number,
): { fd: number; first: number; end: number } | MemslotRefusal {
  const entry = world.fd(fd);
  if (!entry) return refuse('fd-not-open', 'EBADF', `fd ${fd} is not open`);
  const file = entry.file;
  if (!file) return refuse('fd-not-guest-memfd', 'EINVAL', `fd ${fd} is not a guest_memfd (${entry.kind})`);
  if (!file.sameVm) return refuse('fd-of-another-vm', 'EINVAL', `fd ${fd} is a guest_memfd of another VM`);
  if (BigInt.asIntN(64, offset) < 0n) return refuse('guest-memfd-offset-negative', 'EINVAL', 'guest_memfd_offset is negative as loff_t');
  // Why: 6.18 computes offset + size in signed loff_t, so 0x7ffffffffffff000 + 16 KiB wraps
  // negative and passes the EOF check (docs/kvm-guest-memfd.md §2.6 E1); the slot is then bound past EOF.
  const end64 = world.signedEofCheck ? BigInt.asIntN(64, offset + size) : offset + size;
  if (end64 > file.size) return refuse('past-eof', 'EINVAL', 'offset + size is past EOF');
  const first = Number(offset >> 12n);
  const end = first + npages;
  // Why: an overlap of guest_memfd *ranges* is EINVAL (the GPA overlap above is EEXIST) (B5/B6).
  const clash = file.boundSlotIn(first, end);
  if (clash !== undefined)
    return refuse('guest-memfd-range-bound', 'EINVAL', `guest_memfd pages [${first}, ${end}) are already bound to slot ${clash}`);
  return { fd, first, end };
}
