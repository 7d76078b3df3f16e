/**
 * The simulated VM (`struct kvm`): its memslots and the REGION2 rules (research §2.6), its lifetime
 * (§2.12), guest_memfd creation (§2.2), and a sim-only guest access path that populates and
 * observes "SPTEs" so invalidation is testable.
 */
import { GuestMemError, HostAccessFault, PAGE_SIZE, RangeStateMap, type GuestMemErrorCode } from '@guestmem/core';
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
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_USER_MEM_SLOTS,
} from '../uapi/constants.js';
import {
  decodeKvmCreateGuestMemfd,
  decodeKvmMemoryAttributes,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
  encodeKvmCreateGuestMemfd,
  encodeKvmMemoryAttributes,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
  type KvmUserspaceMemoryRegion2Decoded,
} from '../uapi/structs.js';
import { TASK_SIZE } from './address-space.js';
import { SimAnonMapping } from './anon-memory.js';
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
const KVM_RUN = 'ioctl(KVM_RUN)';

/** Arguments of {@link SimKvmVm.guestAccess}. */
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

/** The `struct kvm_run` fields KVM_RUN fills with `KVM_EXIT_MEMORY_FAULT` (research §1.2, §1.4). */
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
  return info.exitReason === KVM_EXIT_MEMORY_FAULT && info.memoryFault ? { exitReason: info.exitReason, memoryFault: info.memoryFault } : undefined;
}

/** One page of a guest access, resolved to its backing. */
interface ResolvedPage {
  read(n: number, out: Uint8Array<ArrayBuffer>, done: number): void;
  write(data: Uint8Array): void;
}

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

  /** Zaps the SPTEs of guest frames `[first, end)` (`kvm_unmap_gfn_range`). */
  zapGfns(first: bigint, end: bigint): void {
    const lo = first > this.baseGfn ? Number(first - this.baseGfn) : 0;
    const hi = end < this.endGfn ? Number(end - this.baseGfn) : this.npages;
    if (lo >= hi) return;
    for (const p of this.sptes.keys()) if (p >= lo && p < hi) this.sptes.delete(p);
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
  /**
   * `kvm->mem_attr_array`: PRIVATE per gfn (true = private). All gfns start shared (api.rst 4.140);
   * run-length encoded, so a whole 2^52-frame range costs one run.
   */
  readonly attributes = new RangeStateMap<boolean>(false);

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
    return checkExtension(u64('cap', cap), this.kernel.config, this.state.vmType);
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): SimGuestMemfd {
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

  /**
   * `KVM_SET_MEMORY_ATTRIBUTES` (`kvm_vm_ioctl_set_mem_attributes`, research §1.4), checks in the
   * kernel's order; each EINVAL names the failed check in `info.check`
   * (`'flags' | 'attributes' | 'range' | 'alignment'`). ENOTTY when the kernel is built without
   * memory attributes (the probe machine; `SimKernelOptions.swProtectedVm: false`).
   * A range already holding the attributes returns 0 and changes nothing; a change zaps the
   * range's guest mappings first (`kvm_arch_pre_set_memory_attributes` → `kvm_unmap_gfn_range`).
   * Attributes belong to the VM, not to memslots: they survive slot deletion.
   */
  setMemoryAttributes(attrs: MemoryAttributesArgs): void {
    const syscall = 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)';
    this.live('setMemoryAttributes', syscall);
    const a = decodeKvmMemoryAttributes(encodeKvmMemoryAttributes(attrs));
    if (!this.kernel.config.swProtectedVm) {
      // Not compiled in: kvm_vm_ioctl falls through to the arch ioctl, which does not know it (S11/S11b).
      throw sysErr('ENOTTY', 'setMemoryAttributes', syscall, 'CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is off', { ...attrs });
    }
    const fail = (check: string, detail: string) => sysErr('EINVAL', 'setMemoryAttributes', syscall, detail, { ...attrs, check });
    // Why: the §1.4 order — flags, unsupported attributes, size 0 / wrap, then alignment. A default
    // VM supports no attribute, so PRIVATE is EINVAL there even with the config on.
    if (a.flags !== 0n) throw fail('flags', `flags 0x${a.flags.toString(16)} must be 0`);
    if (a.attributes & ~this.state.vmType.memoryAttributes) throw fail('attributes', `attributes 0x${a.attributes.toString(16)} are not supported by VM type ${this.type}`);
    if (a.size === 0n || a.address + a.size >= U64_LIMIT) throw fail('range', 'size is 0 or address + size wraps');
    if ((a.address | a.size) & PAGE_MASK) throw fail('alignment', 'address and size must be page-aligned');
    const first = Number(a.address >> 12n);
    const end = Number((a.address + a.size) >> 12n);
    const priv = (a.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n;
    // Why: kvm_vm_set_mem_attributes returns 0 early when the range already has these attributes.
    if (this.state.attributes.isUniform(first, end, priv)) return;
    for (const slot of this.state.slots.values()) slot.zapGfns(BigInt(first), BigInt(end));
    this.state.attributes.set(first, end, priv);
  }

  protected onClose(): void {
    this.state.put();
  }

  // ------------------------------------------------------------------ sim-only: the guest's view

  /**
   * Reads guest memory as a vCPU would (upstream VMX/SVM semantics, research §2.8). Shorthand for
   * `guestAccess({ gpa, len })`: the access is private exactly when the gfn's attribute is PRIVATE.
   */
  guestRead(gpa: IntArg, len: number): Uint8Array {
    return this.guestAccess({ gpa, len });
  }

  /** Writes guest memory as a vCPU would (see {@link guestRead}); READONLY slots give EFAULT (MMIO). */
  guestWrite(gpa: IntArg, data: Uint8Array): void {
    this.guestAccess({ gpa, len: data.length, write: true, data });
  }

  /**
   * One guest memory access, resolved page by page the way the x86 MMU resolves a guest fault
   * (research §2.8), so a VMM's exit handling can be tested without hardware.
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
  guestAccess(args: SimGuestAccess): Uint8Array {
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
    if (args.private === true && !this.state.vmType.hasPrivateMem) {
      throw sysErr('EINVAL', op, undefined, 'a private access on a VM type without private memory cannot happen', { gpa });
    }
    const out = new Uint8Array(write ? 0 : len);
    let done = 0;
    while (done < len) {
      const at = gpa + BigInt(done);
      const n = Math.min(len - done, PAGE_SIZE - Number(at & PAGE_MASK));
      const page = this.resolve(op, at, write, args.private);
      if (write) page.write(data!.subarray(done, done + n));
      else page.read(n, out, done);
      done += n;
    }
    return out;
  }

  /** The SPTEs installed for slot `id` (slot page → folio), for tests of invalidation. */
  sptesOf(id: number): ReadonlyMap<number, number> {
    return this.state.slots.get(id)?.sptes ?? new Map();
  }

  /** Sim-only: `kvm_mem_is_private(kvm, gfn)` for the page containing `gpa` (there is no "get" ioctl). */
  isPrivate(gpa: IntArg): boolean {
    return this.state.vmType.hasPrivateMem && this.state.attributes.get(Number(u64('gpa', gpa) >> 12n));
  }

  /** Resolves the page containing `at` for one access (steps 1–5 of {@link guestAccess}). */
  private resolve(op: string, at: bigint, write: boolean, wantPrivate: boolean | undefined): ResolvedPage {
    const gfn = at >> 12n;
    const inPage = Number(at & PAGE_MASK);
    const attrPrivate = this.state.vmType.hasPrivateMem && this.state.attributes.get(Number(gfn));
    // Why: SW_PROTECTED VMs take is_private from the attributes (kvm_mmu_page_fault); hardware
    // CoCo types report it, which `wantPrivate` stands for (research §2.8).
    const isPrivate = wantPrivate ?? attrPrivate;
    const exit = (code: GuestMemErrorCode, detail: string): GuestMemError =>
      sysErr(code, op, KVM_RUN, detail, {
        exitReason: KVM_EXIT_MEMORY_FAULT,
        // kvm_mmu_prepare_memory_fault_exit: the faulting page, PRIVATE iff fault->is_private (§1.4).
        memoryFault: { flags: isPrivate ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0n, gpa: gfn << 12n, size: PAGE },
      });
    // Why: a private/shared mismatch exits to userspace before anything else (kvm_mmu_faultin_pfn).
    if (isPrivate !== attrPrivate) {
      throw exit('EFAULT', `${isPrivate ? 'private' : 'shared'} access to a ${attrPrivate ? 'private' : 'shared'} gfn 0x${gfn.toString(16)}`);
    }
    const slot = this.state.slotAt(gfn);
    if (!slot) {
      // Why: kvm_handle_noslot_fault refuses to emulate MMIO for a private fault (kvm_exits §3.4).
      if (isPrivate) throw exit('EFAULT', `private access to gpa 0x${at.toString(16)} with no memslot`);
      throw sysErr('EFAULT', op, undefined, `no memslot at gpa 0x${at.toString(16)} (MMIO exit)`, { gpa: at });
    }
    if (write && slot.flags & KVM_MEM_READONLY) {
      throw sysErr('EFAULT', op, undefined, `write to a READONLY slot at 0x${at.toString(16)} (MMIO exit)`, { gpa: at });
    }
    const slotPage = Number(gfn - slot.baseGfn);
    // fault_from_gmem(): private faults and every fault on a gmem-only slot use guest_memfd (§2.8).
    if (isPrivate || slot.gmemOnly) {
      // Why: kvm_mmu_faultin_pfn_gmem exits when the slot has no guest_memfd at all (kvm_exits §3.4).
      if (!slot.gmem) throw exit('EFAULT', `private access to gfn 0x${gfn.toString(16)} in slot ${slot.id}, which has no guest_memfd`);
      const file = slot.gmem.file;
      // kvm_gmem_get_pfn: a released file gives -EFAULT with a memory-fault exit (§2.8 step 1).
      if (!file) throw exit('EFAULT', `slot ${slot.id}'s guest_memfd was released`);
      const index = slot.gmem.pgoff + slotPage;
      try {
        slot.sptes.set(slotPage, file.core.getFolio(index));
      } catch (e) {
        // §2.8 steps 4–5: EHWPOISON for a poisoned folio, allocation errors passed through.
        if (GuestMemError.is(e)) throw exit(e.code, e.message);
        throw e;
      }
      // A bigint past 2^53 bytes (a number would round, and the file would refuse the access).
      const fileOff = index < 2 ** 41 ? index * PAGE_SIZE + inPage : BigInt(index) * BigInt(PAGE_SIZE) + BigInt(inPage);
      return {
        read: (n, out, d) => void file.core.read(fileOff, n, out, d),
        write: (data) => file.core.write(fileOff, data),
      };
    }
    const hva = slot.userspaceAddr + (at - (slot.baseGfn << 12n));
    const vma = hva < TASK_SIZE ? this.kernel.addressSpace.find(hva) : undefined;
    if (!vma) throw sysErr('EFAULT', op, KVM_RUN, `nothing mapped at hva 0x${hva.toString(16)}`, { gpa: at });
    const m = vma.owner;
    const mOff = Number(hva - vma.start);
    if (m instanceof SimAnonMapping && m.isPoisoned(mOff)) {
      // Why: hva_to_pfn finds a hwpoisoned page and KVM signals the vCPU thread (kvm_send_hwpoison_signal).
      throw new HostAccessFault({ op, backend: SIM_BACKEND, offset: BigInt(mOff), detail: `hva 0x${hva.toString(16)} is hwpoisoned`, syscall: KVM_RUN });
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
      write: (data) => viaHva(() => m.write(mOff, data)),
    };
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
