/**
 * A VM of the ACK driver (docs/gunyah-ack.md §4 for generation A, §5 for B/C): user-memory
 * regions (share by `GH_VM_SET_USER_MEM_REGION`, lend by `GH_VM_ANDROID_LEND_USER_MEM`), CMA
 * bindings, VM start, the guest side (demand paging in B/C: one page pinned per fault, the whole
 * folio provided), `GH_VM_RECLAIM_REGION` and teardown.
 *
 * The hypervisor's per-page rules are the shared page-state model of the v17 simulation
 * (`../../sim/page-state.ts`): a lent page the guest touched refuses reclaim until the guest
 * relinquishes it. The Resource Manager is the shared parcel table (`../../sim/memparcel.ts`).
 */
import { PAGE_SIZE, PAGE_SIZE_N, type GuestMemError, type UserMemory, type UserPagePin } from '@guestmem/core';
import { pageTransition, type PageState } from '../../sim/page-state.js';
import { rmErrno, type AclEntry } from '../../sim/memparcel.js';
import { GUNYAH_VCPU_RESUME, decodeVcpuRunPageFault, encodeVcpuRunPageFault, type GunyahPageFaultExit } from '../../uapi/index.js';
import {
  ACK_REGION_FLAGS_ALLOWED,
  GH_CAP_VCPU_TIMER_WAKEUP,
  ackIoctlSyscall,
  cmaShareType,
  decodeAckRights,
  rmRights,
  type AckIoctlName,
  type AckMapCmaMemArgs,
  type AckRights,
  type AckUserMemoryRegion,
} from '../uapi/index.js';
import { ACK_RECLAIM_REFUSED, ackErr } from './errors.js';
import type { AckHost, AckProcess } from './host.js';
import type { CmaFd } from './cma.js';
import { unguard } from '../../sim/leak-guard.js';

const HOST_VMID = 3;

/**
 * `overflows_type(gpa + size, u64)` — the wrap check of every ACK memory ioctl (K4, K7) — can never
 * fire: both operands are u64, so the sum is already a wrapped u64 and always fits the type (the
 * non-constant form is `check_add_overflow(sum, 0, &u64)`). Reading of the C code (docs/gunyah-ack.md §4/§5
 * list EOVERFLOW, which older revisions' explicit `gpa + size < gpa` check gave). A wrapping range
 * goes on: B/C's `mtree_insert_range(gfn(gpa), gfn(gpa + size − 1))` gets first > last → EINVAL;
 * a range ending exactly at 2^64 is valid.
 */
const wrapsU64 = (gpa: bigint, size: bigint): boolean => gpa + size > U64;
const U64 = 1n << 64n;
const E = { EPERM: 1, ENOENT: 2, EIO: 5, ENOMEM: 12, EFAULT: 14, EINVAL: 22, EOPNOTSUPP: 95 } as const;

/**
 * Errno when the hypervisor is asked to take a folio it already holds for some VM — through a second
 * binding of the same host pages in this VM or in another one. The hypervisor's memory database
 * records one owner per physical page: after the first `memextent_donate` the page belongs to a
 * guest extent, so a second donate (or an RM MEM_LEND/MEM_SHARE) from the host's extent fails.
 * Inference: the exact hypervisor error is not in the kernel sources; quic/gunyah-hypervisor's
 * `error_t` has ERROR_MEMDB_NOT_OWNER (111), which `gunyah_error_remap` (K7 include/linux/gunyah.h)
 * maps through its `default:` to -EINVAL. Without this rule a host page lent to one guest reached
 * the host again (and another guest) through a second binding.
 */
export const ACK_FOLIO_HELD_ERRNO = E.EINVAL;
const sys = (n: AckIoctlName): string => ackIoctlSyscall(n);

/** One binding of the VM (`struct gunyah_vm_binding`). */
export interface AckBinding {
  readonly kind: 'user' | 'cma';
  readonly label: number;
  readonly flags: number;
  readonly rights: AckRights;
  readonly share: 'lend' | 'share';
  readonly gfn: number;
  readonly nr: number;
  /** user: host virtual address of the first page */
  readonly uaddr: bigint;
  /** cma: the fd number (resolved again at start) and the byte offset */
  readonly cmaFd?: number;
  readonly cmaOffset?: bigint;
  /** cma: the file reference the binding holds from start on */
  cmaFile?: CmaFd;
  /** generation A: the pins taken at ioctl time (one per page) and the region's RM parcel */
  pins?: UserPagePin[];
  parcel?: number;
}

/** A folio in the guest's stage 2 through demand paging (or the DTB parcel turned paged). */
interface ProvidedFolio {
  readonly headGfn: number;
  readonly nr: number;
  readonly binding: AckBinding;
  readonly pins: UserPagePin[];
  /** pages charged to RLIMIT_MEMLOCK for it */
  readonly charged: number;
}

/** What a guest access produced. */
export type AckGuestAccess =
  | { status: 'done'; data?: Uint8Array }
  /**
   * B/C: `GUNYAH_VCPU_EXIT_PAGE_FAULT` with the kernel's `attempt` (-errno) and resume_action FAULT.
   * K7's next RUN never reads resume_action back: {@link resume} re-runs the vCPU, and the access
   * is re-executed.
   */
  | { status: 'page-fault'; exit: GunyahPageFaultExit; run: Uint8Array; resume(): AckGuestAccess }
  /** An access no binding resolves: an MMIO exit for the VMM to emulate ({@link resume} = handled). */
  | { status: 'mmio'; gpa: bigint; isWrite: boolean; len: number; resume(): AckGuestAccess }
  | { status: 'handled' };

type VmStatus = 'no-state' | 'running' | 'start-failed' | 'exited' | 'closed';

export class AckVm {
  private readonly tree: AckBinding[] = [];
  /** Provided folios, in the order they were provided (two may cover the same gfns: see {@link providedOverlap}). */
  private readonly provided = new Set<ProvidedFolio>();
  /** {@link provided} by every gfn each folio covers (a guest access finds its folio in one lookup). */
  private readonly providedByGfn = new Map<number, ProvidedFolio>();
  /**
   * Set once two provided folios covered the same gfn (possible at the uAPI level: a huge folio
   * provided over 4 KiB ones of another binding). From then on a gfn's folio is the first provided
   * one covering it, found by a walk as the driver's own lookup order gives it.
   */
  private providedOverlap = false;
  private readonly states = new Map<number, PageState>();
  private dtb: { gpa: bigint; size: bigint } | undefined;
  private fw: { gpa: bigint; size: bigint } | undefined;
  private dtbParcel: number | undefined;
  /** The bindings VM_START gave the RM for demand paging (profile `demandPagingSet`); later bindings are not among them. */
  private readonly demandPaged = new Set<AckBinding>();
  vmid = 0;
  status: VmStatus = 'no-state';
  /** "Protected" = the binding holding the DTB lends (`gunyah_vm_set_protected`, K7). */
  isProtected = false;

  constructor(
    readonly host: AckHost,
    readonly fd: number,
    /** The process whose mm created the VM (`ghvm->mm_s`). */
    readonly creator: AckProcess,
  ) {}

  get profile() {
    return this.host.profile;
  }

  /** EPERM unless the caller's mm created the VM ("only allow owner task to add memory", K7). */
  assertCreator(syscall: string): void {
    if (this.host.current !== this.creator)
      throw ackErr('EPERM', 'ioctl', syscall, "only the VM creator's process may do this (current->mm != ghvm->mm_s)");
  }

  // ------------------------------------------------------------------ regions

  /** `GH_VM_SET_USER_MEM_REGION`: share `[uaddr, +size)` at `gpa`. */
  setUserMemRegion(r: AckUserMemoryRegion): void {
    this.addRegion(r, 'share', sys('GH_VM_SET_USER_MEM_REGION'));
  }

  /** `GH_VM_ANDROID_LEND_USER_MEM`: lend `[uaddr, +size)` at `gpa`. */
  lendUserMem(r: AckUserMemoryRegion): void {
    this.addRegion(r, 'lend', sys('GH_VM_ANDROID_LEND_USER_MEM'));
  }

  private addRegion(r: AckUserMemoryRegion, share: 'lend' | 'share', syscall: string): void {
    const op = share === 'lend' ? 'lendUserMem' : 'setUserMemRegion';
    this.assertOpen(syscall);
    this.assertCreator(syscall);
    const gpa = BigInt.asUintN(64, BigInt(r.guestPhysAddr));
    const size = BigInt.asUintN(64, BigInt(r.memorySize));
    const uaddr = BigInt.asUintN(64, BigInt(r.userspaceAddr));
    const flags = r.flags >>> 0;
    if (flags & ~ACK_REGION_FLAGS_ALLOWED)
      throw ackErr('EINVAL', op, syscall, `flags 0x${flags.toString(16)}: only R/W/X (0x7) are allowed`);
    if (size === 0n || size % PAGE_SIZE_N || uaddr % PAGE_SIZE_N || gpa % PAGE_SIZE_N) {
      throw ackErr(
        'EINVAL',
        op,
        syscall,
        `size 0x${size.toString(16)}, userspace_addr 0x${uaddr.toString(16)}, guest_phys_addr 0x${gpa.toString(16)}: need non-zero and page-aligned`,
      );
    }
    const wraps = wrapsU64(gpa, size); // the EOVERFLOW check is dead (see wrapsU64)
    const b: AckBinding = {
      kind: 'user',
      label: r.label >>> 0,
      flags,
      rights: decodeAckRights(flags),
      share,
      gfn: Number(gpa / PAGE_SIZE_N),
      nr: Number(size / PAGE_SIZE_N),
      uaddr,
    };
    if (this.profile.uniqueLabels && this.tree.some((x) => x.label === b.label))
      throw ackErr('EEXIST', op, syscall, `label ${b.label} is already used in this VM`);
    // B/C: mtree_insert_range with first > last. A: the pin of the wrapped range runs out of mapped pages (EFAULT, below; inference).
    if (wraps && !this.profile.pinAtIoctl)
      throw ackErr('EINVAL', op, syscall, 'guest_phys_addr + memory_size wraps: mtree_insert_range(first > last)');
    this.checkOverlap(b, op, syscall);
    if (this.profile.pinAtIoctl) this.pinRegion(b, op, syscall);
    this.insert(b);
  }

  /** Generation A: `account_locked_vm(npages)` then `pin_user_pages_fast` of the whole region (K4). */
  private pinRegion(b: AckBinding, op: string, syscall: string): void {
    const mm = this.host.current.mm;
    mm.memlock.charge(b.nr, op, this.hostBackend, syscall);
    const pins = mm.pinUserPages(b.uaddr, b.nr);
    if (pins.length < b.nr) {
      for (const p of pins) p.unpin();
      // K4 unaccounts only the pages it pinned (docs/gunyah-ack.md §10: a version bug); we unaccount the charge.
      mm.memlock.uncharge(b.nr);
      throw ackErr('EFAULT', op, syscall, `only ${pins.length} of ${b.nr} pages are mapped at 0x${b.uaddr.toString(16)}`);
    }
    b.pins = pins;
  }

  private get hostBackend(): string {
    return 'gunyah-ack-sim';
  }

  /** GPA overlap only (maple-tree insert): EEXIST. Labels and host addresses may repeat. */
  private checkOverlap(b: { gfn: number; nr: number }, op: string, syscall: string): void {
    const hit = this.tree.find((x) => x.gfn < b.gfn + b.nr && b.gfn < x.gfn + x.nr);
    if (hit)
      throw ackErr(
        'EEXIST',
        op,
        syscall,
        `guest range at gfn 0x${b.gfn.toString(16)} (+${b.nr}) overlaps the binding at gfn 0x${hit.gfn.toString(16)}`,
      );
  }

  private insert(b: AckBinding): void {
    const at = this.tree.findIndex((x) => x.gfn > b.gfn);
    this.tree.splice(at < 0 ? this.tree.length : at, 0, b);
  }

  /** The binding containing `gfn`. */
  bindingAt(gfn: number): AckBinding | undefined {
    return this.tree.find((b) => b.gfn <= gfn && gfn < b.gfn + b.nr);
  }

  bindings(): readonly AckBinding[] {
    return this.tree;
  }

  get bindingCount(): number {
    return this.tree.length;
  }

  get providedFolios(): number {
    return this.provided.size;
  }

  /** Page state of the guest frame `gfn` (ABSENT when not in the guest's stage 2 through demand paging). */
  pageState(gfn: number): PageState {
    return this.states.get(gfn) ?? 'ABSENT';
  }

  // ------------------------------------------------------------------ CMA

  /**
   * `GH_VM_ANDROID_MAP_CMA_MEM` (C), checks in K7's order: size 0 or size/guest_addr unaligned →
   * EINVAL (the offset is not checked); the EOVERFLOW wrap check is dead (see wrapsU64); fd not
   * open → EBADF; offset + size (a u64 sum, so a wrapping one passes) past the fd's size →
   * EOVERFLOW; a wrapping GPA range → EINVAL and GPA overlap → EEXIST (maple tree). `flags` is not validated; FORCE_LEND (0x10)
   * lends, anything else shares. The fd's *type* is checked only at start.
   */
  mapCmaMem(a: AckMapCmaMemArgs): void {
    const syscall = sys('GH_VM_ANDROID_MAP_CMA_MEM');
    const op = 'mapCmaMem';
    this.assertOpen(syscall);
    if (!this.profile.handles.has('GH_VM_ANDROID_MAP_CMA_MEM'))
      throw ackErr('ENOTTY', op, syscall, `generation ${this.profile.generation}`);
    this.assertCreator(syscall);
    const gpa = BigInt.asUintN(64, BigInt(a.guestAddr));
    const size = BigInt.asUintN(64, BigInt(a.size));
    const offset = BigInt.asUintN(64, BigInt(a.offset));
    if (size === 0n || size % PAGE_SIZE_N || gpa % PAGE_SIZE_N)
      throw ackErr('EINVAL', op, syscall, 'size 0, or size / guest_addr not page-aligned');
    if (!this.host.isOpen(a.guestMemFd)) throw ackErr('EBADF', op, syscall, `fd ${a.guestMemFd} is not open`);
    const iSize = this.host.cmaFd(a.guestMemFd)?.size ?? 0n; // other files: their i_size (0 for the anon inodes modelled)
    // `cma_map->offset + cma_map->size > max_size` is computed in u64 (K7): a sum that wraps passes.
    const end = BigInt.asUintN(64, offset + size);
    if (end > iSize) throw ackErr('EOVERFLOW', op, syscall, `offset + size = ${end} is past the file size ${iSize}`);
    // The EOVERFLOW check of guest_addr + size is dead (see wrapsU64): a wrap is mtree_insert_range's EINVAL.
    if (wrapsU64(gpa, size)) throw ackErr('EINVAL', op, syscall, 'guest_addr + size wraps: mtree_insert_range(first > last)');
    const flags = a.flags >>> 0;
    const b: AckBinding = {
      kind: 'cma',
      label: a.label >>> 0,
      flags,
      rights: decodeAckRights(flags),
      share: cmaShareType(flags),
      gfn: Number(gpa / PAGE_SIZE_N),
      nr: Number(size / PAGE_SIZE_N),
      uaddr: 0n,
      cmaFd: a.guestMemFd,
      cmaOffset: offset,
    };
    this.checkOverlap(b, op, syscall);
    this.insert(b);
  }

  // ------------------------------------------------------------------ configuration

  /**
   * `GH_VM_SET_DTB_CONFIG`: its EOVERFLOW check is dead (see wrapsU64), so any range is recorded;
   * A (K4) wants both page-aligned (EINVAL).
   */
  setDtbConfig(r: { guestPhysAddr: bigint | number; size: bigint | number }): void {
    const syscall = sys('GH_VM_SET_DTB_CONFIG');
    this.assertOpen(syscall);
    const gpa = BigInt.asUintN(64, BigInt(r.guestPhysAddr));
    const size = BigInt.asUintN(64, BigInt(r.size));
    if (this.profile.generation === 'A' && (gpa % PAGE_SIZE_N || size % PAGE_SIZE_N))
      throw ackErr('EINVAL', 'setDtbConfig', syscall, 'K4 wants a page-aligned DTB address and size');
    this.dtb = { gpa, size };
  }

  /** `GH_VM_ANDROID_SET_FW_CONFIG`: recorded (its EOVERFLOW check is dead too); the firmware parcel is not modelled. */
  setFwConfig(r: { guestPhysAddr: bigint | number; size: bigint | number }): void {
    const syscall = sys('GH_VM_ANDROID_SET_FW_CONFIG');
    this.assertOpen(syscall);
    const gpa = BigInt.asUintN(64, BigInt(r.guestPhysAddr));
    const size = BigInt.asUintN(64, BigInt(r.size));
    this.fw = { gpa, size };
  }

  /** `GH_VM_CHECK_EXTENSION` (newest C): `GH_CAP_VCPU_TIMER_WAKEUP` (0) → 1, anything else → 0 (K7 2f10437). */
  checkExtension(cap: bigint | number): number {
    const syscall = sys('GH_VM_CHECK_EXTENSION');
    this.assertOpen(syscall);
    if (!this.profile.handles.has('GH_VM_CHECK_EXTENSION'))
      throw ackErr('ENOTTY', 'checkExtension', syscall, `generation ${this.profile.generation}`);
    return BigInt(cap) === BigInt(GH_CAP_VCPU_TIMER_WAKEUP) ? 1 : 0;
  }

  // ------------------------------------------------------------------ start

  /**
   * `GH_VM_START` (`gunyah_vm_ensure_started`): a running VM answers 0; a VM whose start failed
   * after the status became LOAD answers ENODEV (docs/gunyah-ack.md, K7: `gunyah_vm_start` runs only from NO_STATE and
   * `ensure_started` answers -ENODEV for any status but RUNNING); C's ENOENT for a DTB outside
   * every binding comes before LOAD and leaves the VM startable (B's comes after LOAD, K5).
   */
  start(): void {
    const syscall = sys('GH_VM_START');
    this.assertOpen(syscall);
    if (this.status === 'running') return;
    if (this.status !== 'no-state') throw ackErr('ENODEV', 'start', syscall, `VM is ${this.status}`);
    this.vmid = this.host.allocVmid();
    if (this.profile.dtbBindingCheckedBeforeLoad && !this.bindingAt(this.dtb ? Number(this.dtb.gpa / PAGE_SIZE_N) : 0)) {
      // K7 gunyah_vm_start: gunyah_vm_set_protected (-ENOENT: no binding at the config-image start)
      // fails before the status becomes LOAD → err_dealloc_vmid: the VMID is freed and the status
      // stays NO_STATE, so a later VM_START tries again (unlike the failures after LOAD).
      this.host.freeVmid(this.vmid);
      this.vmid = 0;
      throw ackErr('ENOENT', 'start', syscall, 'no binding holds the DTB start (the VM stays startable)');
    }
    try {
      if (this.profile.parcelPerRegion) this.startA(syscall);
      else this.startBC(syscall);
    } catch (e) {
      this.status = 'start-failed';
      throw e;
    }
    this.status = 'running';
    for (const b of this.tree) {
      const set = this.profile.demandPagingSet;
      const isFw = this.fw !== undefined && BigInt(b.gfn) * PAGE_SIZE_N === this.fw.gpa;
      if (!isFw && (set === 'lend' ? b.share === 'lend' : set === 'lend-if-protected' ? !this.isProtected || b.share === 'lend' : false))
        this.demandPaged.add(b);
    }
  }

  /** Generation A (K4 `gh_vm_start`): every region becomes one parcel; the DTB must overlap a region. */
  private startA(syscall: string): void {
    const claimed = new Set<number>();
    for (const b of this.tree) {
      const pins = b.pins ?? [];
      // One owner per physical page: a region over pages another region or VM already holds is refused (see ACK_FOLIO_HELD_ERRNO).
      if (pins.some((p) => this.host.stage2.has(p.folio.folio) || claimed.has(p.folio.folio))) {
        throw ackErr(
          'EINVAL',
          'start',
          syscall,
          `region ${b.label}: its host pages are already lent or shared to a guest through another region`,
        );
      }
      for (const p of pins) claimed.add(p.folio.folio);
      const acl: AclEntry[] = [{ vmid: this.vmid, rights: rmRights(b.rights) }];
      if (b.share === 'share') acl.push({ vmid: HOST_VMID, rights: 7 });
      const sgl = this.mergeSgl(b, pins);
      const r = this.host.rm.create({ owner: HOST_VMID, kind: b.share, acl, sgl });
      if (!r.ok)
        throw ackErr(
          rmErrno(r.error),
          'start',
          syscall,
          `RM ${b.share === 'lend' ? 'MEM_LEND' : 'MEM_SHARE'} of region ${b.label} failed: ${r.error}`,
        );
      b.parcel = r.value;
    }
    const d = this.dtb;
    const holder = d && this.tree.find((b) => BigInt(b.gfn) * PAGE_SIZE_N < d.gpa + d.size && d.gpa < BigInt(b.gfn + b.nr) * PAGE_SIZE_N);
    if (!holder) throw ackErr(this.profile.dtbMissing, 'start', syscall, 'no region overlaps the DTB');
    // VM_CONFIG_IMAGE + VM_INIT + VM_START: the guest accepts every region parcel (inference: the
    // RM maps the parcels the DTB describes; no kernel code shows the accept).
    for (const b of this.tree) {
      const a = this.host.rm.accept(this.vmid, b.parcel!);
      if (!a.ok) throw ackErr(rmErrno(a.error), 'start', syscall, `RM MEM_ACCEPT failed: ${a.error}`);
      for (const p of b.pins ?? []) this.host.stage2.set(p.folio.folio, { vm: this, lent: b.share === 'lend' });
    }
  }

  /** Physically contiguous pinned pages merge into one memory entry (K4); here: one entry per folio run. */
  private mergeSgl(b: AckBinding, pins: UserPagePin[]): Array<{ ipa: bigint; size: bigint }> {
    const out: Array<{ ipa: bigint; size: bigint }> = [];
    let last = -1;
    pins.forEach((p, i) => {
      const phys = p.folio.folio + (p.page - p.folio.head);
      const ipa = BigInt(b.gfn + i) * PAGE_SIZE_N;
      if (phys === last + 1 && out.length)
        out[out.length - 1] = { ipa: out[out.length - 1]!.ipa, size: out[out.length - 1]!.size + PAGE_SIZE_N };
      else out.push({ ipa, size: PAGE_SIZE_N });
      last = phys;
    });
    return out;
  }

  /**
   * B/C (K7 `gunyah_vm_start`): the config-image parcel is the DTB range (`pages = gfn(size)`, so a
   * DTB under 4096 bytes is EINVAL); no binding at its start → ENOENT; protected iff that binding
   * lends; pin + account the pages, RM MEM_LEND (ACL = guest) or MEM_SHARE (+ host RWX), the VM
   * accepts it, and `parcel_to_paged` enters its folios into demand-paged tracking.
   */
  private startBC(syscall: string): void {
    const d = this.dtb;
    const gfn = d ? Number(d.gpa / PAGE_SIZE_N) : 0;
    const nr = d ? Number(d.size / PAGE_SIZE_N) : 0;
    const b = this.bindingAt(gfn);
    if (!b) throw ackErr('ENOENT', 'start', syscall, 'no binding holds the DTB start');
    this.isProtected = b.share === 'lend';
    if (nr === 0) throw ackErr('EINVAL', 'start', syscall, 'DTB parcel of 0 pages (size below one page or not configured)');
    // A GUP binding has no bounds check: the pin runs on past the binding's host range (EFAULT only
    // where nothing is mapped there; K7 gunyah_gup_share_parcel). A CMA binding checks only the
    // parcel's size against the binding's (K7 gunyah_cma_share_parcel: `nr << PAGE_SHIFT > b->size`).
    if (b.kind === 'cma' && nr > b.nr) throw ackErr('EINVAL', 'start', syscall, 'the DTB parcel is larger than its CMA binding');
    const pins: UserPagePin[] = [];
    let memory: UserMemory | undefined;
    if (b.kind === 'user') {
      const mm = this.creator.mm;
      mm.memlock.charge(nr, 'start', this.hostBackend, syscall);
      pins.push(...mm.pinUserPages(b.uaddr + BigInt(gfn - b.gfn) * PAGE_SIZE_N, nr));
      if (pins.length < nr) {
        for (const p of pins) p.unpin();
        mm.memlock.uncharge(nr);
        throw ackErr('EFAULT', 'start', syscall, 'the DTB pages are not all mapped');
      }
    } else {
      const f = this.host.cmaFd(b.cmaFd!);
      if (!f) throw ackErr('EINVAL', 'start', syscall, `fd ${b.cmaFd} is not a CMA fd`);
      if (!f.block) throw ackErr('EINVAL', 'start', syscall, 'the CMA fd has no block (never mmapped)');
      memory = f.block;
      const first = Number(b.cmaOffset! / PAGE_SIZE_N) + (gfn - b.gfn);
      // K7 adds the byte offsets to a `struct page *` (`cma->page + b->cma.offset + offset`), 4096× too
      // far: a bug, intent kept — the model uses the pages the offsets name. Past the block: inference (EINVAL).
      if (first + nr > memory.pages) throw ackErr('EINVAL', 'start', syscall, 'the parcel is larger than the CMA block');
      for (let i = 0; i < nr; i++) pins.push(memory.pin(first + i, 'start'));
      f.acquire();
      f.shared = true;
      b.cmaFile = f;
    }
    const acl: AclEntry[] = [{ vmid: this.vmid, rights: rmRights(b.rights) }];
    if (b.share === 'share') acl.push({ vmid: HOST_VMID, rights: 7 });
    const undo = (e: GuestMemError): never => {
      for (const p of pins) p.unpin();
      if (b.kind === 'user') this.creator.mm.memlock.uncharge(nr);
      throw e;
    };
    // The RM cannot lend or share pages the host no longer owns (see ACK_FOLIO_HELD_ERRNO).
    if (pins.some((p) => this.host.stage2.has(p.folio.folio)))
      undo(
        ackErr(
          'EINVAL',
          'start',
          syscall,
          'a DTB page is already held by the hypervisor for a guest (another binding of the same host pages)',
        ),
      );
    const r = this.host.rm.create({
      owner: HOST_VMID,
      kind: b.share,
      acl,
      sgl: [{ ipa: BigInt(gfn) * PAGE_SIZE_N, size: BigInt(nr) * PAGE_SIZE_N }],
    });
    if (!r.ok) undo(ackErr(rmErrno(r.error), 'start', syscall, `RM MEM_${b.share === 'lend' ? 'LEND' : 'SHARE'} failed: ${r.error}`));
    const a = this.host.rm.accept(this.vmid, r.ok ? r.value : 0);
    if (!a.ok) undo(ackErr(rmErrno(a.error), 'start', syscall, `RM MEM_ACCEPT failed: ${a.error}`));
    this.dtbParcel = r.ok ? r.value : undefined;
    // parcel_to_paged: one tracked entry per folio. A GUP binding keeps one pin and one charged
    // page per folio: K7 gunyah_gup_share_parcel unpins and unaccounts every other page it pinned
    // (the non-head pages), and reclaim later unpins and uncharges one page per folio.
    const byFolio = new Map<number, UserPagePin[]>();
    for (const p of pins) byFolio.set(p.folio.folio, [...(byFolio.get(p.folio.folio) ?? []), p]);
    let i = 0;
    for (const [, ps] of byFolio) {
      const p0 = ps[0]!;
      const headGfn = gfn + i - (p0.page - p0.folio.head);
      i += ps.length;
      if (b.kind === 'user') {
        for (const p of ps.slice(1)) p.unpin();
        this.creator.mm.memlock.uncharge(ps.length - 1);
        this.track({ headGfn, nr: p0.nrPages, binding: b, pins: [p0], charged: 1 }, false);
      } else {
        this.track({ headGfn, nr: p0.nrPages, binding: b, pins: ps, charged: 0 }, false);
      }
    }
  }

  private track(pf: ProvidedFolio, access: boolean): void {
    this.provided.add(pf);
    for (let g = pf.headGfn; g < pf.headGfn + pf.nr; g++) {
      if (this.providedByGfn.has(g)) this.providedOverlap = true;
      else this.providedByGfn.set(g, pf);
    }
    for (const p of pf.pins) this.host.stage2.set(p.folio.folio, { vm: this, lent: pf.binding.share === 'lend' });
    for (let g = pf.headGfn; g < pf.headGfn + pf.nr; g++) {
      const t = pageTransition(this.pageState(g) === 'ABSENT' ? 'HOST' : this.pageState(g), {
        type: 'provide',
        lend: pf.binding.share === 'lend',
        access,
      });
      if (t.ok) this.states.set(g, t.state);
    }
  }

  private providedAt(gfn: number): ProvidedFolio | undefined {
    if (!this.states.has(gfn)) return undefined;
    if (!this.providedOverlap) return this.providedByGfn.get(gfn);
    for (const pf of this.provided.values()) if (pf.headGfn <= gfn && gfn < pf.headGfn + pf.nr) return pf;
    return undefined;
  }

  // ------------------------------------------------------------------ guest side

  /**
   * One guest access, page by page (`GH_VCPU_RUN` until it completes or exits). Every generation:
   * a VM not running is ENODEV (the vCPU has no hypervisor resource before VM_START: K7
   * gunyah_vcpu.c, and the gh_-era gh_vcpu_run that matches generation A's uAPI); then, in B/C, a
   * caller that is not the creator is EPERM.
   */
  guestAccess(kind: 'read' | 'write' | 'exec', gpa: bigint, buf: Uint8Array, done = 0): AckGuestAccess {
    const syscall = sys('GH_VCPU_RUN');
    this.assertOpen(syscall);
    if (this.status !== 'running')
      throw ackErr('ENODEV', 'vcpuRun', syscall, `the VM is ${this.status}: a vCPU has no hypervisor resource before VM_START`);
    if (this.profile.creatorCheckOnRun) this.assertCreator(syscall);
    const len = kind === 'exec' ? 1 : buf.length;
    while (done < len) {
      const at = gpa + BigInt(done);
      const gfn = Number(at / PAGE_SIZE_N);
      const inPage = Number(at % PAGE_SIZE_N);
      const n = Math.min(len - done, PAGE_SIZE - inPage);
      // B/C: a DTB parcel that ran past its binding is mapped there too (parcel_to_paged enters its folios by gfn).
      const b = this.bindingAt(gfn) ?? (this.profile.parcelPerRegion ? undefined : this.providedAt(gfn)?.binding);
      if (!b) return this.mmioExit(kind, gpa, buf, done, at, n);
      let pin: UserPagePin | undefined;
      let inFolio = 0;
      if (this.profile.parcelPerRegion) {
        // A: no demand paging. A region whose parcel the VM accepted is mapped; anything else is MMIO.
        if (b.parcel === undefined || !b.pins) return this.mmioExit(kind, gpa, buf, done, at, n);
        pin = b.pins[gfn - b.gfn]!;
        inFolio = (pin.page - pin.folio.head) * PAGE_SIZE;
        if (kind === 'write' && !b.rights.write) return this.mmioExit(kind, gpa, buf, done, at, n);
      } else {
        let attempt = 0;
        let pf = this.providedAt(gfn);
        if (kind === 'write' && !b.rights.write) attempt = -E.EPERM;
        else if (kind === 'exec' && b.share === 'share' && this.isProtected)
          attempt = -E.EPERM; // shared memory of a protected VM maps RW/R only
        else if (!pf) {
          attempt = this.demandPage(b, gfn);
          pf = this.providedAt(gfn);
        }
        if (attempt !== 0 || !pf) {
          // The hypervisor reports a data access outside the RM's demand-paging ranges as VMMIO;
          // the kernel tries gunyah_demand_page first and, when that fails, exits MMIO (K7
          // gunyah_handle_mmio). Instruction fetches always exit PAGE_FAULT (inference, as in the
          // v17 model; the classification itself is the hypervisor's and not public).
          if (kind !== 'exec' && !this.demandPaged.has(b)) return this.mmioExit(kind, gpa, buf, done, at, n);
          return this.pageFaultExit(kind, gpa, buf, done, at, attempt || -E.EFAULT);
        }
        const t = pageTransition(this.pageState(gfn), { type: 'guestAccess' });
        if (t.ok) this.states.set(gfn, t.state);
        pin = pf.pins[0]!;
        inFolio = (gfn - pf.headGfn) * PAGE_SIZE;
      }
      // (A whole small buffer goes as it is: a view of an on-heap typed array costs V8 a copy.)
      if (kind === 'write') pin.write(inFolio + inPage, done === 0 && n === buf.length ? buf : buf.subarray(done, done + n));
      else if (kind === 'read') pin.read(inFolio + inPage, n, buf, done);
      done += n;
    }
    return kind === 'read' ? { status: 'done', data: buf } : { status: 'done' };
  }

  /**
   * `gunyah_demand_page` (K7 vm_mgr_mem.c, GUP variant): CMA → -EOPNOTSUPP; account 1 page
   * (RLIMIT_MEMLOCK) → its error; pin the one page at `uaddr + offset` (not mapped → -EFAULT);
   * not swap-backed → -EIO; then provide the *whole* folio at `gfn − folio_page_idx`. Returns 0 or
   * a negative errno (the exit's `attempt`). The write-permission check is the caller's.
   */
  private demandPage(b: AckBinding, gfn: number): number {
    if (b.kind === 'cma') return -E.EOPNOTSUPP;
    const mm = this.creator.mm;
    try {
      mm.memlock.charge(1, 'demand page', this.hostBackend);
    } catch (e) {
      return -((e as GuestMemError).errno || E.ENOMEM);
    }
    let pins: UserPagePin[];
    try {
      pins = mm.pinUserPages(b.uaddr + BigInt(gfn - b.gfn) * PAGE_SIZE_N, 1);
    } catch (e) {
      mm.memlock.uncharge(1);
      return -((e as GuestMemError).errno || E.ENOMEM);
    }
    const pin = pins[0];
    if (!pin) {
      mm.memlock.uncharge(1);
      return -E.EFAULT;
    }
    if (!pin.memory.swapBacked) {
      pin.unpin();
      mm.memlock.uncharge(1);
      return -E.EIO;
    }
    if (this.host.stage2.has(pin.folio.folio)) {
      // provide_folio's donate of a page the host extent no longer owns (see ACK_FOLIO_HELD_ERRNO).
      pin.unpin();
      mm.memlock.uncharge(1);
      return -ACK_FOLIO_HELD_ERRNO;
    }
    const headGfn = gfn - (pin.page - pin.folio.head);
    this.track({ headGfn, nr: pin.nrPages, binding: b, pins: [pin], charged: 1 }, true);
    return 0;
  }

  private pageFaultExit(
    kind: 'read' | 'write' | 'exec',
    gpa: bigint,
    buf: Uint8Array,
    done: number,
    at: bigint,
    attempt: number,
  ): AckGuestAccess {
    const run = encodeVcpuRunPageFault({ immediateExit: 0, physAddr: at, attempt, resumeAction: GUNYAH_VCPU_RESUME.FAULT });
    return { status: 'page-fault', exit: decodeVcpuRunPageFault(run), run, resume: () => this.guestAccess(kind, gpa, buf, done) };
  }

  private mmioExit(kind: 'read' | 'write' | 'exec', _gpa: bigint, _buf: Uint8Array, _done: number, at: bigint, n: number): AckGuestAccess {
    return { status: 'mmio', gpa: at, isWrite: kind === 'write', len: Math.min(n, 8), resume: () => ({ status: 'handled' }) };
  }

  /**
   * The test guest's relinquish hypercall (0x8069, Qualcomm's test VMM): the guest gives lent pages
   * back so the host can reclaim them; `sanitize` zeroes them. Pages not lent to this VM are skipped.
   */
  relinquish(gpa: bigint, pages: number, sanitize: boolean): void {
    const first = Number(gpa / PAGE_SIZE_N);
    for (let g = first; g < first + pages; g++) {
      const t = pageTransition(this.pageState(g), { type: 'relinquish' });
      if (!t.ok) continue;
      this.states.set(g, t.state);
      if (sanitize) {
        const pf = this.providedAt(g)!;
        pf.pins[0]!.fill((g - pf.headGfn) * PAGE_SIZE, PAGE_SIZE, 0);
      }
    }
  }

  // ------------------------------------------------------------------ reclaim

  /**
   * `GH_VM_RECLAIM_REGION` (C): checks (owner → EPERM, alignment → EINVAL; size 0 is not
   * rejected), then `gunyah_vm_reclaim_range(gfn, gfn(size) − 1)`: every demand-paged folio tracked
   * in `[gfn, gfn + gfn(size) − 1]` is unmapped, donated back, unpinned and unaccounted. It keeps
   * going past a folio the hypervisor refuses and then fails with that error (EBUSY): **not**
   * all-or-nothing. The bindings stay: a later guest access faults the page back in.
   */
  reclaimRegion(r: { guestPhysAddr: bigint | number; size: bigint | number }): void {
    const syscall = sys('GH_VM_RECLAIM_REGION');
    this.assertOpen(syscall);
    if (!this.profile.handles.has('GH_VM_RECLAIM_REGION'))
      throw ackErr('ENOTTY', 'reclaimRegion', syscall, `generation ${this.profile.generation}`);
    this.assertCreator(syscall);
    const gpa = BigInt.asUintN(64, BigInt(r.guestPhysAddr));
    const size = BigInt.asUintN(64, BigInt(r.size));
    if (size % PAGE_SIZE_N || gpa % PAGE_SIZE_N)
      throw ackErr('EINVAL', 'reclaimRegion', syscall, 'size and guest_phys_addr must be page-aligned');
    const gfn = gpa / PAGE_SIZE_N;
    // nr = gfn(size) - 1 in u64: size 0 wraps, so the walk's end gfn + nr lands at gfn - 1 (nothing)
    // unless gfn is 0, where it is U64_MAX (everything). Inference from the code: unguarded.
    const last = (gfn + BigInt.asUintN(64, size / PAGE_SIZE_N - 1n)) % U64;
    if (last < gfn) return;
    const refused = this.reclaimRange(
      Number(gfn),
      last >= BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(last),
      'normal',
    );
    if (refused) {
      throw ackErr(
        ACK_RECLAIM_REFUSED,
        'reclaimRegion',
        syscall,
        `${refused.count} folio(s) stayed with the guest (first at gfn 0x${refused.first.toString(16)}): lent pages the guest accepted and has not relinquished`,
        {
          firstGfn: refused.first,
          folios: refused.count,
        },
      );
    }
  }

  /** What {@link reclaimRegion} of `[first, last]` would refuse, changing nothing (for all-or-nothing callers). */
  checkReclaim(first: number, last: number): { first: number; count: number } | null {
    let count = 0;
    let at = -1;
    for (const pf of this.provided.values()) {
      if (pf.headGfn + pf.nr - 1 < first || pf.headGfn > last) continue;
      if (!this.folioReclaimable(pf)) {
        count++;
        if (at < 0) at = pf.headGfn;
      }
    }
    return count ? { first: at, count } : null;
  }

  private folioReclaimable(pf: ProvidedFolio): boolean {
    for (let g = pf.headGfn; g < pf.headGfn + pf.nr; g++) if (!pageTransition(this.pageState(g), { type: 'reclaim' }).ok) return false;
    return true;
  }

  private reclaimRange(first: number, last: number, mode: 'normal' | 'teardown'): { first: number; count: number } | null {
    let count = 0;
    let at = -1;
    for (const pf of [...this.provided.values()].sort((x, y) => x.headGfn - y.headGfn)) {
      if (pf.headGfn + pf.nr - 1 < first || pf.headGfn > last) continue;
      if (mode === 'normal' && !this.folioReclaimable(pf)) {
        count++;
        if (at < 0) at = pf.headGfn;
        continue;
      }
      this.dropProvided(pf);
    }
    return count ? { first: at, count } : null;
  }

  private dropProvided(pf: ProvidedFolio): void {
    this.provided.delete(pf);
    for (let g = pf.headGfn; g < pf.headGfn + pf.nr; g++) {
      this.states.delete(g);
      if (this.providedByGfn.get(g) === pf) this.providedByGfn.delete(g);
    }
    for (const p of pf.pins) {
      this.host.stage2.delete(p.folio.folio);
      p.unpin();
    }
    this.creator.mm.memlock.uncharge(pf.charged);
  }

  // ------------------------------------------------------------------ teardown

  /**
   * Last reference (`_gunyah_vm_put`, K7; `gh_vm_free`, K4): stop; reclaim every demand-paged folio
   * (the guest is stopped, so nothing refuses: inference, as in the v17 model); RM VM_RESET, which
   * releases the parcels the VM accepted; MEM_RECLAIM them (A: and unpin + unaccount each region);
   * free the bindings (CMA file references dropped) and the VMID.
   */
  close(): void {
    this.assertOpen('close');
    unguard(this);
    if (this.status === 'running') this.status = 'exited';
    this.reclaimRange(0, Number.MAX_SAFE_INTEGER, 'teardown');
    if (this.vmid) this.host.rm.vmReset(this.vmid);
    if (this.dtbParcel !== undefined) this.host.rm.reclaim(HOST_VMID, this.dtbParcel);
    for (const b of this.tree) {
      if (b.parcel !== undefined) this.host.rm.reclaim(HOST_VMID, b.parcel);
      for (const p of b.pins ?? []) {
        this.host.stage2.delete(p.folio.folio);
        p.unpin();
      }
      if (b.pins) this.creator.mm.memlock.uncharge(b.pins.length);
      if (b.cmaFile) {
        b.cmaFile.shared = false;
        b.cmaFile.release();
      }
    }
    this.tree.length = 0;
    if (this.vmid) this.host.freeVmid(this.vmid);
    this.status = 'closed';
    this.host.closeFd(this.fd);
  }

  get closed(): boolean {
    return this.status === 'closed';
  }

  private assertOpen(syscall: string): void {
    if (this.status === 'closed') throw ackErr('EBADF', syscall, syscall, `VM fd ${this.fd} is closed`);
  }

  /** Convenience: a vCPU-shaped accessor. */
  vcpu(): AckVcpu {
    return new AckVcpu(this);
  }

  /** The firmware range set by SET_FW_CONFIG (not used by this model's start). */
  get fwConfig(): { gpa: bigint; size: bigint } | undefined {
    return this.fw;
  }
}

/** The guest side of a VM: reads, writes, instruction fetches and the relinquish hypercall. */
export class AckVcpu {
  constructor(private readonly vm: AckVm) {}
  read(gpa: bigint | number, len: number): AckGuestAccess {
    return this.vm.guestAccess('read', BigInt(gpa), new Uint8Array(len));
  }
  write(gpa: bigint | number, data: Uint8Array): AckGuestAccess {
    return this.vm.guestAccess('write', BigInt(gpa), new Uint8Array(data));
  }
  exec(gpa: bigint | number): AckGuestAccess {
    return this.vm.guestAccess('exec', BigInt(gpa), new Uint8Array(1));
  }
  relinquish(gpa: bigint | number, pages: number, opts: { sanitize?: boolean } = {}): void {
    this.vm.relinquish(BigInt(gpa), pages, opts.sanitize ?? false);
  }
}
