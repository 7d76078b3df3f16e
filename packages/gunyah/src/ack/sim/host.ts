/**
 * The simulated machine behind the ACK driver: `/dev/gunyah` with its Resource Manager, the host
 * processes whose memory guests run on (core's {@link UserAddressSpace} + {@link UserMemory}), the
 * host's stage 2 (which folios the hypervisor took from the host), the CMA pool devices and one fd
 * table. Calls run as {@link AckHost.current}, the simulated caller (`current->mm`), which
 * {@link AckHost.runAs} changes.
 */
import { ArenaFolioAllocator, UserAddressSpace, UserMemory, type FolioAllocator, type UserMemoryKind } from '@guestmem/core';
import { MemParcelTable } from '../../sim/memparcel.js';
import {
  ACK_GENERATIONS,
  ACK_IOCTL,
  ACK_SIZEOF,
  ackIoctlSyscall,
  decodeAddressRange,
  decodeMapCmaMemArgs,
  decodeUserMemoryRegion,
  type AckGeneration,
  type AckIoctlName,
  type AckProfile,
} from '../uapi/index.js';
import { ACK_BACKEND, ackErr } from './errors.js';
import { AckVm } from './vm.js';
import { CmaFd, CmaPoolDevice } from './cma.js';
import { guardedHandle } from '../../sim/leak-guard.js';

/** Options of {@link openGunyahAck}. */
export interface AckHostOptions {
  /** Which ACK generation the simulated kernel is (default 'C', the 6.12 line). */
  generation?: AckGeneration;
  /** Folio allocator of the machine (shared with other backends through DI). */
  allocator?: FolioAllocator;
  /** Byte limit of folio memory when no allocator is given. */
  memoryLimit?: bigint;
  /** CMA pools (`memory-region-names` of the `gunyah-cma-vm-mem` node): name → size in bytes. Generation C only. */
  cmaPools?: Readonly<Record<string, bigint | number>>;
  /** RLIMIT_MEMLOCK of the first process, in bytes (default unlimited, as crosvm users set it). */
  memlockLimit?: number;
  maxFds?: number;
}

/** A simulated host process: its address space (mm, locked-memory account) and its mmaps. */
export class AckProcess {
  readonly mm: UserAddressSpace;
  constructor(
    readonly host: AckHost,
    opts: { memlockLimit?: number; capIpcLock?: boolean },
  ) {
    this.mm = new UserAddressSpace({ memlockLimit: opts.memlockLimit ?? Infinity, capIpcLock: opts.capIpcLock, backend: ACK_BACKEND });
  }

  /**
   * `mmap` of new memory: anonymous (`MAP_PRIVATE|MAP_ANONYMOUS`), shmem (a memfd mapped
   * `MAP_SHARED`, what Qualcomm's test VMM and crosvm use) or a regular file. `hugePages` is
   * `madvise(MADV_HUGEPAGE)`. Pages are zeroed on first touch; the host's stage 2 decides whether a
   * touch is allowed (a page lent to a guest takes a stage-2 fault: SIGBUS).
   */
  mmap(opts: { size: bigint | number; kind?: UserMemoryKind; hugePages?: boolean }): { address: bigint; memory: UserMemory } {
    const memory = UserMemory.create({
      size: opts.size,
      kind: opts.kind ?? 'shmem',
      hugePages: opts.hugePages,
      allocator: this.host.allocator,
      ops: { backend: ACK_BACKEND, hostAccess: (m, index) => (this.host.hostMayTouch(m, index) ? 'allow' : 'sigbus') },
    });
    const address = this.mm.map(memory);
    memory.release(); // the mapping holds the only reference
    return { address, memory };
  }

  /** `munmap` of a whole mapping. Pages a VM pinned stay alive with the VM. */
  munmap(address: bigint): void {
    this.mm.unmap(address);
  }

  /** Host read at a virtual address (through the page tables and the host's stage 2). */
  read(address: bigint, len: number): Uint8Array {
    const r = this.resolveOrFault(address, 'read');
    return r.memory.read(r.offset, len);
  }

  write(address: bigint, data: Uint8Array): void {
    const r = this.resolveOrFault(address, 'write');
    r.memory.write(r.offset, data);
  }

  private resolveOrFault(address: bigint, kind: string): { memory: UserMemory; offset: bigint } {
    const r = this.mm.resolve(address);
    if (!r) throw ackErr('EFAULT', `host ${kind}`, undefined, `0x${address.toString(16)} is not mapped (SIGSEGV)`);
    return r;
  }
}

/** What the host's stage 2 knows about a folio the hypervisor holds for a VM. */
export interface Stage2Entry {
  readonly vm: AckVm;
  /** Donated to the guest (lend / protected): out of the host's stage 2. */
  readonly lent: boolean;
}

/** The fd of `/dev/gunyah` in the simulated fd table. */
export const ACK_DEVICE_FD = 3;

export class AckHost {
  readonly profile: AckProfile;
  readonly allocator: FolioAllocator;
  readonly rm = new MemParcelTable();
  /** Folios in some VM's stage 2, by folio handle (the physical page). */
  readonly stage2 = new Map<number, Stage2Entry>();
  readonly cmaDevices = new Map<string, CmaPoolDevice>();
  private readonly fds = new Map<number, AckVm | CmaFd | CmaPoolDevice | 'gunyah'>([[ACK_DEVICE_FD, 'gunyah']]);
  private readonly maxFds: number;
  private readonly vmids = new Set<number>();
  private readonly processes: AckProcess[] = [];
  /** The simulated caller (`current`). */
  current: AckProcess;

  constructor(opts: AckHostOptions = {}) {
    this.profile = ACK_GENERATIONS[opts.generation ?? 'C'];
    this.allocator =
      opts.allocator ?? new ArenaFolioAllocator(opts.memoryLimit !== undefined ? { limitBytes: Number(opts.memoryLimit) } : {});
    this.maxFds = opts.maxFds ?? 1024;
    this.current = this.createProcess({ memlockLimit: opts.memlockLimit });
    if (opts.cmaPools && this.profile.handles.has('GH_ANDROID_CREATE_CMA_MEM_FD')) {
      for (const [name, size] of Object.entries(opts.cmaPools)) {
        const dev = new CmaPoolDevice(this, name, BigInt(size), this.allocFd('open'));
        this.cmaDevices.set(name, dev);
        this.fds.set(dev.fd, dev);
      }
    }
  }

  /** A new host process (its own mm). RLIMIT_MEMLOCK defaults to unlimited. */
  createProcess(opts: { memlockLimit?: number; capIpcLock?: boolean } = {}): AckProcess {
    const p = new AckProcess(this, opts);
    this.processes.push(p);
    return p;
  }

  /** Runs `fn` as process `p` (the fds are shared, as after SCM_RIGHTS or fork). */
  runAs<T>(p: AckProcess, fn: () => T): T {
    const prev = this.current;
    this.current = p;
    try {
      return fn();
    } finally {
      this.current = prev;
    }
  }

  /** The host's stage 2: false when the folio behind `memory`'s page is lent to a guest. */
  hostMayTouch(memory: UserMemory, index: number): boolean {
    const folio = memory.folioHandleAt(index);
    return folio < 0 || !this.stage2.get(folio)?.lent;
  }

  allocFd(syscall: string): number {
    for (let fd = 3; fd < this.maxFds; fd++) if (!this.fds.has(fd)) return fd;
    throw ackErr('EMFILE', 'open', syscall, `all ${this.maxFds} fds are in use`);
  }

  installFd(fd: number, obj: AckVm | CmaFd): void {
    this.fds.set(fd, obj);
  }

  closeFd(fd: number): void {
    this.fds.delete(fd);
  }

  /** The VM behind an fd. */
  vm(fd: number): AckVm | undefined {
    const e = this.fds.get(fd);
    return e instanceof AckVm ? e : undefined;
  }

  cmaFd(fd: number): CmaFd | undefined {
    const e = this.fds.get(fd);
    return e instanceof CmaFd ? e : undefined;
  }

  isOpen(fd: number): boolean {
    return this.fds.has(fd);
  }

  /**
   * `GH_CREATE_VM`: `arg` must be 0 (EINVAL); the caller's mm becomes the VM's owner. The handle is
   * closed at garbage collection if dropped unclosed (see `../../sim/leak-guard.ts`); the fd of the
   * raw `ioctl` entry point is a number only and stays open until closed.
   */
  createVm(arg: number | bigint = 0): AckVm {
    const vm = this.openVm(arg);
    return guardedHandle(vm, 'gunyah-ack-sim VM fd', `gunyah-ack-sim VM fd ${vm.fd}`, (v) => v.close());
  }

  private openVm(arg: number | bigint): AckVm {
    const syscall = ackIoctlSyscall('GH_CREATE_VM');
    if (BigInt(arg) !== 0n) throw ackErr('EINVAL', 'createVm', syscall, 'arg is reserved and must be 0');
    const fd = this.allocFd(syscall);
    const vm = new AckVm(this, fd, this.current);
    this.fds.set(fd, vm);
    return vm;
  }

  /** `GH_ANDROID_TENTATIVE_UAPI` on /dev/gunyah: 0 in generation A (K1 vm_mgr.c); ENOTTY elsewhere. */
  tentativeUapi(): number {
    if (!this.profile.handles.has('GH_ANDROID_TENTATIVE_UAPI'))
      throw ackErr(
        'ENOTTY',
        'ioctl',
        ackIoctlSyscall('GH_ANDROID_TENTATIVE_UAPI'),
        `generation ${this.profile.generation} does not handle it`,
      );
    return 0;
  }

  allocVmid(): number {
    let id = 45; // first guest VMID (any free id works; the host is 3)
    while (this.vmids.has(id)) id++;
    this.vmids.add(id);
    return id;
  }

  freeVmid(id: number): void {
    this.vmids.delete(id);
  }

  /**
   * Raw `ioctl(fd, request, arg)` with the argument struct's bytes (too short → EFAULT, as a failed
   * `copy_from_user`). Numbers a generation does not handle — including the v17 `CREATE_GUEST_MEM`
   * and `MAP_MEM` — answer ENOTTY, as the driver's `default:` case does. Handled ioctls outside this
   * simulation's memory scope (functions, boot context, auth) answer ENOSYS, which the real driver
   * never does: the model says so instead of guessing.
   */
  ioctl(fd: number, request: number, arg?: Uint8Array | bigint | number): number {
    const target = this.fds.get(fd);
    if (target === undefined) throw ackErr('EBADF', 'ioctl', 'ioctl', `fd ${fd} is not open`);
    const req = request >>> 0;
    const name = (Object.keys(ACK_IOCTL) as AckIoctlName[]).find((k) => ACK_IOCTL[k] === req);
    const syscall = name ? ackIoctlSyscall(name) : `ioctl(0x${req.toString(16)})`;
    const bytes = (size: number): Uint8Array => {
      if (!(arg instanceof Uint8Array) || arg.byteLength < size) throw ackErr('EFAULT', 'ioctl', syscall, `argument needs ${size} bytes`);
      return arg;
    };
    const scalar = (): bigint => (arg instanceof Uint8Array ? 0n : BigInt(arg ?? 0));
    const notty = () =>
      ackErr(
        'ENOTTY',
        'ioctl',
        syscall,
        `request 0x${req.toString(16)} is not handled on this fd by generation ${this.profile.generation}`,
      );
    if (!name || !this.profile.handles.has(name)) throw notty();
    if (target === 'gunyah') {
      if (name === 'GH_CREATE_VM') return this.openVm(scalar()).fd;
      if (name === 'GH_ANDROID_TENTATIVE_UAPI') return this.tentativeUapi();
      throw notty();
    }
    if (target instanceof CmaPoolDevice) {
      if (name === 'GH_ANDROID_CREATE_CMA_MEM_FD') return target.openCmaMemFd().fd;
      throw notty();
    }
    if (target instanceof AckVm) {
      // The owner check comes before copy_from_user in every region/reclaim/CMA case (K7 vm_mgr.c).
      const owner = (): void => target.assertCreator(syscall);
      switch (name) {
        case 'GH_VM_SET_USER_MEM_REGION':
          owner();
          return (target.setUserMemRegion(decodeUserMemoryRegion(bytes(ACK_SIZEOF.gunyah_userspace_memory_region))), 0);
        case 'GH_VM_ANDROID_LEND_USER_MEM':
          owner();
          return (target.lendUserMem(decodeUserMemoryRegion(bytes(ACK_SIZEOF.gunyah_userspace_memory_region))), 0);
        case 'GH_VM_SET_DTB_CONFIG':
          return (target.setDtbConfig(decodeAddressRange(bytes(ACK_SIZEOF.gunyah_vm_dtb_config))), 0);
        case 'GH_VM_ANDROID_SET_FW_CONFIG':
          return (target.setFwConfig(decodeAddressRange(bytes(ACK_SIZEOF.gunyah_vm_firmware_config))), 0);
        case 'GH_VM_START':
          return (target.start(), 0);
        case 'GH_VM_RECLAIM_REGION':
          owner();
          return (target.reclaimRegion(decodeAddressRange(bytes(ACK_SIZEOF.gunyah_address_range))), 0);
        case 'GH_VM_ANDROID_MAP_CMA_MEM':
          owner();
          return (target.mapCmaMem(decodeMapCmaMemArgs(bytes(ACK_SIZEOF.gunyah_map_cma_mem_args))), 0);
        case 'GH_VM_CHECK_EXTENSION':
          return target.checkExtension(scalar());
        default:
          if (name.startsWith('GH_VM_') || name.startsWith('GUNYAH_VM_')) {
            throw ackErr('ENOSYS', 'ioctl', syscall, 'handled by the driver but not modelled by this simulation (outside the memory uAPI)');
          }
      }
    }
    throw notty();
  }

  stats(): AckStats {
    let vms = 0;
    let bindings = 0;
    let provided = 0;
    for (const e of this.fds.values()) {
      if (e instanceof AckVm) {
        vms++;
        bindings += e.bindingCount;
        provided += e.providedFolios;
      }
    }
    return {
      openFds: this.fds.size - 1 - this.cmaDevices.size,
      vms,
      bindings,
      providedFolios: provided,
      stage2Folios: this.stage2.size,
      parcels: this.rm.size,
      folioBytes: BigInt(this.allocator.stats().bytesInUse),
      lockedPages: this.processes.reduce((n, p) => n + p.mm.memlock.lockedPages, 0),
    };
  }
}

export interface AckStats {
  /** open fds other than /dev/gunyah and the CMA pool devices */
  openFds: number;
  vms: number;
  bindings: number;
  /** demand-paged folios currently in some guest's stage 2 */
  providedFolios: number;
  /** folios the hypervisor holds (provided or in an accepted parcel) */
  stage2Folios: number;
  parcels: number;
  folioBytes: bigint;
  /** pages charged to RLIMIT_MEMLOCK over all processes */
  lockedPages: number;
}

/** Opens a simulated ACK Gunyah machine (only `'sim'` exists: no Gunyah hardware here). */
export function openGunyahAck(opts: AckHostOptions & { driver?: 'sim' } = {}): AckHost {
  if (opts.driver !== undefined && opts.driver !== 'sim')
    throw ackErr('ENODEV', 'openGunyahAck', 'open(/dev/gunyah)', `driver ${String(opts.driver)}: only 'sim' exists`);
  return new AckHost(opts);
}
