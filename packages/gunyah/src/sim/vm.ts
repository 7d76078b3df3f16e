import { PAGE_SIZE, PAGE_SIZE_N, toBig } from '@guestmem/core';
import type { BindingInfo, GuestAccess, GunyahVcpu, GunyahVm, MapMemArgs } from '../api.js';
import {
  GUNYAH_VCPU_RESUME,
  decodeMapFlags,
  decodeVcpuRunPageFault,
  encodeMapFlags,
  encodeVcpuRunPageFault,
  isLend,
  type ResumeAction,
} from '../uapi/index.js';
import { err } from './errors.js';
import { SimBinding, SimGuestMem } from './guest-mem.js';
import { rmErrno } from './memparcel.js';
import type { SimDevice } from './device.js';

const MAP_MEM = 'ioctl(GUNYAH_VM_MAP_MEM)';
const START = 'ioctl(GUNYAH_VM_START)';
const HUGE_BYTES = 2n << 20n;
const u64 = (v: bigint | number): bigint => BigInt.asUintN(64, toBig(v));
const ENOENT = 2;
const EPERM = 1;

/** The RM's VMID of the host (owner of every parcel the host creates). */
export const HOST_VMID = 3;

/**
 * A Gunyah VM fd: bindings (the VM's maple tree, keyed by GFN), the DTB parcel and start, the
 * guest side (vCPUs) and teardown.
 */
export class SimVm implements GunyahVm {
  /** Bindings ordered by gfn. */
  private readonly tree: SimBinding[] = [];
  private readonly vcpus = new Map<number, SimVcpu>();
  private dtb: { gpa: bigint; size: bigint } | undefined;
  private dtbParcel: number | undefined;
  vmid = 0;
  status: GunyahVm['status'] = 'no-state';

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
      throw err('EINVAL', 'mapMem', MAP_MEM, `guest_addr 0x${gpa.toString(16)}, offset 0x${offset.toString(16)}, size 0x${size.toString(16)} must be page-aligned`);
    }
    const flags = { ...d.flags, unmap: false };
    const rawNoUnmap = encodeMapFlags(flags, this.device.layout);
    const init = (): SimBinding => {
      // gunyah_gmem_init_binding: hugepage files need 2 MiB alignment (THP assumed configured).
      if (mem.huge && (gpa % HUGE_BYTES || offset % HUGE_BYTES || size % HUGE_BYTES)) {
        throw err('EINVAL', 'mapMem', MAP_MEM, 'a GHMF_ALLOW_HUGEPAGE file needs 2 MiB-aligned guest_addr, offset and size');
      }
      return new SimBinding(this, mem, Number(gpa / PAGE_SIZE_N), Number(offset / PAGE_SIZE_N), Number(size / PAGE_SIZE_N), rawNoUnmap, flags, isLend(flags.access));
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
    if (o) throw err('EEXIST', 'mapMem', MAP_MEM, `file pages [${b.off}, ${b.offEnd}) overlap a binding [${o.off}, ${o.offEnd})`, { vmFd: o.vm.fd });
    // mtree_insert_range(gfn, gfn + nr - 1): an empty range is EINVAL, an occupied one EEXIST.
    if (b.nr === 0) throw err('EINVAL', 'mapMem', MAP_MEM, 'size 0');
    const at = this.lowerBound(b.gfn);
    const prev = this.tree[at - 1];
    const next = this.tree[at];
    if ((prev && prev.gfn + prev.nr > b.gfn) || (next && next.gfn < b.gfn + b.nr)) {
      throw err('EEXIST', 'mapMem', MAP_MEM, `guest range 0x${(BigInt(b.gfn) * PAGE_SIZE_N).toString(16)} +${b.nr} pages overlaps another binding of this VM`);
    }
    mem.addBinding(b);
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
      this.tree.splice(this.tree.indexOf(b), 1);
      mem.removeBinding(b);
    } else if (startDelta) {
      b.nr = startDelta; // keep the head
      mem.resizeBinding(b);
    } else {
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

  setDtbConfig(args: { guestPhysAddr: bigint | number; size: bigint | number }): void {
    const syscall = 'ioctl(GUNYAH_VM_SET_DTB_CONFIG)';
    this.assertOpen(syscall);
    const gpa = u64(args.guestPhysAddr);
    const size = u64(args.size);
    if (gpa + size >= 1n << 64n) throw err('EOVERFLOW', 'setDtbConfig', syscall, 'guest_phys_addr + size wraps');
    this.dtb = { gpa, size };
  }

  /**
   * VM_START: DTB parcel (lend or share per its binding) → RM accepts it for the VM → the parcel's
   * folios move to demand-paged tracking → running. Idempotent once running.
   */
  start(): void {
    this.assertOpen(START);
    if (this.status === 'running') return;
    if (this.status !== 'no-state') throw err('EINVAL', 'start', START, `VM is ${this.status}`);
    const dtb = this.dtb;
    const gfn = dtb ? Number(dtb.gpa / PAGE_SIZE_N) : 0;
    const nr = dtb ? Number((dtb.gpa + dtb.size + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) - gfn : 0;
    if (nr === 0) throw err('EINVAL', 'start', START, 'no DTB configured (GUNYAH_VM_SET_DTB_CONFIG)');
    const b = this.bindingAt(gfn);
    if (!b || gfn - b.gfn + nr > b.nr) throw err('ENOENT', 'start', START, 'the DTB range is not covered by one binding');
    const mem = b.mem;
    // Round out to whole folios and make sure they exist (zeroed on creation).
    const folios: { head: number; nr: number }[] = [];
    for (let i = b.indexOf(gfn); i < b.indexOf(gfn) + nr; ) {
      if (i >= mem.file.pages) throw err('ENOMEM', 'start', START, 'DTB binding past the end of its file');
      mem.file.getFolio(i);
      const span = mem.folioSpan(i);
      folios.push(span);
      i = span.head + span.nr;
    }
    if (b.lend) {
      for (const f of folios) {
        if (mem.hostMapped(f.head, f.head + f.nr)) throw err('EPERM', 'start', START, `DTB folio at page ${f.head} is mapped by the host and cannot be lent`);
      }
    }
    // RM: VM id, then MEM_LEND (ACL = guest) or MEM_SHARE (ACL = guest + host RWX).
    const vmid = this.device.allocVmid();
    const rights = (b.flags.read ? 4 : 0) | (b.flags.write ? 2 : 0) | (b.flags.exec ? 1 : 0);
    const acl = b.lend ? [{ vmid, rights }] : [{ vmid, rights }, { vmid: HOST_VMID, rights: 7 }];
    const sgl = folios.map((f) => ({ ipa: BigInt(b.gfnOf(f.head)) * PAGE_SIZE_N, size: BigInt(f.nr * PAGE_SIZE) }));
    const created = this.device.rm.create({ owner: HOST_VMID, kind: b.lend ? 'lend' : 'share', acl, sgl });
    if (!created.ok) {
      this.device.freeVmid(vmid);
      throw err(rmErrno(created.error), 'start', START, `RM ${b.lend ? 'MEM_LEND' : 'MEM_SHARE'} failed: ${created.error}`);
    }
    // VM_CONFIG_IMAGE + SET_DEMAND_PAGING + SET_ADDRESS_LAYOUT + VM_INIT: the VM accepts the image.
    const accepted = this.device.rm.accept(vmid, created.value);
    if (!accepted.ok) throw err(rmErrno(accepted.error), 'start', START, `RM MEM_ACCEPT failed: ${accepted.error}`);
    this.vmid = vmid;
    this.dtbParcel = created.value;
    // parcel_to_paged: from now on the driver tracks the DTB folios like demand-paged ones.
    for (const f of folios) mem.provide(b, f.head, false);
    this.status = 'running';
  }

  // ------------------------------------------------------------------ guest side

  vcpu(id = 0): GunyahVcpu {
    let v = this.vcpus.get(id);
    if (!v) this.vcpus.set(id, (v = new SimVcpu(this, id)));
    return v;
  }

  /**
   * One guest access of `[gpa, gpa+len)`, page by page, from byte `done` on. Pages before a fault
   * stay accessed (like a partly executed instruction stream).
   */
  guestAccess(kind: 'read' | 'write' | 'exec', gpa: bigint, buf: Uint8Array<ArrayBuffer>, done: number): GuestAccess {
    this.assertOpen('ioctl(GUNYAH_VCPU_RUN)');
    this.start(); // gunyah_vm_ensure_started: the first vCPU run starts the VM
    const len = kind === 'exec' ? 1 : buf.length;
    while (done < len) {
      const at = gpa + BigInt(done);
      const gfn = Number(at / PAGE_SIZE_N);
      const inPage = Number(at % PAGE_SIZE_N);
      const n = Math.min(len - done, PAGE_SIZE - inPage);
      const b = this.bindingAt(gfn);
      let attempt = 0;
      if (!b) attempt = -ENOENT;
      else if (kind === 'write' && !b.flags.write) attempt = -EPERM;
      else if (kind === 'exec' && !b.lend) attempt = -EPERM; // shared memory is never mapped executable
      else {
        const index = b.indexOf(gfn);
        if (!b.mem.providedAt(index)) attempt = b.mem.provide(b, index);
        if (attempt === 0) {
          b.mem.guestTouch(index);
          // A bigint past 2^53 bytes (a number would round: the file would refuse the access).
          const fileOff = index < 2 ** 41 ? index * PAGE_SIZE + inPage : BigInt(index) * PAGE_SIZE_N + BigInt(inPage);
          if (kind === 'write') b.mem.file.write(fileOff, buf.subarray(done, done + n));
          else if (kind === 'read') b.mem.file.read(fileOff, n, buf, done);
        }
      }
      if (attempt !== 0) return this.pageFault(kind, gpa, buf, done, at, attempt);
      done += n;
    }
    return kind === 'read' ? { status: 'done', data: buf } : { status: 'done' };
  }

  private pageFault(kind: 'read' | 'write' | 'exec', gpa: bigint, buf: Uint8Array<ArrayBuffer>, done: number, at: bigint, attempt: number): GuestAccess {
    const run = encodeVcpuRunPageFault({ immediateExit: 0, physAddr: at, attempt, resumeAction: GUNYAH_VCPU_RESUME.FAULT });
    const exit = decodeVcpuRunPageFault(run);
    return {
      status: 'page-fault',
      exit,
      run,
      resume: (action?: ResumeAction): GuestAccess => {
        const a = action ?? (['handled', 'fault', 'retry'] as const)[decodeVcpuRunPageFault(run).resumeAction] ?? 'fault';
        if (a === 'retry') return this.guestAccess(kind, gpa, buf, done);
        if (a === 'handled') return { status: 'handled' };
        return { status: 'guest-abort', gpa: at, attempt };
      },
    };
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
    if (this.status === 'running') this.status = 'exited'; // VM_STOP
    for (const b of [...this.tree]) {
      // The guest is stopped: what it locked comes back (see README, inference).
      b.mem.reclaim(b.off, b.offEnd, 'close', 'close', { binding: b, mode: 'teardown' });
      b.mem.removeBinding(b);
    }
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

  private assertOpen(syscall: string): void {
    if (this.status === 'closed') throw err('EBADF', syscall, syscall, `VM fd ${this.fd} is closed`);
  }
}

export class SimVcpu implements GunyahVcpu {
  constructor(
    private readonly vm: SimVm,
    readonly id: number,
  ) {}
  read(gpa: bigint | number, length: number): GuestAccess {
    return this.vm.guestAccess('read', u64(gpa), new Uint8Array(length), 0);
  }
  write(gpa: bigint | number, data: Uint8Array): GuestAccess {
    return this.vm.guestAccess('write', u64(gpa), Uint8Array.from(data), 0);
  }
  exec(gpa: bigint | number): GuestAccess {
    return this.vm.guestAccess('exec', u64(gpa), new Uint8Array(1), 0);
  }
  relinquish(gpa: bigint | number, pages: number, opts: { sanitize?: boolean } = {}): void {
    this.vm.relinquish(u64(gpa), pages, opts.sanitize ?? false);
  }
}
