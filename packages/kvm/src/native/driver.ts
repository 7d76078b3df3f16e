/**
 * The uAPI of `api.ts` on the real `/dev/kvm`. Each method issues exactly one syscall (plus the
 * argument encoding) and turns `-1`/errno into a GuestMemError; nothing is emulated, so whatever
 * the running kernel answers is what callers see.
 *
 * The one place the driver does more than the syscall is host access through a mapping: see
 * {@link NativeMapping}.
 */
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import type {
  CreateGuestMemfdArgs,
  GuestMemfdStat,
  IntArg,
  Kvm,
  KvmGmemMapping,
  KvmMapping,
  KvmGuestMemfd,
  KvmVm,
  MemoryAttributesArgs,
  MmapArgs,
  OtherFd,
  OtherFdKind,
  RawUserMemoryRegion,
  UserMemoryRegion,
  UserMemoryRegion2,
} from '../api.js';
import { resolveSlotMemory, withoutUserspace, type SlotReferencedMapping } from '../slot-memory.js';
import { openFds } from '../api.js';
import { i32, i64, u64 } from './codecs.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_MEM_GUEST_MEMFD,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MFD_CLOEXEC,
  O_CLOEXEC,
  O_RDWR,
} from '../uapi/constants.js';
import {
  KVM_GET_API_VERSION,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_GUEST_MEMFD,
  KVM_CREATE_VM,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_USER_MEMORY_REGION2,
} from '../uapi/ioctl.js';
import {
  encodeKvmCreateGuestMemfd,
  encodeKvmMemoryAttributes,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
  decodeKvmMemoryAttributes,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
} from './codecs.js';
import { diagnoseCreateGuestMemfd, diagnoseMemoryAttributes, diagnoseMemoryRegion, type NativeDiagnosis } from './diagnosis.js';
import { NativeGmemFileRecord, NativeVmRecord, gmemFds, releaseSlot, type NativeSlotRecord } from './records.js';
import { NATIVE_BACKEND, syscallError } from './errors.js';
import { forgetVmSlots, guardFd, newVmId, noteSlot, unguard } from './leak-guard.js';
import { bufferAddress, libc, type Libc } from './libc.js';
import { NativeMappingBase } from './mapping.js';
import { NativeAnonMapping, mmapAnonymous } from './anon-memory.js';
import { NativeVcpu, createNativeVcpu } from './vcpu.js';
import { refuseUnsafeMmapFlags } from '../mmap-policy.js';
import { refuseReopenFlags } from '../reopen-policy.js';
import { FdHandle } from '../fd-handle.js';
import { MappingVmas } from '../mm-range.js';
import { F_GETFL, F_SETFL, FIONREAD, O_CLOEXEC as OPEN_CLOEXEC } from '../uapi/constants.js';
import { checkExtensionOn, createGuestMemfdOn } from './fd-ioctls.js';
import { nativeMadvise, nativeMlock, nativeMprotect, nativeMunlock, type NativeMmTarget } from './gmem-mapping-ops.js';

/**
 * `KVM_GET_VCPU_MMAP_SIZE` is a property of the running kernel: asked once per process (on the
 * `/dev/kvm` fd that created the VM, or a briefly opened one when that fd is already closed).
 */
let vcpuMmapSize: number | undefined;

/** `KVM_API_VERSION`: what `KVM_GET_API_VERSION` answers on every KVM since Linux 2.6.22. */
const KVM_API_VERSION = 12;

// Scratch buffers for the struct ioctls. JS is single-threaded and each ioctl copies the struct in
// before returning, so one buffer per struct type serves every VM without a per-call allocation.
const createGmemBuf = Buffer.alloc(64);
const region1Buf = Buffer.alloc(32);
const region2Buf = Buffer.alloc(160);
const attrsBuf = Buffer.alloc(32);
/** `struct stat` is 144 bytes on x86-64. */
const statBuf = Buffer.alloc(144);

/**
 * The capability argument for `unsigned long`. The hot path (a small non-negative integer number,
 * which every KVM_CAP_* is) is one comparison and passes the number through untouched: no BigInt is
 * created and koffi converts it with its fast number path.
 */
function capArg(cap: IntArg): number | bigint {
  if (typeof cap === 'number' && cap >>> 0 === cap) return cap;
  if (typeof cap === 'bigint' && cap >= 0n && cap <= 0xffff_ffffn) return Number(cap);
  return u64('cap', cap);
}

/** `int` arguments: an int32 number passes through; anything else goes through the checked codec. */
function intArg(field: string, v: number): number {
  return v === (v | 0) ? v : i32(field, v);
}

/**
 * `off_t`/`loff_t` arguments: a safe-integer number passes through as a number (koffi converts it
 * to int64 exactly, and it is the same value `i64()` would produce); bigints and anything else go
 * through the checked codec. Keeps fallocate free of BigInt work on its hot path.
 */
function offArg(field: string, v: IntArg): number | bigint {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : i64(field, v);
}

/** How the leak warning names each fd kind. */
const FD_KINDS: Record<string, string> = { NativeKvm: '/dev/kvm', NativeVm: 'VM', NativeGuestMemfd: 'guest_memfd', NativeOtherFd: 'other' };

/** A native fd: `close()` is the real close(2). */
abstract class OwnedFd extends FdHandle {
  constructor(
    protected readonly c: Libc,
    fd: number,
    onCollected?: () => void,
  ) {
    super(fd, NATIVE_BACKEND);
    // Safety net: an fd dropped without close() is closed when this handle is collected.
    guardFd(this, c, fd, FD_KINDS[new.target.name] ?? new.target.name, onCollected);
  }
  protected release(fd: number): void {
    unguard(this);
    // Why: release our fd-table entry; the kernel object lives on while other references exist.
    if (this.c.close(fd) < 0) throw syscallError(this.c.errno(), 'close', 'close', { fd });
  }
}

/** Closes `fd` and throws unless it answers `KVM_GET_API_VERSION` with 12 (ENOTTY for another file). */
function checkApiVersion(c: Libc, fd: number, info: Record<string, unknown>): void {
  // Why: KVM_GET_API_VERSION takes no argument and answers 12 on every KVM; anything else is not KVM.
  const version: number = c.ioctlArg(fd, KVM_GET_API_VERSION, 0);
  if (version !== KVM_API_VERSION) {
    const errno = version < 0 ? c.errno() : 25; // ENOTTY: an ioctl this file does not know
    c.close(fd);
    throw syscallError(errno, 'openKvm', 'ioctl(KVM_GET_API_VERSION)', { ...info, version });
  }
}

/** Drops one reference to a VM record; when the kernel VM goes, so do its slots' leak-guard ranges. */
function putVm(rec: NativeVmRecord, vmId: number): void {
  rec.put();
  if (rec.destroyed) forgetVmSlots(vmId);
}

/** `/dev/kvm`. */
export class NativeKvm extends OwnedFd implements Kvm {
  readonly driver = 'native' as const;
  readonly profile = 'host' as const;

  /**
   * Opens `/dev/kvm` (O_RDWR | O_CLOEXEC) and checks with `KVM_GET_API_VERSION` that it is KVM, like
   * {@link fromFd} (a path to another device, e.g. `/dev/null`, is ENOTTY and leaves nothing open).
   * Throws GuestMemError with open's errno.
   */
  static open(path = '/dev/kvm'): NativeKvm {
    const c = libc();
    // Why: the system fd is the entry point of the KVM API (capabilities, KVM_CREATE_VM).
    const fd = c.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw syscallError(c.errno(), 'openKvm', 'open', { path });
    checkApiVersion(c, fd, { path });
    return new NativeKvm(c, fd);
  }

  /**
   * Uses an already-open KVM system fd (crosvm's `--hypervisor kvm,device=…` for a device handed
   * over by a launcher): duplicates it, so closing the returned handle leaves the caller's fd open,
   * and checks with `KVM_GET_API_VERSION` that it is KVM (ENOTTY otherwise; EBADF for a closed fd).
   */
  static fromFd(fd: number): NativeKvm {
    const c = libc();
    // Why: our own reference to the same open file; close() releases only this one.
    const own = c.dup(intArg('fd', fd));
    if (own < 0) throw syscallError(c.errno(), 'openKvm', 'dup', { fd });
    checkApiVersion(c, own, { fd });
    return new NativeKvm(c, own);
  }

  checkExtension(cap: IntArg): number {
    const fd = this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    // Why: the capability query; the argument is the capability number itself, not a pointer.
    // Hot path: one koffi call on an all-integer prototype, errno read only on failure.
    const r: number = this.c.ioctlArg(fd, KVM_CHECK_EXTENSION, capArg(cap));
    if (r === -1) throw syscallError(this.c.errno(), 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', { cap });
    return r;
  }

  createVm(type: IntArg = 0): NativeVm {
    const fd = this.live('createVm', 'ioctl(KVM_CREATE_VM)');
    const t = u64('type', type);
    // Why: creates the VM; the machine type travels as the integer argument.
    const vmFd = this.c.ioctlArg(fd, KVM_CREATE_VM, t);
    if (vmFd < 0) throw syscallError(this.c.errno(), 'createVm', 'ioctl(KVM_CREATE_VM)', { type });
    return new NativeVm(this.c, vmFd, Number(t), this);
  }

  /** `KVM_CREATE_GUEST_MEMFD` on the system fd: the kernel's answer (EINVAL, see `Kvm.createGuestMemfd`). */
  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    const fd = this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    return createGuestMemfdOn(this.c, fd, args, (g, size, flags) => unownedGuestMemfd(this.c, g, size, flags));
  }

  /** `KVM_GET_VCPU_MMAP_SIZE`: the length of a vCPU's `kvm_run` mapping (12288 on the probe machine). */
  getVcpuMmapSize(): number {
    const fd = this.live('getVcpuMmapSize', 'ioctl(KVM_GET_VCPU_MMAP_SIZE)');
    // Why: the kvm_run area is larger than struct kvm_run (PIO data page, coalesced MMIO ring).
    const r: number = this.c.ioctlArg(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (r < 0) throw syscallError(this.c.errno(), 'getVcpuMmapSize', 'ioctl(KVM_GET_VCPU_MMAP_SIZE)');
    return (vcpuMmapSize = r);
  }

  openOtherFd(kind: OtherFdKind): OtherFd {
    this.live('openOtherFd', kind === 'memfd' ? 'memfd_create' : 'open');
    if (kind === 'memfd') {
      // Why: a regular shmem file — the "valid fd, wrong file type" case of REGION2.
      const fd = this.c.memfd_create('guestmem-other', MFD_CLOEXEC);
      if (fd < 0) throw syscallError(this.c.errno(), 'openOtherFd', 'memfd_create');
      return new NativeOtherFd(this.c, fd, kind);
    }
    // Why: a character device that is not KVM's.
    const fd = this.c.open('/dev/null', O_RDWR | O_CLOEXEC);
    if (fd < 0) throw syscallError(this.c.errno(), 'openOtherFd', 'open', { path: '/dev/null' });
    return new NativeOtherFd(this.c, fd, kind);
  }

  /**
   * Anonymous private memory (see `KvmAnonMapping`). Needs no fd, so it is allowed on a closed
   * handle too, like the simulated driver.
   */
  mmapAnonymous(length: IntArg): NativeAnonMapping {
    return mmapAnonymous(this.c, length);
  }

  openFds(): number[] {
    return openFds();
  }
}

class NativeOtherFd extends OwnedFd implements OtherFd {
  constructor(
    c: Libc,
    fd: number,
    readonly kind: OtherFdKind,
  ) {
    super(c, fd);
  }

  checkExtension(cap: IntArg): number {
    return checkExtensionOn(this.c, this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)'), cap);
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    const fd = this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    return createGuestMemfdOn(this.c, fd, args, (g, size, flags) => unownedGuestMemfd(this.c, g, size, flags));
  }
}

/**
 * A VM fd. Native-only extra: {@link NativeVm.createVcpu}.
 *
 * Lifetime as in the kernel: each vCPU fd holds a reference to the VM, so `close()` closes only the
 * VM fd. vCPUs stay usable (they still run the guest) and are closed on their own, before or after.
 */
export class NativeVm extends OwnedFd implements KvmVm {
  /** vCPUs created here and not yet closed (each outlives `close()` of this handle, as in the kernel). */
  readonly #vcpus = new Set<NativeVcpu>();
  /** What this VM holds in the kernel (references, memslots), for owned mappings and diagnoses. */
  readonly #rec: NativeVmRecord;
  /** Key of this VM's slot ranges in the leak guard's bookkeeping (see `leak-guard.ts`). */
  readonly #vmId: number;
  constructor(
    c: Libc,
    fd: number,
    readonly type: number,
    private readonly sys?: NativeKvm,
    vmId = newVmId(),
    rec = new NativeVmRecord(type),
  ) {
    // Why: a VM handle collected without close() drops only the VM fd's reference, like close():
    // a guest_memfd or vCPU may keep the VM, and its slots' leak-guard ranges, alive.
    super(c, fd, () => putVm(rec, vmId));
    this.#vmId = vmId;
    this.#rec = rec;
  }

  /** Drops one reference to the VM; when the kernel VM goes, so do its slots' leak-guard ranges. */
  #put(): void {
    putVm(this.#rec, this.#vmId);
  }

  /** The vCPUs of this handle that are still open. */
  get vcpus(): readonly NativeVcpu[] {
    return [...this.#vcpus];
  }

  /**
   * `KVM_CREATE_VCPU(id)` plus the mmap of its `kvm_run` area. Native only: the simulated kernel
   * has no instruction emulator (see `native/vcpu.ts`). The vCPU holds a reference to the VM.
   */
  createVcpu(id: IntArg = 0): NativeVcpu {
    const fd = this.live('createVcpu', 'ioctl(KVM_CREATE_VCPU)');
    const size = vcpuMmapSize ?? this.#queryVcpuMmapSize();
    const rec = this.#rec;
    const vcpu = createNativeVcpu(this.c, fd, id, size, (v) => {
      this.#vcpus.delete(v);
      this.#put();
    });
    rec.get();
    this.#vcpus.add(vcpu);
    return vcpu;
  }

  #queryVcpuMmapSize(): number {
    if (this.sys && !this.sys.closed) return this.sys.getVcpuMmapSize();
    const sys = NativeKvm.open();
    try {
      return sys.getVcpuMmapSize();
    } finally {
      sys.close();
    }
  }

  protected override release(fd: number): void {
    try {
      super.release(fd);
    } finally {
      // close(2) releases the fd even when it reports an error: the VM fd's reference is gone.
      this.#put();
    }
  }

  checkExtension(cap: IntArg): number {
    const fd = this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    // Why: per-VM capability answers (e.g. GUEST_MEMFD_FLAGS depends on the VM type).
    const r: number = this.c.ioctlArg(fd, KVM_CHECK_EXTENSION, capArg(cap));
    if (r === -1) throw syscallError(this.c.errno(), 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', { cap });
    return r;
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    const syscall = 'ioctl(KVM_CREATE_GUEST_MEMFD)';
    const fd = this.live('createGuestMemfd', syscall);
    encodeKvmCreateGuestMemfd(args, createGmemBuf);
    // Why: the only way to obtain a guest_memfd; the kernel returns the new fd.
    const gfd = this.c.ioctlPtr(fd, KVM_CREATE_GUEST_MEMFD, createGmemBuf);
    const size = u64('size', args.size);
    const flags = u64('flags', args.flags);
    if (gfd < 0) {
      const errno = this.c.errno();
      const info = { size: args.size, flags: args.flags };
      // Error path only: the VM's supported flags, to name the rule.
      const diagnosis = diagnoseCreateGuestMemfd(
        syscallError(errno, 'createGuestMemfd', syscall).code,
        BigInt(this.#capOrZero(KVM_CAP_GUEST_MEMFD_FLAGS)),
        size,
        flags,
      );
      throw diagnosed(errno, 'createGuestMemfd', syscall, info, diagnosis);
    }
    return new NativeGuestMemfd(this.c, gfd, size, flags, new NativeGmemFileRecord(this.#rec, size, flags));
  }

  setUserMemoryRegion(region: UserMemoryRegion): void {
    this.live('setUserMemoryRegion', SET_REGION);
    const mem = resolveSlotMemory(region, ownsMapping, 'setUserMemoryRegion', NATIVE_BACKEND);
    this.#region(
      { ...withoutUserspace(region), userspaceAddr: mem.userspaceAddr, guestMemfdOffset: 0, guestMemfd: 0 },
      'setUserMemoryRegion',
      true,
      mem.mapping,
    );
  }

  setUserMemoryRegion2(region: UserMemoryRegion2): void {
    this.live('setUserMemoryRegion2', SET_REGION2);
    const mem = resolveSlotMemory(region, ownsMapping, 'setUserMemoryRegion2', NATIVE_BACKEND);
    this.#region({ ...withoutUserspace(region), userspaceAddr: mem.userspaceAddr }, 'setUserMemoryRegion2', false, mem.mapping);
  }

  unsafeSetUserMemoryRegion(region: RawUserMemoryRegion, opts: { ioctl?: 'REGION' | 'REGION2' } = {}): void {
    const v1 = opts.ioctl === 'REGION';
    this.live('unsafeSetUserMemoryRegion', v1 ? SET_REGION : SET_REGION2);
    this.#region({ guestMemfdOffset: 0, guestMemfd: 0, ...region }, 'unsafeSetUserMemoryRegion', v1, undefined);
  }

  /**
   * One memslot ioctl with a resolved `userspace_addr`. On success the record follows the kernel
   * (create, move/flags, delete; a created slot pins `mapping`); on failure the error carries the
   * driver's diagnosis (see `diagnosis.ts`). Both are off the hot path of the other ioctls.
   */
  #region(
    region: RawUserMemoryRegion & { guestMemfdOffset: IntArg; guestMemfd: IntArg },
    op: string,
    v1: boolean,
    mapping: SlotReferencedMapping | undefined,
  ): void {
    const syscall = v1 ? SET_REGION : SET_REGION2;
    const fd = this.live(op, syscall);
    if (v1) encodeKvmUserspaceMemoryRegion(region, region1Buf);
    else encodeKvmUserspaceMemoryRegion2(region, region2Buf);
    // Why: memslot create/move/flags/delete; with KVM_MEM_GUEST_MEMFD (v2) it binds the slot to a
    // guest_memfd range. userspace_addr is an owned mapping's range (safe API) or the caller's (unsafe).
    const failed = this.c.ioctlPtr(fd, v1 ? KVM_SET_USER_MEMORY_REGION : KVM_SET_USER_MEMORY_REGION2, v1 ? region1Buf : region2Buf) < 0;
    if (failed) {
      const errno = this.c.errno();
      const r = v1
        ? { ...decodeKvmUserspaceMemoryRegion(region1Buf), guestMemfdOffset: 0n, guestMemfd: 0, pad1: 0, pad2: [] }
        : decodeKvmUserspaceMemoryRegion2(region2Buf);
      throw diagnosed(errno, op, syscall, { ...region }, diagnoseMemoryRegion(syscallError(errno, op, syscall).code, this.#rec, r, v1));
    }
    const buf = v1 ? region1Buf : region2Buf;
    recordRegion(this.#rec, buf, v1, mapping);
    // slot at byte 0, memory_size at 16, userspace_addr at 24 in both structs.
    noteSlot(this.#vmId, buf.readUInt32LE(0), buf.readBigUInt64LE(24), buf.readBigUInt64LE(16));
  }

  setMemoryAttributes(attrs: MemoryAttributesArgs): void {
    const syscall = 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)';
    const fd = this.live('setMemoryAttributes', syscall);
    encodeKvmMemoryAttributes(attrs, attrsBuf);
    // Why: shared⇄private conversion of a GPA range (ENOTTY where the kernel lacks it).
    if (this.c.ioctlPtr(fd, KVM_SET_MEMORY_ATTRIBUTES, attrsBuf) < 0) {
      const errno = this.c.errno();
      const a = decodeKvmMemoryAttributes(attrsBuf);
      // Error path only: the VM's supported attributes, to name the rule.
      const diagnosis = diagnoseMemoryAttributes(
        syscallError(errno, 'setMemoryAttributes', syscall).code,
        BigInt(this.#capOrZero(KVM_CAP_MEMORY_ATTRIBUTES)),
        a,
      );
      throw diagnosed(errno, 'setMemoryAttributes', syscall, { ...attrs }, diagnosis);
    }
  }

  /** `KVM_CHECK_EXTENSION(cap)` on this VM, 0 if it fails (diagnosis only). */
  #capOrZero(cap: number): number {
    const r: number = this.c.ioctlArg(this.fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
  }
}

/** The kernel's refusal, with guestmem's diagnosis in `info.diagnosis` and the message when there is one. */
function diagnosed(
  errno: number,
  op: string,
  syscall: string,
  info: Record<string, unknown>,
  diagnosis: NativeDiagnosis | undefined,
): GuestMemError {
  if (!diagnosis) return syscallError(errno, op, syscall, info);
  return syscallError(errno, op, syscall, { ...info, diagnosis }, `guestmem diagnosis: ${diagnosis.detail} (rule ${diagnosis.rule})`);
}

const SET_REGION = 'ioctl(KVM_SET_USER_MEMORY_REGION)';
const SET_REGION2 = 'ioctl(KVM_SET_USER_MEMORY_REGION2)';

/** A mapping of this driver (the only kind the safe memslot API accepts). */
const ownsMapping = (m: KvmMapping): m is NativeMappingBase => m instanceof NativeMappingBase;

/** The record after an accepted memslot ioctl (the kernel did exactly one of these), from the struct in `buf`. */
function recordRegion(vm: NativeVmRecord, buf: Buffer, v1: boolean, mapping: SlotReferencedMapping | undefined): void {
  // The fields as the kernel read them (struct kvm_userspace_memory_region[2]: slot @0, flags @4,
  // guest_phys_addr @8, memory_size @16, userspace_addr @24, guest_memfd_offset @32, guest_memfd @40),
  // read directly: a full decode costs more than the rest of this bookkeeping.
  const r = {
    slot: buf.readUInt32LE(0),
    flags: buf.readUInt32LE(4),
    guestPhysAddr: buf.readBigUInt64LE(8),
    memorySize: buf.readBigUInt64LE(16),
    userspaceAddr: buf.readBigUInt64LE(24),
    guestMemfdOffset: v1 ? 0n : buf.readBigUInt64LE(32),
    guestMemfd: v1 ? 0 : buf.readUInt32LE(40),
  };
  const id = r.slot & 0xffff;
  const old = vm.slots.get(id);
  if (r.memorySize === 0n) {
    if (old) releaseSlot(old);
    vm.slots.delete(id);
    return;
  }
  if (old) {
    // Move or flags change: only the GPA and LOG_DIRTY_PAGES can differ.
    old.baseGfn = r.guestPhysAddr >> 12n;
    old.flags = r.flags;
    if (!old.mapping && mapping) (old.mapping = mapping).pinForSlot();
    return;
  }
  const npages = Number(r.memorySize >> 12n);
  const slot: NativeSlotRecord = {
    id,
    flags: r.flags,
    baseGfn: r.guestPhysAddr >> 12n,
    npages,
    userspaceAddr: r.userspaceAddr,
    mapping,
    gmem: null,
  };
  const file = r.flags & KVM_MEM_GUEST_MEMFD ? gmemFds.get(r.guestMemfd) : undefined;
  if (file) {
    const first = Number(r.guestMemfdOffset >> 12n);
    slot.gmem = { file, first, end: first + npages };
    file.bindings.set(id, slot);
  }
  mapping?.pinForSlot();
  vm.slots.set(id, slot);
}

/** A guest_memfd fd. `size`/`flags` are remembered from creation for the host-access pre-checks. */
export class NativeGuestMemfd extends OwnedFd implements KvmGuestMemfd {
  constructor(
    c: Libc,
    fd: number,
    readonly size: bigint,
    readonly flags: bigint,
    /** The open file this fd refers to (shared with dups): its size, VM and bound ranges. */
    private readonly file: NativeGmemFileRecord,
  ) {
    super(c, fd);
    gmemFds.set(fd, file);
  }

  protected override release(fd: number): void {
    gmemFds.delete(fd);
    try {
      super.release(fd);
    } finally {
      this.file.put();
    }
  }

  fallocate(mode: number, offset: IntArg, len: IntArg): void {
    const fd = this.live('fallocate', 'fallocate');
    // Why: allocate (KEEP_SIZE) or free (PUNCH_HOLE|KEEP_SIZE) backing pages of the file.
    // Number arguments pass through without BigInt conversion (see offArg).
    const r: number = this.c.fallocate(fd, intArg('mode', mode), offArg('offset', offset), offArg('len', len));
    if (r === -1) throw syscallError(this.c.errno(), 'fallocate', 'fallocate', { mode, offset, len });
  }

  mmap(args: MmapArgs): NativeMapping | NativeAnonMapping {
    const fd = this.live('mmap', 'mmap');
    refuseUnsafeMmapFlags(args.flags, NATIVE_BACKEND, args.address);
    const length = u64('length', args.length);
    const offset = i64('offset', args.offset ?? 0);
    const hint = u64('address', args.address ?? 0);
    // Why: the host's window onto the file; the mapping takes its own file reference.
    const address: bigint = this.c.mmap(hint, length, i32('prot', args.prot), i32('flags', args.flags), fd, offset);
    if (address === MAP_FAILED) {
      throw syscallError(this.c.errno(), 'mmap', 'mmap', { length: args.length, prot: args.prot, flags: args.flags, offset });
    }
    // Why: with MAP_ANONYMOUS the kernel ignored the fd (ksys_mmap_pgoff) and mapped anonymous memory,
    // which no guest_memfd SIGBUS rule applies to.
    if (args.flags & MAP_ANONYMOUS) return new NativeAnonMapping(this.c, address, Number(length), args.prot, args.flags);
    return new NativeMapping(
      this.c,
      address,
      Number(length),
      BigInt.asUintN(64, offset),
      args.prot,
      args.flags,
      this.size,
      this.flags,
      this.file,
    );
  }

  fstat(): GuestMemfdStat {
    const fd = this.live('fstat', 'fstat');
    // Why: size/blksize/blocks/mode/ino as the VFS reports them for this anon inode.
    if (this.c.fstat(fd, statBuf) < 0) throw syscallError(this.c.errno(), 'fstat', 'fstat');
    return {
      dev: statBuf.readBigUInt64LE(0),
      ino: statBuf.readBigUInt64LE(8),
      nlink: Number(statBuf.readBigUInt64LE(16)),
      mode: statBuf.readUInt32LE(24),
      size: statBuf.readBigInt64LE(48),
      blksize: Number(statBuf.readBigInt64LE(56)),
      blocks: statBuf.readBigInt64LE(64),
    };
  }

  read(len: number): Uint8Array {
    const fd = this.live('read', 'read');
    const buf = Buffer.alloc(len);
    // Why: guest_memfd has no read op; the kernel's answer (EINVAL) is what callers observe.
    const n = Number(this.c.read(fd, buf, len));
    if (n < 0) throw syscallError(this.c.errno(), 'read', 'read', { len });
    return new Uint8Array(buf.buffer, buf.byteOffset, n);
  }

  write(data: Uint8Array): number {
    const fd = this.live('write', 'write');
    // Why: guest_memfd has no write op (EINVAL).
    const n = Number(this.c.write(fd, data, data.byteLength));
    if (n < 0) throw syscallError(this.c.errno(), 'write', 'write', { len: data.byteLength });
    return n;
  }

  pread(len: number, offset: IntArg): Uint8Array {
    const fd = this.live('pread', 'pread');
    const buf = Buffer.alloc(len);
    // Why: no FMODE_PREAD on guest_memfd (ESPIPE).
    const n = Number(this.c.pread(fd, buf, len, i64('offset', offset)));
    if (n < 0) throw syscallError(this.c.errno(), 'pread', 'pread', { len, offset });
    return new Uint8Array(buf.buffer, buf.byteOffset, n);
  }

  pwrite(data: Uint8Array, offset: IntArg): number {
    const fd = this.live('pwrite', 'pwrite');
    // Why: no FMODE_PWRITE on guest_memfd (ESPIPE).
    const n = Number(this.c.pwrite(fd, data, data.byteLength, i64('offset', offset)));
    if (n < 0) throw syscallError(this.c.errno(), 'pwrite', 'pwrite', { len: data.byteLength, offset });
    return n;
  }

  lseek(offset: IntArg, whence: number): bigint {
    const fd = this.live('lseek', 'lseek');
    // Why: no llseek on guest_memfd (ESPIPE).
    const r = BigInt(this.c.lseek(fd, i64('offset', offset), i32('whence', whence)));
    if (r < 0n) throw syscallError(this.c.errno(), 'lseek', 'lseek', { offset, whence });
    return r;
  }

  ftruncate(len: IntArg): void {
    const fd = this.live('ftruncate', 'ftruncate');
    // Why: guest_memfd's setattr refuses every size change (EINVAL).
    if (this.c.ftruncate(fd, i64('len', len)) < 0) throw syscallError(this.c.errno(), 'ftruncate', 'ftruncate', { len });
  }

  dup(): KvmGuestMemfd {
    const fd = this.live('dup', 'dup');
    // Why: a second fd-table reference to the same open file.
    const nfd = this.c.dup(fd);
    if (nfd < 0) throw syscallError(this.c.errno(), 'dup', 'dup', { fd });
    this.file.get();
    return new NativeGuestMemfd(this.c, nfd, this.size, this.flags, this.file);
  }
  readv(buffers: readonly Uint8Array[]): number {
    const fd = this.live('readv', 'readv');
    const iov = iovec(buffers);
    // Why: vectored read; guest_memfd has no read_iter (EINVAL). Safety: every iov entry points into
    // a caller buffer alive for the call, with its exact byteLength.
    const n = Number(this.c.readv(fd, iov, buffers.length));
    if (n < 0) throw syscallError(this.c.errno(), 'readv', 'readv', { count: buffers.length });
    return n;
  }

  writev(buffers: readonly Uint8Array[]): number {
    const fd = this.live('writev', 'writev');
    const iov = iovec(buffers);
    // Why: vectored write; guest_memfd has no write_iter (EINVAL). Safety: as readv; the kernel only reads.
    const n = Number(this.c.writev(fd, iov, buffers.length));
    if (n < 0) throw syscallError(this.c.errno(), 'writev', 'writev', { count: buffers.length });
    return n;
  }

  sendfileTo(outFd: number, count: IntArg, offset?: IntArg): bigint {
    const fd = this.live('sendfileTo', 'sendfile');
    return this.#sendfile('sendfileTo', i32('outFd', outFd), fd, count, offset);
  }

  sendfileFrom(inFd: number, count: IntArg, offset?: IntArg): bigint {
    const fd = this.live('sendfileFrom', 'sendfile');
    return this.#sendfile('sendfileFrom', fd, i32('inFd', inFd), count, offset);
  }

  #sendfile(op: string, outFd: number, inFd: number, count: IntArg, offset: IntArg | undefined): bigint {
    const n = u64('count', count);
    const off = offset === undefined ? null : Buffer.alloc(8);
    off?.writeBigInt64LE(i64('offset', offset!));
    // Why: in-kernel copy between two fds. Safety: `off` is an 8-byte buffer the kernel reads and
    // updates, alive for the call; no memory of ours is passed otherwise.
    const r = BigInt(this.c.sendfile(outFd, inFd, off, n));
    if (r < 0n) throw syscallError(this.c.errno(), op, 'sendfile', { outFd, inFd, count, offset });
    return r;
  }

  fsync(): void {
    const fd = this.live('fsync', 'fsync');
    // Why: guest_memfd has no fsync operation (EINVAL).
    if (this.c.fsync(fd) < 0) throw syscallError(this.c.errno(), 'fsync', 'fsync');
  }

  fdatasync(): void {
    const fd = this.live('fdatasync', 'fdatasync');
    if (this.c.fdatasync(fd) < 0) throw syscallError(this.c.errno(), 'fdatasync', 'fdatasync');
  }

  fchmod(mode: number): void {
    const fd = this.live('fchmod', 'fchmod');
    // Why: kvm_gmem_setattr refuses every attribute change (EINVAL).
    if (this.c.fchmod(fd, u32Arg('mode', mode)) < 0) throw syscallError(this.c.errno(), 'fchmod', 'fchmod', { mode });
  }

  fchown(uid: number, gid: number): void {
    const fd = this.live('fchown', 'fchown');
    if (this.c.fchown(fd, u32Arg('uid', uid), u32Arg('gid', gid)) < 0) throw syscallError(this.c.errno(), 'fchown', 'fchown', { uid, gid });
  }

  getStatusFlags(): number {
    const fd = this.live('getStatusFlags', 'fcntl(F_GETFL)');
    // Why: the open file's status flags (shared by dups).
    const r: number = this.c.fcntl(fd, F_GETFL, 0);
    if (r < 0) throw syscallError(this.c.errno(), 'getStatusFlags', 'fcntl(F_GETFL)');
    return r;
  }

  setStatusFlags(flags: number): void {
    const fd = this.live('setStatusFlags', 'fcntl(F_SETFL)');
    // Why: change O_APPEND/O_NONBLOCK/O_NOATIME (O_DIRECT is EINVAL on guest_memfd).
    if (this.c.fcntl(fd, F_SETFL, i32('flags', flags)) < 0)
      throw syscallError(this.c.errno(), 'setStatusFlags', 'fcntl(F_SETFL)', { flags });
  }

  fionread(): number {
    const fd = this.live('fionread', 'ioctl(FIONREAD)');
    const out = Buffer.alloc(4);
    // Why: bytes readable; 6.18 does not answer it for anonymous inodes (ENOTTY). Safety: `out` is a
    // 4-byte buffer alive for the call; the kernel writes an int there.
    if (this.c.ioctlPtr(fd, FIONREAD, out) < 0) throw syscallError(this.c.errno(), 'fionread', 'ioctl(FIONREAD)');
    return out.readInt32LE(0);
  }

  reopen(access: number): KvmGuestMemfd {
    const fd = this.live('reopen', 'open');
    refuseReopenFlags(access, NATIVE_BACKEND);
    // Why: open the file again through its /proc magic link (ENXIO for an anonymous inode).
    const nfd: number = this.c.open(`/proc/self/fd/${fd}`, access | OPEN_CLOEXEC);
    if (nfd < 0) throw syscallError(this.c.errno(), 'reopen', 'open', { access });
    // A new open file of the same inode (never reached on 6.18: ENXIO).
    return new NativeGuestMemfd(this.c, nfd, this.size, this.flags, new NativeGmemFileRecord(this.file.vm, this.size, this.flags));
  }

  checkExtension(cap: IntArg): number {
    return checkExtensionOn(this.c, this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)'), cap);
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    const fd = this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    return createGuestMemfdOn(this.c, fd, args, (g, size, flags) => unownedGuestMemfd(this.c, g, size, flags));
  }
}

/**
 * A guest_memfd that a KVM ioctl on the wrong kind of fd returned (no probed kernel does): a handle
 * so the fd cannot leak, recorded under a VM this driver does not know.
 */
function unownedGuestMemfd(c: Libc, fd: number, size: bigint, flags: bigint): NativeGuestMemfd {
  return new NativeGuestMemfd(c, fd, size, flags, new NativeGmemFileRecord(new NativeVmRecord(-1), size, flags));
}

/** A `struct iovec[]` (16 bytes per entry) over `buffers`, built on the caller's memory (no copies). */
function iovec(buffers: readonly Uint8Array[]): Buffer {
  const iov = Buffer.alloc(16 * Math.max(1, buffers.length));
  buffers.forEach((b, i) => {
    iov.writeBigUInt64LE(b.byteLength ? bufferAddress(b) : 0n, 16 * i);
    iov.writeBigUInt64LE(BigInt(b.byteLength), 16 * i + 8);
  });
  return iov;
}

/** `unsigned int` arguments: -1 stands for 0xffffffff ("keep" in fchown). */
function u32Arg(field: string, v: number): number {
  return i32(field, v) >>> 0;
}

/**
 * A real host mapping of a guest_memfd, accessed through copies and checked first (see
 * {@link NativeMappingBase}). The SIGBUS rules are docs/kvm-guest-memfd.md §2.5, and they are static: a guest_memfd
 * never changes size, and its flags are fixed at creation.
 * - file created without GUEST_MEMFD_FLAG_INIT_SHARED → HostAccessFault for every page (6.18 has no
 *   in-place conversion, so no page of such a file is ever shared);
 * - page at or past EOF → HostAccessFault at that file offset; for writes the bytes before it are
 *   written first, like a `memset` that faults midway.
 *
 * What the pre-check cannot see (documented in README "Native driver"): hardware-poisoned pages
 * (CONFIG_MEMORY_FAILURE is off on the target machine, so none can exist there), an allocation
 * failure inside the fault handler (VM_FAULT_OOM: OOM kill or SIGBUS), and the address range being
 * replaced behind our back by other native code (e.g. a foreign munmap/MAP_FIXED).
 */
export class NativeMapping extends NativeMappingBase implements KvmGmemMapping {
  /** Per-page protection after `mprotect` (read by the access pre-check). */
  readonly #vmas: MappingVmas;
  readonly #mm: NativeMmTarget;
  /**
   * Everything before the first page that would SIGBUS: 0 for a private file, else up to EOF, capped
   * at the mapped pages.
   */
  protected readonly accessible: number;
  constructor(
    c: Libc,
    address: bigint,
    length: number,
    offset: bigint,
    prot: number,
    flags: number,
    private readonly fileSize: bigint,
    private readonly fileFlags: bigint,
    /** The mapped file: the mapping holds a reference to it until its memory goes. */
    private readonly file: NativeGmemFileRecord,
  ) {
    super(c, address, length, offset, prot, flags);
    file.get();
    this.#vmas = new MappingVmas(Math.ceil(length / 4096), prot);
    const self = this;
    this.#mm = {
      c,
      address,
      get mappedBytes() {
        return self.unmapped ? 0n : BigInt(Math.ceil(self.length / 4096) * 4096);
      },
      vmas: this.#vmas,
    };
    const untilEof = fileSize - offset;
    this.accessible =
      !(fileFlags & GUEST_MEMFD_FLAG_INIT_SHARED) || untilEof <= 0n ? 0 : untilEof < BigInt(this.mapped) ? Number(untilEof) : this.mapped;
  }

  protected override onUnmapped(): void {
    this.file.put();
  }

  protected override protRoom(start: number, len: number, needed: number): number {
    return this.#vmas.room(start, len, needed);
  }

  protAt(offset: IntArg): number {
    const off = u64('offset', offset);
    if (off >= BigInt(Math.ceil(this.length / 4096) * 4096)) {
      throw new GuestMemError({
        code: 'EFAULT',
        op: 'mapping.protAt',
        backend: NATIVE_BACKEND,
        detail: `offset ${off} is outside the mapping`,
        info: { offset },
      });
    }
    return this.#vmas.at(Number(off >> 12n)) & 7;
  }

  madvise(offset: IntArg, len: IntArg, advice: number): void {
    nativeMadvise(this.#mm, offset, len, advice);
  }

  mprotect(offset: IntArg, len: IntArg, prot: number): void {
    nativeMprotect(this.#mm, offset, len, prot);
  }

  mlock(offset: IntArg, len: IntArg, flags = 0): void {
    nativeMlock(this.#mm, offset, len, flags);
  }

  munlock(offset: IntArg, len: IntArg): void {
    nativeMunlock(this.#mm, offset, len);
  }

  protected fault(op: string, mappingOffset: number): HostAccessFault {
    const fileOffset = this.offset + BigInt(mappingOffset);
    const why = !(this.fileFlags & GUEST_MEMFD_FLAG_INIT_SHARED)
      ? 'the file is private (created without GUEST_MEMFD_FLAG_INIT_SHARED)'
      : `file offset ${fileOffset} is at or past EOF (${this.fileSize})`;
    return new HostAccessFault({ op: `mapping.${op}`, backend: NATIVE_BACKEND, offset: fileOffset, detail: why });
  }
}

/**
 * The native VM behind a `KvmVm` from `openKvm({ driver: 'native' })`, for the native-only vCPU API.
 * Throws EOPNOTSUPP for a simulated VM (the sim has no instruction emulator).
 */
export function asNativeVm(vm: KvmVm): NativeVm {
  if (vm instanceof NativeVm) return vm;
  throw new GuestMemError({
    code: 'EOPNOTSUPP',
    op: 'asNativeVm',
    backend: NATIVE_BACKEND,
    detail: 'vCPUs need the native driver: the simulated kernel has no instruction emulator',
  });
}
