/**
 * The simulated guest_memfd (docs/kvm-guest-memfd.md §2.2–§2.7): one core {@link GuestMemFile} per file (6.18 has
 * exactly one file per inode), whose {@link GuestMemOps} carry KVM's policy, plus the fd handle and
 * the host mapping.
 */
import { GuestMemError, GuestMemFile, PAGE_SIZE_N, type GuestMemOps } from '@guestmem/core';
import type { CreateGuestMemfdArgs, GuestMemfdStat, IntArg, KvmGuestMemfd, MmapArgs } from '../api.js';
import { encodeKvmCreateGuestMemfd, i32, i64, u64 } from './codecs.js';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_ZERO_RANGE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  PROT_EXEC,
  O_LARGEFILE,
  O_RDWR,
  S_IFREG,
} from '../uapi/constants.js';
import { sendfileFromGmem, sendfileToGmem, setStatusFlags } from './gmem-file-ops.js';
import { TASK_SIZE } from './address-space.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import type { SimKernel } from './kernel.js';
import { SimAnonMapping } from './anon-memory.js';
import { SimMapping } from './gmem-mapping.js';
import type { SimMemslot } from './memslot.js';
import type { SimVmState } from './vm-state.js';
import { refuseUnsafeMmapFlags } from '../mmap-policy.js';
import { refuseReopenFlags } from '../reopen-policy.js';
import { FdHandle } from '../fd-handle.js';
import { guardSimFd, unguard } from './leak-guard.js';

const I64_MAX = (1n << 63n) - 1n;
const U64_LIMIT = 1n << 64n;
const PAGE_MASK = PAGE_SIZE_N - 1n;

/** `FALLOC_FL_WRITE_ZEROES` (6.17+), part of the VFS mode mask at 6.18. */
const FALLOC_FL_WRITE_ZEROES = 0x80;
const FALLOC_FL_MODE_MASK =
  FALLOC_FL_PUNCH_HOLE |
  FALLOC_FL_COLLAPSE_RANGE |
  FALLOC_FL_ZERO_RANGE |
  FALLOC_FL_INSERT_RANGE |
  FALLOC_FL_UNSHARE_RANGE |
  FALLOC_FL_WRITE_ZEROES;

const MAP_TYPE = 0x0f;
/** `MAP_DROPPABLE` (6.11+): anonymous memory the kernel may drop under pressure. */
const MAP_DROPPABLE = 0x08;
const MAP_GROWSDOWN = 0x100;
const MAP_HUGETLB = 0x40000;
/** `MAP_32BIT`: place the mapping in the legacy window below 2 GiB. */
const MAP_32BIT = 0x40;
/**
 * `LEGACY_MAP_MASK` (include/linux/mman.h) as x86-64 spells it: the flags MAP_SHARED_VALIDATE accepts
 * for a file without FOP_MMAP_SYNC. It ends with `MAP_32BIT` (0x40), `MAP_ABOVE4G` (0x80, x86 only),
 * `MAP_HUGE_2MB` (21 << 26) and `MAP_HUGE_1GB` (30 << 26), so bits 6, 7 and 26–30 pass too (probed).
 */
const LEGACY_MAP_MASK =
  0x01 |
  0x02 |
  0x10 |
  0x20 |
  0x800 |
  0x1000 |
  0x4000000 |
  0x100 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000 |
  0x20000 |
  0x40000 |
  (0x40 | 0x80 | (21 << 26) | (30 << 26));

/**
 * One guest_memfd file: `struct file` + its inode + `struct kvm_gmem` (the VM's view). References
 * are core's: each fd and each mapping holds one; the last release runs {@link GuestMemOps.release}.
 */
export class SimGmemFile {
  readonly core: GuestMemFile<SimMemslot>;
  readonly ino: bigint;
  /** The open file's status flags (`f_flags`, F_GETFL/F_SETFL): `O_RDWR | O_LARGEFILE` at creation. */
  statusFlags = O_RDWR | O_LARGEFILE;

  constructor(
    readonly kernel: SimKernel,
    readonly vm: SimVmState,
    size: bigint,
    flags: bigint,
  ) {
    this.core = GuestMemFile.create(size, flags, this.ops(), { allocator: kernel.allocator });
    this.ino = kernel.allocIno();
    // Why: the file pins its VM (kvm_get_kvm in __kvm_gmem_create, docs/kvm-guest-memfd.md §2.2 step 7, §2.12).
    vm.get();
    kernel.liveGuestMemfds++;
  }

  /** The first binding overlapping file pages `[first, end)`, if any (`xa_find` on `bindings`). */
  findBinding(first: number, end: number): SimMemslot | undefined {
    return this.core.findOverlap(first, end)?.owner;
  }

  /**
   * `xa_store_range(bindings, first, end - 1, slot)`; the caller checked for overlaps. A range
   * reaching past EOF is possible through the 6.18 signed-overflow quirk (docs/kvm-guest-memfd.md §2.6 E1).
   */
  bind(slot: SimMemslot, first: number, end: number): void {
    this.core.bind(first, end, slot, { overlapCode: 'EINVAL', op: 'kvm_gmem_bind', allowPastEof: true });
  }

  /** `xa_store_range(bindings, …, NULL)` for `slot`. */
  unbind(slot: SimMemslot): void {
    this.core.unbind(slot);
  }

  private ops(): GuestMemOps<SimMemslot> {
    return {
      backend: SIM_BACKEND,
      // kvm_gmem_invalidate_begin: zap the SPTEs of every slot bound in the range (§2.7).
      invalidateBegin: (file, range) => {
        for (const b of file.bindingsIn(range.first, range.end)) b.owner.zapFilePages(range.first, range.end);
      },
      // kvm_gmem_fault_user_mapping: without INIT_SHARED every page is private, so every host
      // fault is SIGBUS, even after fallocate (docs/kvm-guest-memfd.md §2.5, probes PV2/PV3/PV5).
      hostAccess: (file) => (file.flags & GUEST_MEMFD_FLAG_INIT_SHARED ? 'allow' : 'sigbus'),
      // kvm_gmem_release: the slot survives as an orphan with gmem.file = NULL (§2.6, B51–B53).
      bindingDropped: (_file, slot) => slot.orphan(),
      release: () => {
        this.kernel.liveGuestMemfds--;
        // Why: kvm_put_kvm in kvm_gmem_release: the last guest_memfd may be what kept the VM alive.
        this.vm.put();
      },
    };
  }
}

/** Base of the simulated fd handles: `close()` removes the fd-table entry, then drops the reference. */
export abstract class SimFdHandle extends FdHandle {
  constructor(
    protected readonly kernel: SimKernel,
    fd: number,
  ) {
    super(fd, SIM_BACKEND);
    guardSimFd(this, kernel, fd);
  }

  protected release(fd: number): void {
    unguard(this);
    this.kernel.fds.remove(fd);
    this.onClose();
  }

  /** What dropping this fd's reference does to the object behind it (the GC safety net in `leak-guard.ts` does the same per fd kind). */
  protected abstract onClose(): void;
}

/** A guest_memfd fd (`KVM_CREATE_GUEST_MEMFD` or `dup`). */
export class SimGuestMemfd extends SimFdHandle implements KvmGuestMemfd {
  constructor(
    kernel: SimKernel,
    fd: number,
    readonly file: SimGmemFile,
  ) {
    super(kernel, fd);
  }

  get size(): bigint {
    return this.file.core.size;
  }

  get flags(): bigint {
    return this.file.core.flags;
  }

  fallocate(mode: IntArg, offset: IntArg, len: IntArg): void {
    const fail = (code: 'EINVAL' | 'EOPNOTSUPP' | 'EFBIG', detail: string) =>
      sysErr(code, 'fallocate', 'fallocate', detail, { mode, offset, len });
    this.live('fallocate', 'fallocate');
    const m = i32('mode', mode);
    const off = i64('offset', offset);
    const ln = i64('len', len);
    // vfs_fallocate (docs/kvm-guest-memfd.md §2.4, VFS rows 1–5, in this order).
    if (off < 0n || ln <= 0n) throw fail('EINVAL', 'offset < 0 or len <= 0');
    if (m & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE)) throw fail('EOPNOTSUPP', 'unknown mode bits');
    switch (m & FALLOC_FL_MODE_MASK) {
      case 0:
      case FALLOC_FL_UNSHARE_RANGE:
      case FALLOC_FL_ZERO_RANGE:
        break;
      case FALLOC_FL_PUNCH_HOLE:
        if (!(m & FALLOC_FL_KEEP_SIZE)) throw fail('EOPNOTSUPP', 'PUNCH_HOLE needs KEEP_SIZE');
        break;
      case FALLOC_FL_COLLAPSE_RANGE:
      case FALLOC_FL_INSERT_RANGE:
      case FALLOC_FL_WRITE_ZEROES:
        if (m & FALLOC_FL_KEEP_SIZE) throw fail('EOPNOTSUPP', 'mode does not take KEEP_SIZE');
        break;
      default:
        throw fail('EOPNOTSUPP', 'more than one mode');
    }
    // anon_inodefs has s_maxbytes = MAX_LFS_FILESIZE, so only a signed overflow is too big.
    if (off + ln > I64_MAX) throw fail('EFBIG', 'offset + len overflows loff_t');
    // kvm_gmem_fallocate (§2.4, guest_memfd rows 1–5).
    if (!(m & FALLOC_FL_KEEP_SIZE)) throw fail('EOPNOTSUPP', 'guest_memfd needs KEEP_SIZE');
    if (m & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) throw fail('EOPNOTSUPP', 'guest_memfd only allocates or punches');
    if ((off | ln) & PAGE_MASK) throw fail('EINVAL', 'offset and len must be page-aligned');
    const core = this.file.core;
    // Why: kvm_gmem_punch_hole never fails and ignores EOF; truncation zaps host PTEs, so mapped
    // ranges read zero afterwards (core frees the folios; HostMapping never caches pages).
    if (m & FALLOC_FL_PUNCH_HOLE) return core.punchHole(off, ln);
    if (off + ln > core.size) throw fail('EINVAL', `allocation [${off}, +${ln}) ends past EOF (${core.size})`);
    try {
      core.allocate(off, ln);
    } catch (e) {
      throw GuestMemError.is(e) ? sysErr(e.code, 'fallocate', 'fallocate', e.message, { ...e.info }) : e;
    }
  }

  mmap(args: MmapArgs): SimMapping | SimAnonMapping {
    const fail = (code: 'EINVAL' | 'ENOMEM' | 'EOVERFLOW' | 'EOPNOTSUPP' | 'EPERM' | 'ENODEV', detail: string) =>
      sysErr(code, 'mmap', 'mmap', detail, { length: args.length, prot: args.prot, flags: args.flags, offset: args.offset ?? 0 });
    this.live('mmap', 'mmap');
    refuseUnsafeMmapFlags(args.flags, SIM_BACKEND, args.address);
    const length = u64('length', args.length);
    const offset = BigInt.asUintN(64, i64('offset', args.offset ?? 0));
    const hint = u64('address', args.address ?? 0);
    const prot = i32('prot', args.prot);
    const flags = i32('flags', args.flags);
    // x86 sys_mmap checks the offset before anything else.
    if (offset & PAGE_MASK) throw fail('EINVAL', 'offset is not page-aligned');
    // ksys_mmap_pgoff: MAP_HUGETLB on a file that is not hugetlbfs.
    if (flags & MAP_HUGETLB) throw fail('EINVAL', 'MAP_HUGETLB on a non-hugetlbfs file');
    // do_mmap.
    if (length === 0n) throw fail('EINVAL', 'length 0');
    const alen = (length + PAGE_MASK) & ~PAGE_MASK;
    if (alen >= U64_LIMIT) throw fail('ENOMEM', 'length overflows when page-aligned');
    const pgoff = offset >> 12n;
    if (pgoff + (alen >> 12n) >= U64_LIMIT) throw fail('EOVERFLOW', 'pgoff + pages overflows');
    // get_unmapped_area.
    if (alen > TASK_SIZE) throw fail('ENOMEM', 'length exceeds the user address space');
    const fixed = flags & MAP_FIXED_NOREPLACE ? hint : undefined;
    if (fixed !== undefined && fixed & PAGE_MASK) throw fail('EINVAL', 'MAP_FIXED_NOREPLACE address is not page-aligned');
    const placement = { hint, below2G: (flags & MAP_32BIT) !== 0 };
    this.kernel.addressSpace.place(alen, fixed, placement);
    if (flags & MAP_ANONYMOUS) {
      // Why: ksys_mmap_pgoff never looks at the fd of a MAP_ANONYMOUS request, and do_mmap's
      // anonymous branch takes only SHARED (not GROWSDOWN), PRIVATE and DROPPABLE (probed: the real
      // kernel maps anonymous memory reading zero, whatever the guest_memfd's flags).
      const type = flags & MAP_TYPE;
      if (type === MAP_SHARED && flags & MAP_GROWSDOWN) throw fail('EINVAL', 'MAP_GROWSDOWN on a shared anonymous mapping');
      if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_DROPPABLE)
        throw fail('EINVAL', 'no valid MAP_TYPE for anonymous memory');
      return this.kernel.addressSpace.map(
        alen,
        (address) => new SimAnonMapping(this.kernel, address, Number(length), prot, flags),
        fixed,
        placement,
      );
    }
    // file_mmap_ok: the range must fit under MAX_LFS_FILESIZE.
    if (alen > I64_MAX || pgoff > (I64_MAX - alen) >> 12n) throw fail('EOVERFLOW', 'offset + length beyond MAX_LFS_FILESIZE');
    switch (flags & MAP_TYPE) {
      case MAP_SHARED:
      case MAP_PRIVATE:
        break;
      case MAP_SHARED_VALIDATE:
        if (flags & ~LEGACY_MAP_MASK) throw fail('EOPNOTSUPP', 'MAP_SHARED_VALIDATE with flags the file does not support');
        break;
      default:
        throw fail('EINVAL', 'no valid MAP_TYPE');
    }
    // Why: anon_inodefs is mounted noexec, so the VFS refuses PROT_EXEC before guest_memfd sees
    // the call (docs/kvm-guest-memfd.md §2.5, probe MM7; this comes before ENODEV and the MAP_PRIVATE EINVAL).
    if (prot & PROT_EXEC) throw fail('EPERM', 'PROT_EXEC on a noexec mount');
    if (flags & MAP_GROWSDOWN) throw fail('EINVAL', 'MAP_GROWSDOWN on a file mapping');
    // kvm_gmem_mmap.
    const core = this.file.core;
    if (!(core.flags & GUEST_MEMFD_FLAG_MMAP)) throw fail('ENODEV', 'guest_memfd created without GUEST_MEMFD_FLAG_MMAP');
    if ((flags & MAP_TYPE) === MAP_PRIVATE) throw fail('EINVAL', 'guest_memfd mappings must be MAP_SHARED');
    return this.kernel.addressSpace.map(
      alen,
      (address) => new SimMapping(this.kernel, core, address, Number(length), offset, prot, flags),
      fixed,
      placement,
    );
  }

  fstat(): GuestMemfdStat {
    this.live('fstat', 'fstat');
    // st_blocks stays 0 even after allocation (docs/kvm-guest-memfd.md §2.3, FA28/G7b).
    return { dev: SIM_ANON_INODEFS_DEV, ino: this.file.ino, nlink: 1, mode: S_IFREG | 0o600, size: this.size, blksize: 4096, blocks: 0n };
  }

  read(len: number): Uint8Array {
    this.live('read', 'read');
    new Uint8Array(len); // the caller's buffer, as native allocates it (RangeError on a bad length)
    // No FMODE_CAN_READ on guest_memfd (docs/kvm-guest-memfd.md §2.3, IO rows).
    throw sysErr('EINVAL', 'read', 'read', 'guest_memfd has no read', { len });
  }

  write(data: Uint8Array): number {
    this.live('write', 'write');
    throw sysErr('EINVAL', 'write', 'write', 'guest_memfd has no write', { len: data.byteLength });
  }

  pread(len: number, offset: IntArg): Uint8Array {
    this.live('pread', 'pread');
    new Uint8Array(len);
    // ksys_pread64 rejects a negative position before looking at FMODE_PREAD.
    if (i64('offset', offset) < 0n) throw sysErr('EINVAL', 'pread', 'pread', 'negative offset', { len, offset });
    throw sysErr('ESPIPE', 'pread', 'pread', 'guest_memfd has no FMODE_PREAD', { len, offset });
  }

  pwrite(data: Uint8Array, offset: IntArg): number {
    this.live('pwrite', 'pwrite');
    if (i64('offset', offset) < 0n) throw sysErr('EINVAL', 'pwrite', 'pwrite', 'negative offset', { len: data.byteLength, offset });
    throw sysErr('ESPIPE', 'pwrite', 'pwrite', 'guest_memfd has no FMODE_PWRITE', { len: data.byteLength, offset });
  }

  lseek(offset: IntArg, whence: number): bigint {
    this.live('lseek', 'lseek');
    i64('offset', offset);
    // ksys_lseek rejects whence > SEEK_MAX (4) with EINVAL before vfs_llseek's ESPIPE (probe).
    if (i32('whence', whence) >>> 0 > 4) throw sysErr('EINVAL', 'lseek', 'lseek', 'whence > SEEK_MAX', { offset, whence });
    throw sysErr('ESPIPE', 'lseek', 'lseek', 'guest_memfd has no llseek', { offset, whence });
  }

  ftruncate(len: IntArg): void {
    this.live('ftruncate', 'ftruncate');
    i64('len', len);
    // A negative length is EINVAL in do_ftruncate; any other reaches kvm_gmem_setattr: EINVAL too.
    throw sysErr('EINVAL', 'ftruncate', 'ftruncate', 'guest_memfd size is fixed', { len });
  }

  /**
   * Sim-only memory-failure injection on the page at byte `offset` (what `MADV_HWPOISON` or debugfs
   * `corrupt-pfn` do on a real kernel; docs/kvm-guest-memfd.md §2.9, not testable on the probe machine). The page
   * is allocated if absent; KVM's `error_remove_folio` zaps its guest mappings and keeps the folio
   * (no truncate). Afterwards a guest fault on it gives EHWPOISON with a KVM_EXIT_MEMORY_FAULT, and
   * host access through any mapping SIGBUS, until the page is punched out.
   * Errors: EINVAL for an unaligned offset or one at or past EOF.
   */
  markPoisoned(offset: IntArg): void {
    this.live('markPoisoned', 'madvise(MADV_HWPOISON)');
    const off = u64('offset', offset);
    const core = this.file.core;
    if (off & PAGE_MASK || off >= core.size) {
      throw sysErr('EINVAL', 'markPoisoned', 'madvise(MADV_HWPOISON)', `offset ${off} is unaligned or past EOF`, { offset });
    }
    core.markPoisoned(Number(off >> 12n));
  }

  dup(): SimGuestMemfd {
    this.live('dup', 'dup');
    // A dup is one more reference to the same open file (docs/kvm-guest-memfd.md §2.12, B50).
    this.file.core.acquire();
    const fd = this.kernel.fds.install({ kind: 'gmem', file: this.file });
    return new SimGuestMemfd(this.kernel, fd, this.file);
  }

  readv(buffers: readonly Uint8Array[]): number {
    this.live('readv', 'readv');
    // vfs_readv: no FMODE_CAN_READ is EINVAL before the iovec is even imported (probed with 0, -1, 1025 entries).
    throw sysErr('EINVAL', 'readv', 'readv', 'guest_memfd has no read_iter', { count: buffers.length });
  }

  writev(buffers: readonly Uint8Array[]): number {
    this.live('writev', 'writev');
    throw sysErr('EINVAL', 'writev', 'writev', 'guest_memfd has no write_iter', { count: buffers.length });
  }

  sendfileTo(outFd: number, count: IntArg, offset?: IntArg): bigint {
    this.live('sendfileTo', 'sendfile');
    return sendfileFromGmem(this.kernel.fds, outFd, count, offset);
  }

  sendfileFrom(inFd: number, count: IntArg, offset?: IntArg): bigint {
    this.live('sendfileFrom', 'sendfile');
    return sendfileToGmem(this.kernel.fds, inFd, count, offset, this.file.statusFlags);
  }

  fsync(): void {
    this.live('fsync', 'fsync');
    // vfs_fsync_range: no f_op->fsync is EINVAL.
    throw sysErr('EINVAL', 'fsync', 'fsync', 'guest_memfd has no fsync');
  }

  fdatasync(): void {
    this.live('fdatasync', 'fdatasync');
    throw sysErr('EINVAL', 'fdatasync', 'fdatasync', 'guest_memfd has no fsync');
  }

  fchmod(mode: number): void {
    this.live('fchmod', 'fchmod');
    // notify_change → kvm_gmem_setattr, which refuses every change (virt/kvm/guest_memfd.c).
    throw sysErr('EINVAL', 'fchmod', 'fchmod', 'kvm_gmem_setattr refuses attribute changes', { mode });
  }

  fchown(uid: number, gid: number): void {
    this.live('fchown', 'fchown');
    // Even (-1, -1) reaches notify_change (ATTR_CTIME), hence kvm_gmem_setattr (probed).
    throw sysErr('EINVAL', 'fchown', 'fchown', 'kvm_gmem_setattr refuses attribute changes', { uid, gid });
  }

  getStatusFlags(): number {
    this.live('getStatusFlags', 'fcntl(F_GETFL)');
    return this.file.statusFlags;
  }

  setStatusFlags(flags: number): void {
    this.live('setStatusFlags', 'fcntl(F_SETFL)');
    this.file.statusFlags = setStatusFlags(this.file.statusFlags, flags);
  }

  fionread(): number {
    this.live('fionread', 'ioctl(FIONREAD)');
    // do_vfs_ioctl answers FIONREAD only for regular files that are not anonymous inodes (6.18,
    // S_ANON_INODE); vfs_ioctl then finds no unlocked_ioctl.
    throw sysErr('ENOTTY', 'fionread', 'ioctl(FIONREAD)', 'guest_memfd has no ioctls');
  }

  reopen(access: number): KvmGuestMemfd {
    this.live('reopen', 'open');
    refuseReopenFlags(access, SIM_BACKEND);
    // Opening an anonymous inode again through its /proc magic link is ENXIO (probed for every access mode).
    throw sysErr('ENXIO', 'reopen', 'open', 'an anonymous inode cannot be opened again', { access });
  }

  /** Not a guest_memfd ioctl: ENOTTY (guest_memfd has no unlocked_ioctl). */
  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    u64('cap', cap);
    throw sysErr('ENOTTY', 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', 'guest_memfd has no ioctls', { cap });
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    encodeKvmCreateGuestMemfd(args);
    throw sysErr('ENOTTY', 'createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)', 'guest_memfd has no ioctls', {
      size: args.size,
      flags: args.flags,
    });
  }

  protected onClose(): void {
    this.file.core.release();
  }
}

/**
 * `st_dev` of a simulated guest_memfd: the probe machine's anon_inodefs (`0:10`). A profile value:
 * the real number is assigned at boot (inference: stable for a given kernel build and config).
 */
export const SIM_ANON_INODEFS_DEV = 10n;

export { SimMapping };
