import { PAGE_SIZE_N } from '@guestmem/core';
import type { Gunyah, GunyahGuestMem, GunyahStats, GunyahVm, OpenGunyahOptions } from '../api.js';
import {
  GHMF_KNOWN,
  GUNYAH_IOCTL,
  MAP_FLAGS_V17,
  SIZEOF,
  FN_DESC,
  BOOT_CONTEXT,
  decodeBootContext,
  decodeCreateMemArgs,
  decodeDtbConfig,
  decodeFnDesc,
  decodeMapMemArgs,
  ioctlSyscall,
  type GunyahIoctlName,
  type MapFlagLayout,
} from '../uapi/index.js';
import { ArenaFolioAllocator, type FolioAllocator } from './core-seam.js';
import { err, withSyscall } from './errors.js';
import { guardedHandle } from './leak-guard.js';
import { SimGuestMem } from './guest-mem.js';
import { MemParcelTable } from './memparcel.js';
import { UserMemory } from './user-memory.js';
import { SimVcpu, type PageFaultResumeMode } from './vcpu.js';
import { SimVm } from './vm.js';

const CREATE_MEM = ioctlSyscall('GUNYAH_CREATE_GUEST_MEM');
const CREATE_VM = ioctlSyscall('GUNYAH_CREATE_VM');
const u64 = (v: bigint | number): bigint => BigInt.asUintN(64, BigInt(v));

/**
 * Failures a test can inject: the next binding allocation (ENOMEM), or the RM's VM_INIT /
 * VM_START step of a VM start (test hooks; the RM's own reasons are not modelled).
 */
export type SimFault = 'binding-alloc' | 'vm-init' | 'vm-start';

/** The fd of `/dev/gunyah` itself in the simulated fd table. */
export const GUNYAH_DEVICE_FD = 3;

/**
 * A simulated `/dev/gunyah` with its Resource Manager: an fd table (lowest free fd first, EMFILE
 * past `maxFds`), the folio allocator every file draws from, the RM parcel table and VMIDs.
 */
export class SimDevice implements Gunyah {
  readonly layout: MapFlagLayout;
  readonly rodataFull: boolean;
  readonly allocator: FolioAllocator;
  readonly rm = new MemParcelTable();
  /** The caller's user memory, for ioctl arguments that carry a pointer (`gunyah_fn_desc.arg`). */
  readonly userMem = new UserMemory();
  readonly pageFaultResume: PageFaultResumeMode;
  readonly truncate: 'v17' | 'fixed';
  /**
   * Bumped by every change of what a guest access can find: a binding added, cut or removed, a
   * page provided, touched, relinquished or reclaimed. The guest-access shortcut's last page
   * (`SimVm.fastAccess`) is valid only for the value it was taken at.
   */
  guestMapGen = 0;
  private readonly fds = new Map<number, SimVm | SimGuestMem | SimVcpu | 'device'>([[GUNYAH_DEVICE_FD, 'device']]);
  private readonly maxFds: number;
  private readonly vmids = new Set<number>();

  constructor(opts: OpenGunyahOptions & { allocator?: FolioAllocator }) {
    this.layout = MAP_FLAGS_V17;
    this.rodataFull = opts.rodataFull ?? true;
    this.maxFds = opts.maxFds ?? 1024;
    this.pageFaultResume = opts.pageFaultResume ?? 'v17';
    this.truncate = opts.truncate ?? 'v17';
    this.allocator =
      opts.allocator ?? new ArenaFolioAllocator(opts.memoryLimit !== undefined ? { limitBytes: Number(opts.memoryLimit) } : {});
  }

  allocFd(syscall: string): number {
    for (let fd = 0; fd < this.maxFds; fd++) if (fd > 2 && !this.fds.has(fd)) return fd;
    throw err('EMFILE', 'open', syscall, `all ${this.maxFds} fds are in use`);
  }

  closeFd(fd: number): void {
    this.fds.delete(fd);
  }

  /** A new VM; the handle is released at garbage collection if dropped unclosed (`leak-guard.ts`). */
  createVm(arg = 0): GunyahVm {
    const vm = this.openVm(arg);
    return guardedHandle(vm, 'gunyah-sim VM fd', `gunyah-sim VM fd ${vm.fd}`, (v) => v.close());
  }

  private openVm(arg: number): SimVm {
    if (arg !== 0) throw err('EINVAL', 'createVm', CREATE_VM, 'argument must be 0');
    const fd = this.allocFd(CREATE_VM);
    const vm = new SimVm(this, fd);
    this.fds.set(fd, vm);
    return vm;
  }

  /** A new guest-memory file; the handle is released at garbage collection if dropped unclosed (`leak-guard.ts`). */
  createGuestMem(args: { flags: bigint | number; size: bigint | number; reserved?: readonly bigint[] }): GunyahGuestMem {
    const mem = this.openGuestMem(args);
    return guardedHandle(mem, 'gunyah-sim guest-memory fd', `gunyah-sim guest-memory fd ${mem.fd} (${mem.size} bytes)`, (m) => m.close());
  }

  private openGuestMem(args: { flags: bigint | number; size: bigint | number; reserved?: readonly bigint[] }): SimGuestMem {
    const flags = u64(args.flags);
    const size = u64(args.size);
    // Order of gunyah_guest_mem_create: size alignment, flags, then the fd. `reserved` is never read.
    if (size % PAGE_SIZE_N !== 0n) throw err('EINVAL', 'createGuestMem', CREATE_MEM, `size ${size} is not page-aligned`);
    if (flags & ~GHMF_KNOWN) throw err('EINVAL', 'createGuestMem', CREATE_MEM, `unknown flags 0x${flags.toString(16)}`);
    const fd = this.allocFd(CREATE_MEM);
    const mem = withSyscall('createGuestMem', CREATE_MEM, () => new SimGuestMem(this, fd, size, flags));
    this.fds.set(fd, mem);
    return mem;
  }

  guestMem(fd: number): SimGuestMem | undefined {
    const e = this.fds.get(fd);
    return e instanceof SimGuestMem ? e : undefined;
  }

  /** Enters a vCPU fd made by ADD_FUNCTION into the fd table. */
  registerVcpu(v: SimVcpu): void {
    this.fds.set(v.fd, v);
  }

  vcpu(fd: number): SimVcpu | undefined {
    const e = this.fds.get(fd);
    return e instanceof SimVcpu ? e : undefined;
  }

  /** mmap of a vCPU fd: the page holding `gunyah_vcpu_run` (EBADF for a fd that is no vCPU). */
  mmapVcpu(fd: number): Uint8Array {
    const v = this.vcpu(fd);
    if (!v) throw err('EBADF', 'mmap', 'mmap', `fd ${fd} is not a vCPU fd`);
    return v.runPage;
  }

  vm(fd: number): SimVm | undefined {
    const e = this.fds.get(fd);
    return e instanceof SimVm ? e : undefined;
  }

  private readonly faults = new Map<SimFault, number>();

  /** Test hook: make the next `count` kernel allocations of `kind` fail with ENOMEM. */
  injectFault(kind: SimFault, count = 1): void {
    this.faults.set(kind, (this.faults.get(kind) ?? 0) + count);
  }

  takeFault(kind: SimFault): boolean {
    const n = this.faults.get(kind) ?? 0;
    if (n > 0) this.faults.set(kind, n - 1);
    return n > 0;
  }

  allocVmid(): number {
    let id = 45; // first guest VMID; the host is 3 (inference, any free id works)
    while (this.vmids.has(id)) id++;
    this.vmids.add(id);
    return id;
  }

  freeVmid(id: number): void {
    this.vmids.delete(id);
  }

  /**
   * Raw ioctl: `arg` must hold at least the struct's bytes (else EFAULT, as a failed
   * `copy_from_user`). Returns the ioctl's return value (a new fd, or 0).
   */
  ioctl(fd: number, request: number, arg?: Uint8Array): number {
    const target = this.fds.get(fd);
    if (target === undefined) throw err('EBADF', 'ioctl', 'ioctl', `fd ${fd} is not open`);
    const name = (Object.keys(GUNYAH_IOCTL) as GunyahIoctlName[]).find((k) => GUNYAH_IOCTL[k] === request >>> 0);
    const syscall = name ? ioctlSyscall(name) : `ioctl(0x${(request >>> 0).toString(16)})`;
    const need = (size: number): Uint8Array => {
      if (!arg || arg.byteLength < size) throw err('EFAULT', 'ioctl', syscall, `argument needs ${size} bytes`);
      return arg;
    };
    if (target === 'device') {
      if (name === 'GUNYAH_CREATE_VM') return this.openVm(arg ? 1 : 0).fd;
      if (name === 'GUNYAH_CREATE_GUEST_MEM') return this.openGuestMem(decodeCreateMemArgs(need(SIZEOF.gunyah_create_mem_args))).fd;
    } else if (target instanceof SimVm) {
      if (name === 'GUNYAH_VM_MAP_MEM') return (target.mapMem(decodeMapMemArgs(need(SIZEOF.gunyah_map_mem_args))), 0);
      if (name === 'GUNYAH_VM_SET_DTB_CONFIG') return (target.setDtbConfig(decodeDtbConfig(need(SIZEOF.gunyah_vm_dtb_config))), 0);
      if (name === 'GUNYAH_VM_START') return (target.start(), 0);
      if (name === 'GUNYAH_VM_SET_BOOT_CONTEXT') return (target.setBootContext(decodeBootContext(need(BOOT_CONTEXT.SIZE))), 0);
      if (name === 'GUNYAH_VM_ADD_FUNCTION' || name === 'GUNYAH_VM_REMOVE_FUNCTION') {
        const d = decodeFnDesc(need(FN_DESC.SIZE));
        // copy_from_user of the argument (ADD_FUNCTION checks arg_size ≤ 256 before copying).
        const a = d.argSize > 0 ? this.userMem.read(d.arg, d.argSize) : undefined;
        const desc = { type: d.type, argSize: d.argSize, arg: d.argSize === 0 ? new Uint8Array(0) : a };
        if (name === 'GUNYAH_VM_ADD_FUNCTION') return target.addFunction(desc);
        return (target.removeFunction(desc), 0);
      }
    } else if (target instanceof SimVcpu) {
      if (name === 'GUNYAH_VCPU_RUN') return target.run();
      if (name === 'GUNYAH_VCPU_MMAP_SIZE') return 4096; // PAGE_SIZE (v17 15/35)
    }
    throw err('ENOTTY', 'ioctl', syscall, `request 0x${(request >>> 0).toString(16)} is not handled on this fd`);
  }

  stats(): GunyahStats {
    let vms = 0;
    let files = 0;
    let bindings = 0;
    let providedFolios = 0;
    const seen = new Set<SimGuestMem>();
    for (const e of this.fds.values()) {
      if (e instanceof SimVm) {
        vms++;
        bindings += e.bindingCount;
      } else if (e instanceof SimGuestMem) seen.add(e);
    }
    for (const m of seen) files++, (providedFolios += m.provided.size);
    return {
      openFds: this.fds.size - 1,
      vms,
      files,
      bindings,
      folioBytes: BigInt(this.allocator.stats().bytesInUse),
      providedFolios,
      parcels: this.rm.size,
    };
  }
}

/** Opens the simulated Gunyah device. */
export function openGunyah(opts: OpenGunyahOptions & { allocator?: FolioAllocator }): SimDevice {
  if (opts.driver !== 'sim')
    throw err('ENODEV', 'openGunyah', 'open(/dev/gunyah)', `driver ${String(opts.driver)}: only 'sim' exists (no Gunyah hardware)`);
  return new SimDevice(opts);
}
