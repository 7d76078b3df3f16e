/**
 * The simulated VM (`struct kvm`): its memslots and the REGION2 rules (research §2.6), its lifetime
 * (§2.12), guest_memfd creation (§2.2), and a sim-only guest access path that populates and
 * observes "SPTEs" so invalidation is testable.
 */
import { GuestMemError, HostAccessFault, PAGE_SIZE } from '@guestmem/core';
import type {
  CreateGuestMemfdArgs,
  IntArg,
  KvmGuestMemfd,
  KvmVm,
  MemoryAttributesArgs,
  UserMemoryRegion,
  UserMemoryRegion2,
} from '../api.js';
import { u64 } from '../uapi/codec-util.js';
import {
  GUEST_MEMFD_FLAG_MMAP,
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_USER_MEM_SLOTS,
} from '../uapi/constants.js';
import {
  decodeKvmCreateGuestMemfd,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
  encodeKvmCreateGuestMemfd,
  encodeKvmMemoryAttributes,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
  type KvmUserspaceMemoryRegion2Decoded,
} from '../uapi/structs.js';
import { TASK_SIZE } from './address-space.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import { SimFdHandle, SimGmemFile, SimGuestMemfd } from './guest-memfd.js';
import type { SimKernel } from './kernel.js';
import { checkExtension, type SimVmType } from './vm-types.js';

const PAGE = BigInt(PAGE_SIZE);
const PAGE_MASK = PAGE - 1n;
const U64_LIMIT = 1n << 64n;
/** `KVM_MEM_MAX_NR_PAGES` on x86: slot sizes are indexed with an unsigned int in dirty bitmaps. */
const KVM_MEM_MAX_NR_PAGES = 2n ** 31n - 1n;
/** Address spaces of the probe machine: no SMM, so only AS 0 (research §0.2, B40/B41). */
const NR_ADDRESS_SPACES = 1;
/** `CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES` is off on the probe machine (research §0.2, S11). */
const GENERIC_MEMORY_ATTRIBUTES = false;

const SET_REGION = 'ioctl(KVM_SET_USER_MEMORY_REGION)';
const SET_REGION2 = 'ioctl(KVM_SET_USER_MEMORY_REGION2)';
const CREATE_GMEM = 'ioctl(KVM_CREATE_GUEST_MEMFD)';

/** A memslot (`struct kvm_memory_slot`). Replaced, never mutated, by MOVE and FLAGS_ONLY changes. */
export class SimMemslot {
  /** `slot->gmem`: the bound file (NULL once the file is released: an orphan) and first file page. */
  gmem: { file: SimGmemFile | null; readonly pgoff: number } | null = null;
  /** `KVM_MEMSLOT_GMEM_ONLY`: set at bind iff the file has GUEST_MEMFD_FLAG_MMAP (§2.6 step 11). */
  gmemOnly = false;
  /** Installed guest mappings ("SPTEs"): slot page → folio handle. */
  readonly sptes = new Map<number, number>();

  constructor(
    readonly id: number,
    readonly flags: number,
    readonly baseGfn: bigint,
    readonly npages: number,
    readonly userspaceAddr: bigint,
  ) {}

  /** Zaps the SPTEs of file pages `[first, end)` (kvm_gmem_invalidate_begin's gfn range math). */
  zapFilePages(first: number, end: number): void {
    if (!this.gmem) return;
    const lo = Math.max(first, this.gmem.pgoff) - this.gmem.pgoff;
    const hi = Math.min(end, this.gmem.pgoff + this.npages) - this.gmem.pgoff;
    if (hi - lo >= this.sptes.size) {
      for (const p of this.sptes.keys()) if (p >= lo && p < hi) this.sptes.delete(p);
    } else {
      for (let p = lo; p < hi; p++) this.sptes.delete(p);
    }
  }

  zapAll(): void {
    this.sptes.clear();
  }

  /** The file was released: the slot stays, bound to nothing. */
  orphan(): void {
    if (this.gmem) this.gmem.file = null;
  }

  /** `kvm_gmem_unbind` (on delete): a no-op for orphans; never frees file memory (§2.6 B47/B48). */
  unbind(): void {
    this.gmem?.file?.unbind(this);
    if (this.gmem) this.gmem.file = null;
  }

  get endGfn(): bigint {
    return this.baseGfn + BigInt(this.npages);
  }
}

/**
 * `struct kvm`. Its references: the VM file, plus one per live guest_memfd file (the file pins the
 * VM, research §2.12). The last reference destroys it and frees its memslots.
 */
export class SimVmState {
  private users = 1;
  destroyed = false;
  /** Memslots of address space 0 by slot id. */
  readonly slots = new Map<number, SimMemslot>();

  constructor(
    readonly kernel: SimKernel,
    readonly vmType: SimVmType,
  ) {
    kernel.vms.add(this);
  }

  get(): void {
    this.users++;
  }

  put(): void {
    if (--this.users > 0) return;
    // kvm_destroy_vm → kvm_free_memslots: every slot is unbound (no live file can still be bound:
    // each would have pinned the VM).
    for (const slot of this.slots.values()) slot.unbind();
    this.slots.clear();
    this.destroyed = true;
    this.kernel.vms.delete(this);
  }

  /** The slot whose GPA range contains `gfn`. */
  slotAt(gfn: bigint): SimMemslot | undefined {
    for (const s of this.slots.values()) if (s.baseGfn <= gfn && gfn < s.endGfn) return s;
    return undefined;
  }
}

/** A VM fd. */
export class SimKvmVm extends SimFdHandle implements KvmVm {
  constructor(
    kernel: SimKernel,
    fd: number,
    readonly state: SimVmState,
  ) {
    super(kernel, fd);
  }

  get type(): number {
    return this.state.vmType.type;
  }

  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    return checkExtension(u64('cap', cap), this.state.vmType);
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    this.live('createGuestMemfd', CREATE_GMEM);
    // Encode and decode the struct exactly as it crosses into the kernel (same range errors as native).
    const { size, flags } = decodeKvmCreateGuestMemfd(encodeKvmCreateGuestMemfd(args));
    const fail = (detail: string) => sysErr('EINVAL', 'createGuestMemfd', CREATE_GMEM, detail, { size: args.size, flags: args.flags });
    // kvm_gmem_create: flags first, then size (research §2.2 step 1); reserved[] is ignored (R1/R2).
    if (flags & ~this.state.vmType.guestMemfdFlags) throw fail(`unsupported flags 0x${flags.toString(16)}`);
    if (BigInt.asIntN(64, size) <= 0n || size & PAGE_MASK) throw fail(`size ${size} must be > 0 and page-aligned`);
    const file = new SimGmemFile(this.kernel, this.state, size, flags);
    const fd = this.kernel.fds.install({ kind: 'gmem', file });
    return new SimGuestMemfd(this.kernel, fd, file);
  }

  setUserMemoryRegion(region: UserMemoryRegion): void {
    this.live('setUserMemoryRegion', SET_REGION);
    const r = decodeKvmUserspaceMemoryRegion(encodeKvmUserspaceMemoryRegion(region));
    // kvm_vm_ioctl: the v1 ioctl only knows LOG_DIRTY_PAGES and READONLY (§2.6 step 2, B32).
    if (r.flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) {
      throw sysErr('EINVAL', 'setUserMemoryRegion', SET_REGION, `flags 0x${r.flags.toString(16)} are not v1 flags`, { ...region });
    }
    this.setRegion({ ...r, guestMemfdOffset: 0n, guestMemfd: 0, pad1: 0, pad2: [] }, 'setUserMemoryRegion', SET_REGION, region);
  }

  setUserMemoryRegion2(region: UserMemoryRegion2): void {
    this.live('setUserMemoryRegion2', SET_REGION2);
    const r = decodeKvmUserspaceMemoryRegion2(encodeKvmUserspaceMemoryRegion2(region));
    this.setRegion(r, 'setUserMemoryRegion2', SET_REGION2, region);
  }

  setMemoryAttributes(attrs: MemoryAttributesArgs): void {
    const syscall = 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)';
    this.live('setMemoryAttributes', syscall);
    encodeKvmMemoryAttributes(attrs);
    if (!GENERIC_MEMORY_ATTRIBUTES) {
      // Not compiled in: kvm_vm_ioctl falls through to the arch ioctl, which does not know it (S11/S11b).
      throw sysErr('ENOTTY', 'setMemoryAttributes', syscall, 'CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is off', { ...attrs });
    }
  }

  protected onClose(): void {
    this.state.put();
  }

  // ------------------------------------------------------------------ sim-only: the guest's view

  /**
   * Reads guest memory as a vCPU would (upstream VMX/SVM semantics, research §2.8): a gmem-only slot
   * is served from its guest_memfd (installing an SPTE); other slots through `userspace_addr`.
   * Failures throw GuestMemError: EFAULT for no slot (MMIO), an orphaned gmem-only slot (with
   * `info.exitReason` = KVM_EXIT_MEMORY_FAULT, `info.gpa`, `info.size`) or an unmapped/refused hva;
   * EHWPOISON for a poisoned page.
   */
  guestRead(gpa: IntArg, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.guestAccess('read', u64('gpa', gpa), len, (piece, done) => piece.read(done, out));
    return out;
  }

  /** Writes guest memory as a vCPU would (see {@link guestRead}); READONLY slots give EFAULT (MMIO). */
  guestWrite(gpa: IntArg, data: Uint8Array): void {
    this.guestAccess('write', u64('gpa', gpa), data.length, (piece, done) => piece.write(done, data));
  }

  /** The SPTEs installed for slot `id` (slot page → folio), for tests of invalidation. */
  sptesOf(id: number): ReadonlyMap<number, number> {
    return this.state.slots.get(id)?.sptes ?? new Map();
  }

  private guestAccess(
    kind: 'read' | 'write',
    gpa: bigint,
    len: number,
    each: (piece: { read(done: number, out: Uint8Array<ArrayBuffer>): void; write(done: number, data: Uint8Array): void }, done: number) => void,
  ): void {
    const op = kind === 'read' ? 'guestRead' : 'guestWrite';
    let done = 0;
    while (done < len) {
      const at = gpa + BigInt(done);
      const gfn = at >> 12n;
      const inPage = Number(at & PAGE_MASK);
      const n = Math.min(len - done, PAGE_SIZE - inPage);
      const slot = this.state.slotAt(gfn);
      if (!slot) throw sysErr('EFAULT', op, undefined, `no memslot at gpa 0x${at.toString(16)} (MMIO exit)`, { gpa: at });
      if (kind === 'write' && slot.flags & KVM_MEM_READONLY) {
        throw sysErr('EFAULT', op, undefined, `write to a READONLY slot at 0x${at.toString(16)} (MMIO exit)`, { gpa: at });
      }
      const slotPage = Number(gfn - slot.baseGfn);
      if (slot.gmemOnly) {
        const file = slot.gmem?.file;
        const memoryFault = { exitReason: KVM_EXIT_MEMORY_FAULT, gpa: gfn << 12n, size: PAGE_SIZE, flags: 0n };
        // kvm_gmem_get_pfn: a released file gives -EFAULT with a memory-fault exit (§2.8 step 1).
        if (!file) throw sysErr('EFAULT', op, 'ioctl(KVM_RUN)', 'gmem-only slot whose guest_memfd was released', memoryFault);
        const index = slot.gmem!.pgoff + slotPage;
        try {
          slot.sptes.set(slotPage, file.core.getFolio(index));
        } catch (e) {
          if (GuestMemError.is(e)) throw sysErr(e.code, op, 'ioctl(KVM_RUN)', e.message, memoryFault);
          throw e;
        }
        const fileOff = index * PAGE_SIZE + inPage;
        each(
          {
            read: (d, out) => file.core.read(fileOff, n, out, d),
            write: (d, data) => file.core.write(fileOff, data.subarray(d, d + n)),
          },
          done,
        );
      } else {
        const hva = slot.userspaceAddr + (at - (slot.baseGfn << 12n));
        const vma = hva < TASK_SIZE ? this.kernel.addressSpace.find(hva) : undefined;
        if (!vma) throw sysErr('EFAULT', op, 'ioctl(KVM_RUN)', `nothing mapped at hva 0x${hva.toString(16)}`, { gpa: at });
        const m = vma.owner;
        const mOff = Number(hva - vma.start);
        try {
          each(
            {
              read: (d, out) => out.set(m.read(mOff, n), d),
              write: (d, data) => m.write(mOff, data.subarray(d, d + n)),
            },
            done,
          );
        } catch (e) {
          // A SIGBUS or SIGSEGV on the userspace mapping is an EFAULT for KVM (get_user_pages fails).
          if (e instanceof HostAccessFault || GuestMemError.is(e, 'EFAULT')) {
            throw sysErr('EFAULT', op, 'ioctl(KVM_RUN)', e.message, { gpa: at });
          }
          throw e;
        }
      }
      done += n;
    }
  }

  // ------------------------------------------------------------------ REGION / REGION2

  /**
   * `kvm_vm_ioctl_set_memory_region` + `kvm_set_memory_region` + `kvm_gmem_bind`, with the checks in
   * the kernel's order (research §2.6 steps 3–12).
   */
  private setRegion(r: KvmUserspaceMemoryRegion2Decoded, op: string, syscall: string, args: UserMemoryRegion): void {
    const fail = (code: 'EINVAL' | 'EEXIST' | 'EBADF', detail: string) => sysErr(code, op, syscall, detail, { ...args });
    const asId = r.slot >>> 16;
    const id = r.slot & 0xffff;
    const size = r.memorySize;
    const gmem = (r.flags & KVM_MEM_GUEST_MEMFD) !== 0;
    // 3. (u16)slot >= KVM_USER_MEM_SLOTS (B38).
    if (id >= KVM_USER_MEM_SLOTS) throw fail('EINVAL', `slot id ${id} >= ${KVM_USER_MEM_SLOTS}`);
    // 4. check_memory_region_flags: GUEST_MEMFD drops LOG_DIRTY and never allows READONLY (B29–B31).
    let valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD;
    if (gmem) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
    else if (this.state.vmType.readonlyMem) valid |= KVM_MEM_READONLY;
    if (r.flags & ~valid) throw fail('EINVAL', `invalid flags 0x${r.flags.toString(16)}`);
    // 5. alignment; userspace_addr must pass access_ok (end ≤ TASK_SIZE_MAX, probed), 0 is fine (B37).
    if (size & PAGE_MASK) throw fail('EINVAL', 'memory_size is not page-aligned');
    if (r.guestPhysAddr & PAGE_MASK) throw fail('EINVAL', 'guest_phys_addr is not page-aligned');
    if (r.userspaceAddr & PAGE_MASK || r.userspaceAddr + size > TASK_SIZE) {
      throw fail('EINVAL', 'userspace_addr is not page-aligned or not a user address range');
    }
    // 6. guest_memfd_offset alignment and u64 wrap (B13–B16).
    if (gmem && (r.guestMemfdOffset & PAGE_MASK || r.guestMemfdOffset + size >= U64_LIMIT)) {
      throw fail('EINVAL', 'guest_memfd_offset is not page-aligned or offset + size wraps');
    }
    // 7. address space, GPA wrap, slot size limit.
    if (asId >= NR_ADDRESS_SPACES) throw fail('EINVAL', `address space ${asId} does not exist`);
    if (r.guestPhysAddr + size >= U64_LIMIT) throw fail('EINVAL', 'guest_phys_addr + memory_size wraps');
    const npagesBig = size >> 12n;
    if (npagesBig > KVM_MEM_MAX_NR_PAGES) throw fail('EINVAL', 'memory_size exceeds KVM_MEM_MAX_NR_PAGES');
    const npages = Number(npagesBig);
    const baseGfn = r.guestPhysAddr >> 12n;
    const old = this.state.slots.get(id);
    // 8. delete: flags, fd and offset are ignored (B44/B45); a missing slot is EINVAL (B22/B46).
    if (size === 0n) {
      if (!old) throw fail('EINVAL', `slot ${id} does not exist`);
      return this.deleteSlot(old);
    }
    let change: 'create' | 'move' | 'flags';
    if (!old) {
      change = 'create';
    } else {
      // 9. Why: gmem slots are immutable — even an identical re-issue with GUEST_MEMFD is EINVAL (B2/B4).
      if (gmem) throw fail('EINVAL', `slot ${id} exists and GUEST_MEMFD slots cannot be modified`);
      if (r.userspaceAddr !== old.userspaceAddr || npages !== old.npages || (r.flags ^ old.flags) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD)) {
        throw fail('EINVAL', `slot ${id}: only the GPA and LOG_DIRTY_PAGES may change`);
      }
      if (baseGfn !== old.baseGfn) change = 'move';
      else if (r.flags !== old.flags) change = 'flags';
      else return; // nothing to change
    }
    // 10. Why: the GPA overlap check precedes any guest_memfd validation, so it wins even with a
    // bad fd (research §2.6 step 10, B8/B9/B33/B35; set_memory_region_test's EEXIST cases).
    if (change !== 'flags') {
      const end = baseGfn + npagesBig;
      for (const s of this.state.slots.values()) {
        if (s.id !== id && s.baseGfn < end && baseGfn < s.endGfn) throw fail('EEXIST', `GPA range overlaps slot ${s.id}`);
      }
    }
    const slot = new SimMemslot(id, r.flags, baseGfn, npages, r.userspaceAddr);
    // 11. kvm_gmem_bind.
    if (gmem) this.bind(slot, r.guestMemfd, r.guestMemfdOffset, size, fail);
    // 12. kvm_set_memslot: install (MOVE drops the old slot's mappings; FLAGS_ONLY keeps the data).
    if (old) old.zapAll();
    this.state.slots.set(id, slot);
  }

  private bind(
    slot: SimMemslot,
    fd: number,
    offset: bigint,
    size: bigint,
    fail: (code: 'EINVAL' | 'EBADF', detail: string) => GuestMemError,
  ): void {
    const entry = this.kernel.fds.get(fd);
    if (!entry) throw fail('EBADF', `fd ${fd} is not open`);
    if (entry.kind !== 'gmem') throw fail('EINVAL', `fd ${fd} is not a guest_memfd (${entry.kind})`);
    const file = entry.file as SimGmemFile;
    if (file.vm !== this.state) throw fail('EINVAL', `fd ${fd} is a guest_memfd of another VM`);
    const fileSize = file.core.size;
    if (BigInt.asIntN(64, offset) < 0n) throw fail('EINVAL', 'guest_memfd_offset is negative as loff_t');
    if (this.kernel.profile === '6.18') {
      // Why: 6.18 computes offset + size in signed loff_t, so 0x7ffffffffffff000 + 16 KiB wraps
      // negative and passes the EOF check (research §2.6 E1); the slot is then bound past EOF.
      if (BigInt.asIntN(64, offset + size) > fileSize) throw fail('EINVAL', 'offset + size is past EOF');
    } else if (offset + size > fileSize) {
      throw fail('EINVAL', 'offset + size is past EOF');
    }
    const first = Number(offset >> 12n);
    const end = first + slot.npages;
    // Why: an overlap of guest_memfd *ranges* is EINVAL (the GPA overlap above is EEXIST) (B5/B6).
    const clash = file.findBinding(first, end);
    if (clash) throw fail('EINVAL', `guest_memfd pages [${first}, ${end}) are already bound to slot ${clash.id}`);
    file.bind(slot, first, end);
    slot.gmem = { file, pgoff: first };
    slot.gmemOnly = (file.core.flags & GUEST_MEMFD_FLAG_MMAP) !== 0n;
  }

  private deleteSlot(slot: SimMemslot): void {
    // kvm_invalidate_memslot zaps the slot's SPTEs; kvm_free_memslot unbinds. Data stays (B47/B48).
    slot.zapAll();
    slot.unbind();
    this.state.slots.delete(slot.id);
  }
}
