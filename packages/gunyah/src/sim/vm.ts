import { PAGE_SIZE, PAGE_SIZE_N, SMALL_COPY_MAX, bytesAt, copySmall, toBig, type FolioAllocator, type PageIndex } from '@guestmem/core';
import type { BindingInfo, GunyahVm, MapMemArgs } from '../api.js';
import {
  GUNYAH_FN,
  GUNYAH_FN_MAX_ARG_SIZE,
  GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT,
  GUNYAH_VM_MAX_EXIT_REASON_SIZE,
  REG_SET,
  SIZEOF_FN_VCPU_ARG,
  decodeMapFlags,
  encodeFnVcpuArg,
  encodeMapFlags,
  isLend,
} from '../uapi/index.js';
import { BACKEND, err } from './errors.js';
import { SimBinding, SimGuestMem } from './guest-mem.js';
import { rmErrno } from './memparcel.js';
import { SimVcpu, type PendingAccess, type StepResult } from './vcpu.js';
import type { SimDevice } from './device.js';
import { unguard } from './leak-guard.js';

const MAP_MEM = 'ioctl(GUNYAH_VM_MAP_MEM)';
const START = 'ioctl(GUNYAH_VM_START)';
const HUGE_BYTES = 2n << 20n;
const u64 = (v: bigint | number): bigint => BigInt.asUintN(64, toBig(v, 'ioctl argument', BACKEND));
const ENOENT = 2;
const EPERM = 1;

/** A page {@link SimVm.fastAccess} may serve, as resolved at `gen`. */
interface FastPage {
  readonly gfn: number;
  readonly gen: number;
  readonly writable: boolean;
  readonly pageIndex: PageIndex;
  readonly alloc: FolioAllocator;
  readonly index: number;
  readonly folio: number;
  readonly arena: Uint8Array;
  /** Offset of the page's first byte in `arena`. */
  readonly at: number;
}

/** What {@link SimVm.fastAccess} answers for a completed write. */
const NO_BYTES = new Uint8Array(0);

/** The RM's VMID of the host (owner of every parcel the host creates). */
export const HOST_VMID = 3;

/**
 * A Gunyah VM fd: bindings (the VM's maple tree, keyed by GFN), the DTB parcel and start, the
 * guest side (vCPUs) and teardown.
 */
export class SimVm implements GunyahVm {
  /** Bindings ordered by gfn. */
  private readonly tree: SimBinding[] = [];
  /** vCPU functions by id (`ghvm->functions`). */
  private readonly vcpuFns = new Map<number, SimVcpu>();
  /** Every vCPU fd this VM handed out, removed functions included (closed with the VM). */
  private readonly vcpuFds = new Set<SimVcpu>();
  /** vCPU resources the RM gave at start that no vCPU function holds (`ghvm->resources`). */
  private readonly vcpuResources = new Set<number>();
  private readonly bootContext = new Map<number, bigint>();
  /** GFN ranges the RM demand-pages (`VM_SET_DEMAND_PAGING` at start: the lend bindings then). */
  private demandPaged: { gfn: number; end: number }[] = [];
  private dtb: { gpa: bigint; size: bigint } | undefined;
  private dtbParcel: number | undefined;
  vmid = 0;
  /** The RM's view of the VM (`ghvm->vm_status`), plus 'closed' once the fd is gone. */
  status: GunyahVm['status'] = 'no-state';
  /** `ghvm->exit_info`, from the RM's VM_EXITED notification. */
  exitInfo: { type: number; reason: Uint8Array } = { type: 0, reason: new Uint8Array(0) };

  constructor(
    readonly device: SimDevice,
    readonly fd: number,
  ) {}

  // ------------------------------------------------------------------ MAP_MEM

  mapMem(args: MapMemArgs): void {
    this.assertOpen(MAP_MEM);
    const gpa = u64(args.guestAddr);
    const offset = u64(args.offset);
    const size = u64(args.size);
    const raw = args.flags >>> 0;
    // fget + "is this a gunyah gmem file": a bad fd is EINVAL here, not EBADF.
    const mem = this.device.guestMem(args.guestMemFd);
    if (!mem) throw err('EINVAL', 'mapMem', MAP_MEM, `fd ${args.guestMemFd} is not a Gunyah guest-memory file`);
    const d = decodeMapFlags(raw, this.device.layout);
    if (!d.ok) throw err('EINVAL', 'mapMem', MAP_MEM, `flags 0x${raw.toString(16)}: ${d.reason}`, { flags: raw });
    if (gpa % PAGE_SIZE_N || offset % PAGE_SIZE_N || size % PAGE_SIZE_N) {
      throw err(
        'EINVAL',
        'mapMem',
        MAP_MEM,
        `guest_addr 0x${gpa.toString(16)}, offset 0x${offset.toString(16)}, size 0x${size.toString(16)} must be page-aligned`,
      );
    }
    const flags = { ...d.flags, unmap: false };
    const rawNoUnmap = encodeMapFlags(flags, this.device.layout);
    const init = (): SimBinding => {
      // gunyah_gmem_init_binding: hugepage files need 2 MiB alignment (THP assumed configured).
      if (mem.huge && (gpa % HUGE_BYTES || offset % HUGE_BYTES || size % HUGE_BYTES)) {
        throw err('EINVAL', 'mapMem', MAP_MEM, 'a GHMF_ALLOW_HUGEPAGE file needs 2 MiB-aligned guest_addr, offset and size');
      }
      return new SimBinding(
        this,
        mem,
        Number(gpa / PAGE_SIZE_N),
        Number(offset / PAGE_SIZE_N),
        Number(size / PAGE_SIZE_N),
        rawNoUnmap,
        flags,
        isLend(flags.access),
      );
    };
    if (d.flags.unmap) return this.removeMapping(mem, init());
    // add_mapping allocates the binding before anything else.
    if (this.device.takeFault('binding-alloc')) throw err('ENOMEM', 'mapMem', MAP_MEM, 'binding allocation failed (injected)');
    this.addMapping(mem, init());
  }

  private addMapping(mem: SimGuestMem, b: SimBinding): void {
    if (b.lend && !this.device.rodataFull) throw err('EINVAL', 'mapMem', MAP_MEM, 'Cannot lend memory without rodata=full');
    // File offsets may not overlap any binding of this file, in any VM (a page goes to one VM).
    // Checked here rather than left to core's bind: the kernel does it before the size-0 and GPA
    // checks. A size-0 range overlaps a binding that strictly contains its offset.
    const o = mem.file.findOverlap(b.off, b.offEnd)?.owner;
    if (o)
      throw err('EEXIST', 'mapMem', MAP_MEM, `file pages [${b.off}, ${b.offEnd}) overlap a binding [${o.off}, ${o.offEnd})`, {
        vmFd: o.vm.fd,
      });
    // mtree_insert_range(gfn, gfn + nr - 1): an empty range is EINVAL, an occupied one EEXIST.
    if (b.nr === 0) throw err('EINVAL', 'mapMem', MAP_MEM, 'size 0');
    const at = this.lowerBound(b.gfn);
    const prev = this.tree[at - 1];
    const next = this.tree[at];
    if ((prev && prev.gfn + prev.nr > b.gfn) || (next && next.gfn < b.gfn + b.nr)) {
      throw err(
        'EEXIST',
        'mapMem',
        MAP_MEM,
        `guest range 0x${(BigInt(b.gfn) * PAGE_SIZE_N).toString(16)} +${b.nr} pages overlaps another binding of this VM`,
      );
    }
    mem.addBinding(b);
    this.device.guestMapGen++;
    this.tree.splice(at, 0, b);
  }

  /** UNMAP: whole binding, head or tail; the removed part is reclaimed first. */
  private removeMapping(mem: SimGuestMem, r: SimBinding): void {
    let found: SimBinding | undefined;
    // The kernel's list walk: the first (newest) binding of this VM with identical flags whose GPA
    // range contains the request decides, even when its offset relation differs (size 0 can match two).
    for (const b of mem.bindingsNewestFirst()) {
      if (b.vm !== this || b.rawFlags !== r.rawFlags) continue;
      if (b.gfn > r.gfn || b.gfn + b.nr < r.gfn + r.nr) continue;
      if (r.off - b.off === r.gfn - b.gfn) found = b; // else: same GPA, different file offset → ENOENT
      break;
    }
    if (!found) throw err('ENOENT', 'mapMem', MAP_MEM, 'no binding of this VM with identical flags contains that range');
    const b = found;
    const startDelta = r.gfn - b.gfn;
    const endDelta = b.gfn + b.nr - r.gfn - r.nr;
    if (startDelta && endDelta) throw err('EINVAL', 'mapMem', MAP_MEM, 'cannot unmap the middle of a binding (splitting is unsupported)');
    const e = mem.reclaim(r.off, r.off + r.nr, 'mapMem', MAP_MEM, { binding: b });
    if (e) throw e;
    if (!startDelta && !endDelta) {
      this.device.guestMapGen++;
      this.tree.splice(this.tree.indexOf(b), 1);
      mem.removeBinding(b);
    } else if (startDelta) {
      this.device.guestMapGen++;
      b.nr = startDelta; // keep the head
      mem.resizeBinding(b);
    } else {
      this.device.guestMapGen++;
      b.gfn += b.nr - endDelta; // keep the tail
      b.off += b.nr - endDelta;
      b.nr = endDelta;
      mem.resizeBinding(b);
    }
  }

  private lowerBound(gfn: number): number {
    let lo = 0;
    let hi = this.tree.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.tree[mid]!.gfn < gfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The binding containing `gfn` (mtree_load). */
  bindingAt(gfn: number): SimBinding | undefined {
    const at = this.lowerBound(gfn + 1) - 1;
    const b = this.tree[at];
    return b && gfn < b.gfn + b.nr ? b : undefined;
  }

  bindings(): readonly BindingInfo[] {
    return this.tree.map((b) => ({
      guestAddr: BigInt(b.gfn) * PAGE_SIZE_N,
      offset: BigInt(b.off) * PAGE_SIZE_N,
      size: BigInt(b.nr) * PAGE_SIZE_N,
      guestMemFd: b.mem.fd,
      flags: b.rawFlags,
      lend: b.lend,
      write: b.flags.write,
    }));
  }

  // ------------------------------------------------------------------ DTB + start

  /**
   * `GUNYAH_VM_SET_DTB_CONFIG`. v17 tests `overflows_type(guest_phys_addr + size, u64)`, a u64 sum
   * that can never overflow its own type, so the check never fires; the simulation keeps its intent
   * (EOVERFLOW when the end wraps). Any state is accepted: the config is read at start only.
   */
  setDtbConfig(args: { guestPhysAddr: bigint | number; size: bigint | number }): void {
    const syscall = 'ioctl(GUNYAH_VM_SET_DTB_CONFIG)';
    this.assertOpen(syscall);
    const gpa = u64(args.guestPhysAddr);
    const size = u64(args.size);
    if (gpa + size >= 1n << 64n) throw err('EOVERFLOW', 'setDtbConfig', syscall, 'guest_phys_addr + size wraps');
    this.dtb = { gpa, size };
  }

  /**
   * `GUNYAH_VM_SET_BOOT_CONTEXT` (v17 30/35): register set X (index ≤ 31), PC (index 0) or SP
   * (index ≤ 2), else EINVAL; only before the VM starts (EINVAL after). Bits 16..31 of `reg` and
   * `reserved` are not checked. The values reach the RM at start.
   */
  setBootContext(args: { reg: number; value: bigint | number }): void {
    const syscall = 'ioctl(GUNYAH_VM_SET_BOOT_CONTEXT)';
    this.assertOpen(syscall);
    const reg = args.reg >>> 0;
    const set = (reg >>> GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT) & 0xff;
    const idx = reg & 0xff;
    const ok = (set === REG_SET.X && idx <= 31) || (set === REG_SET.PC && idx === 0) || (set === REG_SET.SP && idx <= 2);
    if (!ok) throw err('EINVAL', 'setBootContext', syscall, `register set ${set} index ${idx}`);
    if (this.status !== 'no-state')
      throw err('EINVAL', 'setBootContext', syscall, `the VM is ${this.status}: boot context only before start`);
    this.bootContext.set(reg, u64(args.value));
  }

  /** Boot registers recorded by SET_BOOT_CONTEXT (reg id → value). */
  get bootRegisters(): ReadonlyMap<number, bigint> {
    return this.bootContext;
  }

  /**
   * `GUNYAH_VM_START` (`gunyah_vm_ensure_started`, v17 10/35): starts the VM from NO_STATE;
   * afterwards it answers 0 while running and ENODEV in any other state — a start that failed
   * leaves the VM in LOAD (or READY / INIT_FAILED) and every later start is ENODEV.
   */
  start(): void {
    this.assertOpen(START);
    if (this.status === 'no-state') this.doStart();
    if (this.status !== 'running') throw err('ENODEV', 'start', START, `the VM is ${this.status}, not running`);
  }

  /** `gunyah_vm_start`, in v17's order; a failure leaves the status where v17 leaves it. */
  private doStart(): void {
    const vmid = this.device.allocVmid();
    this.vmid = vmid;
    this.status = 'load';
    const parcel = this.shareDtbParcel();
    // VM_CONFIGURE with the parcel; the VM accepting it stands for VM_CONFIG_IMAGE + VM_INIT.
    const accepted = this.device.rm.accept(vmid, parcel.handle);
    if (!accepted.ok) throw err(rmErrno(accepted.error), 'start', START, `RM MEM_ACCEPT failed: ${accepted.error}`);
    // gunyah_gmem_setup_demand_paging: the RM learns the GPA ranges of the LEND bindings of now.
    this.demandPaged = this.tree.filter((b) => b.lend).map((b) => ({ gfn: b.gfn, end: b.gfn + b.nr }));
    if (this.device.takeFault('vm-init')) {
      this.status = 'init-failed';
      throw err('EINVAL', 'start', START, 'RM VM_INIT failed (injected)');
    }
    this.status = 'ready';
    // Boot context goes to the RM; then the hypervisor resources: one vCPU per vCPU of the DTB.
    for (const id of [0, ...this.vcpuFns.keys()]) this.vcpuResources.add(id);
    for (const v of this.vcpuFns.values()) this.claimResource(v);
    // parcel_to_paged: from now on the driver tracks the DTB folios like demand-paged ones.
    for (const f of parcel.folios) parcel.mem.provide(parcel.binding, f.head, false);
    if (this.device.takeFault('vm-start')) {
      for (const f of parcel.folios)
        parcel.mem.reclaim(f.head, f.head + f.nr, 'start', START, { binding: parcel.binding, mode: 'teardown' });
      throw err('EINVAL', 'start', START, 'RM VM_START failed (injected)');
    }
    this.status = 'running';
  }

  /**
   * `gunyah_gmem_share_parcel` for the DTB (v17 25/35, 26/35): `parcel_start = gpa >> PAGE_SHIFT`,
   * `parcel_pages = size >> PAGE_SHIFT` — a DTB smaller than one page is EINVAL; the range must lie
   * in one binding (ENOENT); each folio is created (ENOMEM) and, when lent, must have no host
   * mapping (EPERM). A **share** binding then fails with ENOMEM: v17 sets the ACL count only for a
   * lend and tests the count, not the allocation, so a DTB must be lent. Then RM MEM_LEND.
   */
  private shareDtbParcel(): { handle: number; mem: SimGuestMem; binding: SimBinding; folios: { head: number; nr: number }[] } {
    const dtb = this.dtb ?? { gpa: 0n, size: 0n };
    const gfn = Number(dtb.gpa / PAGE_SIZE_N);
    const nr = Number(dtb.size / PAGE_SIZE_N);
    if (nr === 0) throw err('EINVAL', 'start', START, `DTB size ${dtb.size} is less than one page (GUNYAH_VM_SET_DTB_CONFIG)`);
    const b = this.bindingAt(gfn);
    if (!b || gfn - b.gfn + nr > b.nr) throw err('ENOENT', 'start', START, 'the DTB range is not covered by one binding');
    const mem = b.mem;
    const folios: { head: number; nr: number }[] = [];
    for (let i = b.indexOf(gfn); i < b.indexOf(gfn) + nr; ) {
      if (i >= mem.file.pages) throw err('ENOMEM', 'start', START, 'DTB binding past the end of its file');
      mem.file.getFolio(i);
      const span = mem.folioSpan(i);
      if (b.lend && mem.hostMapped(span.head, span.head + span.nr)) {
        throw err('EPERM', 'start', START, `DTB folio at page ${span.head} is mapped by the host and cannot be lent`);
      }
      folios.push(span);
      i = span.head + span.nr;
    }
    if (!b.lend)
      throw err('ENOMEM', 'start', START, 'the DTB lies in a share binding: v17 builds no ACL for a shared parcel (it must be lent)');
    const rights = (b.flags.read ? 4 : 0) | (b.flags.write ? 2 : 0) | (b.flags.exec ? 1 : 0);
    const sgl = folios.map((f) => ({ ipa: BigInt(b.gfnOf(f.head)) * PAGE_SIZE_N, size: BigInt(f.nr * PAGE_SIZE) }));
    const created = this.device.rm.create({ owner: HOST_VMID, kind: 'lend', acl: [{ vmid: this.vmid, rights }], sgl });
    if (!created.ok) throw err(rmErrno(created.error), 'start', START, `RM MEM_LEND failed: ${created.error}`);
    this.dtbParcel = created.value;
    return { handle: created.value, mem, binding: b, folios };
  }

  /** The RM reports VM_EXITED (the guest called PSCI SYSTEM_OFF): status EXITED with its exit info. */
  guestExited(type: number, reason: Uint8Array): void {
    if (this.status !== 'running') return;
    this.status = 'exited';
    this.exitInfo = { type, reason: reason.slice(0, GUNYAH_VM_MAX_EXIT_REASON_SIZE) };
  }

  // ------------------------------------------------------------------ functions (vCPUs)

  /**
   * `GUNYAH_VM_ADD_FUNCTION` (v17 13/35, 15/35), for any VM state: arg_size > 256 → EINVAL; the
   * argument is copied (EFAULT); a type without a registered function → ENOENT (the simulation
   * registers only the vCPU function, so IRQFD and IOEVENTFD answer as if their modules were
   * absent); vCPU: arg_size ≠ 4 → EINVAL, an id already added → EEXIST. Returns the vCPU fd.
   */
  addFunction(desc: { type: number; argSize: number; arg: Uint8Array | undefined }): number {
    const syscall = 'ioctl(GUNYAH_VM_ADD_FUNCTION)';
    this.assertOpen(syscall);
    if (desc.argSize > GUNYAH_FN_MAX_ARG_SIZE)
      throw err('EINVAL', 'addFunction', syscall, `arg_size ${desc.argSize} > ${GUNYAH_FN_MAX_ARG_SIZE}`);
    if (desc.argSize && (!desc.arg || desc.arg.length < desc.argSize)) throw err('EFAULT', 'addFunction', syscall, 'argument copy failed');
    if (desc.type !== GUNYAH_FN.VCPU) throw err('ENOENT', 'addFunction', syscall, `no VM function of type ${desc.type}`);
    if (desc.argSize !== SIZEOF_FN_VCPU_ARG)
      throw err('EINVAL', 'addFunction', syscall, `vCPU arg_size ${desc.argSize} ≠ ${SIZEOF_FN_VCPU_ARG}`);
    const id = new DataView(desc.arg!.buffer, desc.arg!.byteOffset, 4).getUint32(0, true);
    if (this.vcpuFns.has(id)) throw err('EEXIST', 'addFunction', syscall, `vCPU ${id} already exists`);
    const fd = this.device.allocFd(syscall);
    const v = new SimVcpu(this, id, fd);
    this.vcpuFns.set(id, v);
    this.vcpuFds.add(v);
    this.device.registerVcpu(v);
    this.claimResource(v);
    return fd;
  }

  /**
   * `GUNYAH_VM_REMOVE_FUNCTION`: removes every function of that type whose argument compares
   * equal (vCPU: arg_size 4 and the same id), else ENOENT. A removed vCPU's fd stays open and
   * answers ENODEV to RUN; its hypervisor resource goes back to the VM.
   */
  removeFunction(desc: { type: number; argSize: number; arg: Uint8Array | undefined }): void {
    const syscall = 'ioctl(GUNYAH_VM_REMOVE_FUNCTION)';
    this.assertOpen(syscall);
    if (desc.argSize && (!desc.arg || desc.arg.length < desc.argSize))
      throw err('EFAULT', 'removeFunction', syscall, 'argument copy failed');
    const id =
      desc.type === GUNYAH_FN.VCPU && desc.argSize === SIZEOF_FN_VCPU_ARG
        ? new DataView(desc.arg!.buffer, desc.arg!.byteOffset, 4).getUint32(0, true)
        : undefined;
    const v = id === undefined ? undefined : this.vcpuFns.get(id);
    if (!v) throw err('ENOENT', 'removeFunction', syscall, 'no matching function');
    this.detach(v);
  }

  /**
   * A vCPU fd was closed. The function stays (v17 15/35: the function instance keeps its own
   * reference; only REMOVE_FUNCTION or VM teardown removes it, so re-adding the id is EEXIST).
   */
  vcpuClosed(v: SimVcpu): void {
    this.vcpuFds.delete(v);
  }

  private detach(v: SimVcpu): void {
    v.attached = false;
    if (v.hasResource) this.vcpuResources.add(v.id);
    v.hasResource = false;
    this.vcpuFns.delete(v.id);
  }

  /** A vCPU ticket takes the RM's vCPU resource with its label, if the VM has one free. */
  private claimResource(v: SimVcpu): void {
    if (!v.hasResource && this.vcpuResources.delete(v.id)) v.hasResource = true;
  }

  /**
   * The vCPU with `id` for the guest-side shortcuts; added through ADD_FUNCTION when absent (its fd
   * stays in the device's table until the VM is closed).
   */
  vcpu(id = 0): SimVcpu {
    const v = this.vcpuFns.get(id);
    if (v) return v;
    this.addFunction({ type: GUNYAH_FN.VCPU, argSize: SIZEOF_FN_VCPU_ARG, arg: encodeFnVcpuArg(id) });
    return this.vcpuFns.get(id)!;
  }

  // ------------------------------------------------------------------ guest side

  /** True when `gfn` lies in a range the RM was told to demand-page (the lend bindings at start). */
  private isDemandPaged(gfn: number): boolean {
    return this.demandPaged.some((r) => gfn >= r.gfn && gfn < r.end);
  }

  /**
   * `gunyah_gmem_demand_page`: provide the folio behind `gpa` to the guest. 0 (or -EAGAIN, already
   * provided) or a negative errno: -ENOENT no binding, -EPERM write to a binding without WRITE or a
   * lend over a host-mapped folio, -ENOMEM no folio.
   */
  demandPage(gpa: bigint, write: boolean): number {
    const gfn = Number(gpa / PAGE_SIZE_N);
    const b = this.bindingAt(gfn);
    if (!b) return -ENOENT;
    if (write && !b.flags.write) return -EPERM;
    const index = b.indexOf(gfn);
    return b.mem.providedAt(index) ? 0 : b.mem.provide(b, index);
  }

  /**
   * Runs an access page by page from byte `done` until it completes or the vCPU must exit. A page
   * the guest cannot reach is first demand-paged (as the kernel does on both exit kinds); if that
   * fails, the hypervisor's classification decides the exit (inference from v17 20/35 + 28/35):
   * - a range the RM demand-pages (lend bindings at start), and every instruction fetch, exit as
   *   PAGE_FAULT with `attempt` = the errno;
   * - anything else (unbound addresses, share bindings, bindings added after start) is a VMMIO
   *   access and exits as MMIO (≤ 8 bytes, within the page); the errno is not reported.
   * Exec on a share binding is -EPERM: shared memory is never mapped executable.
   */
  step(p: PendingAccess): StepResult {
    const len = p.buf.length;
    while (p.done < len) {
      const at = BigInt.asUintN(64, p.gpa + BigInt(p.done)); // an access wraps at the top of the 64-bit space
      const gfn = Number(at / PAGE_SIZE_N);
      const inPage = Number(at % PAGE_SIZE_N);
      const n = Math.min(len - p.done, PAGE_SIZE - inPage);
      const b = this.bindingAt(gfn);
      let attempt: number;
      if (p.kind === 'exec' && b && !b.lend) attempt = -EPERM;
      else attempt = this.demandPage(at, p.kind === 'write');
      if (attempt !== 0) {
        if (p.kind === 'exec' || this.isDemandPaged(gfn)) return { t: 'page-fault', gpa: at, attempt };
        return { t: 'mmio', gpa: at, len: Math.min(8, n), write: p.kind === 'write' };
      }
      const index = b!.indexOf(gfn);
      b!.mem.guestTouch(index);
      const fileOff = BigInt(index) * PAGE_SIZE_N + BigInt(inPage);
      if (p.kind === 'write') b!.mem.file.write(fileOff, p.buf, p.done, n);
      else if (p.kind === 'read') b!.mem.file.read(fileOff, n, p.buf, p.done);
      p.done += n;
    }
    return { t: 'done' };
  }

  /**
   * The full path ({@link step}) for the case a repeated access finds, without its BigInt
   * arithmetic: a read or write of a number address inside one page of a running VM, whose page is
   * already provided and touched (a state touching again leaves as it is). Returns the bytes read
   * (an empty array for a write); anything else returns undefined and the caller takes the full path.
   */
  fastAccess(kind: 'read' | 'write', gpa: bigint | number, data: Uint8Array | undefined, length: number): Uint8Array | undefined {
    if (typeof gpa !== 'number' || this.status !== 'running') return undefined;
    const inPage = gpa % PAGE_SIZE;
    if (!(Number.isSafeInteger(gpa) && gpa >= 0 && Number.isInteger(length) && length >= 0 && inPage + length <= PAGE_SIZE))
      return undefined;
    const gfn = (gpa - inPage) / PAGE_SIZE;
    let t = this.lastPage;
    // The last page served, while nothing a guest access finds has changed since (bindings, page
    // states: guestMapGen) and its folio is still there, healthy (punch, poison).
    if (
      t === undefined ||
      t.gfn !== gfn ||
      t.gen !== this.device.guestMapGen ||
      t.pageIndex.load(t.index) !== t.folio ||
      t.alloc.isPoisoned(t.folio) ||
      !t.alloc.isUptodate(t.folio)
    ) {
      t = this.resolveFast(gfn);
      if (t === undefined) return undefined;
    }
    if (kind === 'write' && !t.writable) return undefined;
    const at = t.at + inPage;
    const arena = t.arena;
    if (kind === 'write') {
      if (length <= SMALL_COPY_MAX) copySmall(arena, at, data!, 0, length);
      else arena.set(data!.subarray(0, length), at);
      return NO_BYTES;
    }
    return bytesAt(arena, at, length);
  }

  /** The last page {@link fastAccess} resolved. */
  private lastPage: FastPage | undefined;

  /**
   * The checks of {@link fastAccess} for a page it has not cached: a binding, a provided page the
   * guest holds (touching it again leaves its state as it is), a healthy prepared folio.
   */
  private resolveFast(gfn: number): FastPage | undefined {
    const b = this.bindingAt(gfn);
    if (!b) return undefined;
    const index = b.indexOf(gfn);
    const state = b.mem.providedState(index);
    if (state !== 'LENT_LOCKED' && state !== 'PROVIDED_SHARED') return undefined;
    const file = b.mem.file;
    const alloc = file.allocator;
    const pageIndex = file.pageIndex;
    const folio = pageIndex.load(index);
    // Poison and a folio that is not uptodate are the full path's to report.
    if (folio < 0 || alloc.isPoisoned(folio) || !alloc.isUptodate(folio)) return undefined;
    const t: FastPage = {
      gfn,
      gen: this.device.guestMapGen,
      writable: b.flags.write,
      pageIndex,
      alloc,
      index,
      folio,
      arena: alloc.arenaOf(folio),
      at: alloc.arenaOffset(folio) + (alloc.orderOf(folio) === 9 ? (index % 512) * PAGE_SIZE : 0),
    };
    this.lastPage = t;
    return t;
  }

  relinquish(gpa: bigint, pages: number, sanitize: boolean): void {
    // Only the pages provided to the guest can be relinquished: walk those, not every page of the
    // range (a range can span 2^52 pages).
    const first = Number(gpa / PAGE_SIZE_N);
    const end = first + pages;
    for (const b of [...this.tree]) {
      const lo = Math.max(first, b.gfn);
      const hi = Math.min(end, b.gfn + b.nr);
      if (!b.lend || lo >= hi) continue;
      const [from, to] = [b.indexOf(lo), b.indexOf(hi)];
      for (const pf of b.mem.providedIn(from, to, b)) {
        for (let i = Math.max(pf.head, from); i < Math.min(pf.head + pf.nr, to); i++) b.mem.relinquish(i, sanitize);
      }
    }
  }

  // ------------------------------------------------------------------ teardown

  /**
   * Last VM reference: stop; remove every binding (reclaim, drop the file reference); RM VM_RESET
   * (releases the DTB parcel the VM accepted) and reclaim the parcel; free the VMID.
   */
  close(): void {
    this.assertOpen('close');
    unguard(this);
    if (this.status === 'running') this.status = 'exited'; // VM_STOP
    // gunyah_vm_remove_functions: the vCPUs lose their function and resource; their fds are closed
    // too (v17 would keep the VM alive while a vCPU fd holds it: README #30).
    for (const v of [...this.vcpuFns.values()]) this.detach(v);
    for (const v of [...this.vcpuFds]) v.close();
    this.vcpuFds.clear();
    for (const b of [...this.tree]) {
      // The guest is stopped: what it locked comes back (see README, inference).
      b.mem.reclaim(b.off, b.offEnd, 'close', 'close', { binding: b, mode: 'teardown' });
      b.mem.removeBinding(b);
    }
    this.device.guestMapGen++;
    this.tree.length = 0;
    if (this.vmid) {
      this.device.rm.vmReset(this.vmid);
      if (this.dtbParcel !== undefined) this.device.rm.reclaim(HOST_VMID, this.dtbParcel);
      this.device.freeVmid(this.vmid);
    }
    this.dtbParcel = undefined;
    this.status = 'closed';
    this.device.closeFd(this.fd);
  }

  get bindingCount(): number {
    return this.tree.length;
  }

  assertOpen(syscall: string): void {
    if (this.status === 'closed') throw err('EBADF', syscall, syscall, `VM fd ${this.fd} is closed`);
  }
}
