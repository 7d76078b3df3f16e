/**
 * The uAPI-level KVM API shared by both drivers: `'native'` (the real `/dev/kvm` through koffi) and
 * `'sim'` (the simulated 6.18 kernel). It is deliberately shaped like the syscalls — synchronous,
 * one method per ioctl or file operation, named after the kernel — so it can be read next to
 * `Documentation/virt/kvm/api.rst` and `virt/kvm/guest_memfd.c`.
 *
 * Conventions every driver follows:
 * - **Failures** throw a `GuestMemError` whose `code`/`errno` is the kernel's errno, with `syscall`
 *   naming the call (`'ioctl(KVM_CREATE_GUEST_MEMFD)'`, `'fallocate'`, `'mmap'`…), and `backend`
 *   `'kvm'` (native) or `'kvm-sim'`. The same failure gives the same `code` on both drivers.
 * - A host access the kernel would answer with **SIGBUS** throws a `HostAccessFault` (code
 *   `'SIGBUS'`) instead; the process is never signalled.
 * - **Numeric arguments** accept `bigint` or an exact (safe-integer) `number`. 64-bit values that
 *   the kernel returns (sizes, offsets, addresses) come back as `bigint`; small ones (fds, counts,
 *   capability answers) as `number`.
 * - **Handles own fds.** `close()` closes the fd exactly once. A closed handle behaves like a
 *   closed fd: every later call, including a second `close()`, throws `EBADF` without touching the
 *   fd number (which may have been reused by then).
 *
 * `openKvm()` (in `open.ts`) picks the driver.
 *
 * vCPUs (`KVM_CREATE_VCPU`, `KVM_GET/SET_REGS`, `KVM_GET/SET_SREGS`, `KVM_RUN`) are deliberately not
 * in these interfaces: running guest code needs an instruction emulator, which the simulated driver
 * does not have. They are a native API in `native/vcpu.ts` (`asNativeVm(vm).createVcpu(id)`); the
 * sim has a vCPU fd without an emulator (`SimKvmVm.createVcpu(id)`: its lifetime and guest-access
 * path, `SimVcpu.guestAccess`, like `SimKvmVm.guestRead`/`guestWrite`). On both, a vCPU fd holds a
 * reference to its VM and outlives the VM fd, as in the kernel.
 *
 * Memslots take their host memory as an owned mapping (`UserMemoryRegion.userspace`, see
 * {@link SlotUserspace}); a raw `userspace_addr` only through {@link KvmVm.unsafeSetUserMemoryRegion}.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import type { IntArg } from './uapi/codec-util.js';

export type { IntArg } from './uapi/codec-util.js';

/** Which implementation is behind a {@link Kvm}. */
export type KvmDriverKind = 'native' | 'sim';

/**
 * Which kernel the simulated driver reproduces:
 * - `'6.18'`: Linux 6.18 exactly, including its quirks (e.g. the signed-overflow in the REGION2
 *   offset check that accepts `guest_memfd_offset = 0x7ffffffffffff000`, docs/kvm-guest-memfd.md §2.6 E1);
 * - `'upstream'`: the newest code read (post-6.18 fixes).
 * The native driver is whatever kernel runs; its `profile` is always `'host'`.
 */
export type KvmProfile = '6.18' | 'upstream';

/** Options of `openKvm`. */
export interface OpenKvmOptions {
  /** `'native'`, `'sim'`, or `'auto'` (native when `probeNativeKvm().available`, else sim). */
  driver: KvmDriverKind | 'auto';
  /** Simulated kernel version (sim only; default `'6.18'`). Ignored by the native driver. */
  profile?: KvmProfile;
  /**
   * Sim only (default true): build the simulated kernel with `CONFIG_KVM_SW_PROTECTED_VM`, which
   * offers `KVM_X86_SW_PROTECTED_VM` (type 1) and `KVM_SET_MEMORY_ATTRIBUTES`. `false` reproduces a
   * host without it (such as the probe machine: ENOTTY, type 1 EINVAL). Ignored by the native driver,
   * which is whatever the running kernel was built with.
   */
  swProtectedVm?: boolean;
  /**
   * Native only: the KVM device, as a path (default `/dev/kvm`) or an fd already open on it (the
   * driver duplicates it; the caller keeps and closes its own). Ignored by the simulated driver.
   */
  device?: string | number;
}

/** A plain fd that is not a guest_memfd, for the "wrong kind of fd" cases of REGION2. */
export type OtherFdKind = 'memfd' | 'devnull';

/** An fd opened by {@link Kvm.openOtherFd}: a regular memfd (`memfd_create`) or `/dev/null`. */
export interface OtherFd {
  readonly kind: OtherFdKind;
  readonly fd: number;
  readonly closed: boolean;
  /** Closes the fd (once; later calls throw EBADF like a closed fd). */
  close(): void;
}

/**
 * The system fd: `open("/dev/kvm", O_RDWR | O_CLOEXEC)`.
 *
 * Lifetime: closing it does not affect VMs created from it (each VM fd pins the VM on its own).
 */
export interface Kvm {
  readonly driver: KvmDriverKind;
  /** Simulated kernel version, or `'host'` for the native driver. */
  readonly profile: KvmProfile | 'host';
  /** The `/dev/kvm` fd number (also a valid "not a guest_memfd" fd for REGION2 tests). */
  readonly fd: number;
  /** True once `close()` ran on this handle. */
  readonly closed: boolean;
  /**
   * `ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap)`: 0 when unsupported, otherwise a capability-specific
   * value (e.g. `KVM_CAP_GUEST_MEMFD_FLAGS` answers the supported `GUEST_MEMFD_FLAG_*` bitmask, 3 on
   * 6.18 without a VM context). Unknown capabilities answer 0.
   */
  checkExtension(cap: IntArg): number;
  /**
   * `ioctl(kvm_fd, KVM_CREATE_VM, type)` → a new VM. `type` is a `KVM_X86_*_VM` (default 0); a type
   * missing from `KVM_CAP_VM_TYPES` fails with EINVAL.
   */
  createVm(type?: IntArg): KvmVm;
  /** Opens a non-guest_memfd fd in this driver's fd space (see {@link OtherFd}). */
  openOtherFd(kind: OtherFdKind): OtherFd;
  /**
   * `mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`: ordinary anonymous
   * host memory (see {@link KvmAnonMapping}), usable as a memslot's `userspace` mapping.
   * It involves no fd, so it neither needs nor is tied to this handle: it also works after `close()`
   * and lives until `munmap()`. Errors: EINVAL for length 0; ENOMEM when the length exceeds the user
   * address space (the native kernel may also refuse lengths its overcommit policy rejects, e.g.
   * 1 TiB on a 23 GiB host with heuristic overcommit).
   */
  mmapAnonymous(length: IntArg): KvmAnonMapping;
  /**
   * The fds open in this driver's fd space: `/proc/self/fd` for native, the simulated fd table for
   * sim. Tests compare it before and after a suite to find leaks.
   */
  openFds(): number[];
  /** `close(kvm_fd)`. */
  close(): void;
}

/** Arguments of `KVM_CREATE_GUEST_MEMFD` (`struct kvm_create_guest_memfd`). */
export interface CreateGuestMemfdArgs {
  /** Bytes; must be > 0 as a signed 64-bit value and page-aligned (else EINVAL). Immutable afterwards. */
  size: IntArg;
  /** `GUEST_MEMFD_FLAG_*`; bits outside `KVM_CAP_GUEST_MEMFD_FLAGS` give EINVAL (checked before size). */
  flags: IntArg;
  /** `reserved[6]`: not checked by 6.18; tests pass non-zero values to prove it. */
  reserved?: readonly IntArg[];
}

/**
 * The host memory behind a memslot in the safe API: a mapping made by this driver
 * ({@link KvmGuestMemfd.mmap} or {@link Kvm.mmapAnonymous}) and a byte offset into it. The slot's
 * `userspace_addr` is `mapping.address + offset`; `[offset, offset + memorySize)` must lie inside the
 * mapping's pages (EINVAL otherwise), the mapping must come from this driver (EINVAL) and must not
 * be unmapped (EFAULT), all checked before the ioctl.
 *
 * While a slot references a mapping, the mapping's address range stays reserved: `munmap()` leaves
 * an inaccessible `PROT_NONE` placeholder (see {@link KvmMapping.addressReserved}) until the last
 * slot referencing it is deleted or its VM is destroyed, so the address is never reused under a live
 * slot and the guest faults instead of reaching other memory.
 */
export interface SlotUserspace {
  mapping: KvmMapping;
  /** Byte offset into the mapping (page-aligned, else the kernel's EINVAL). Default 0. */
  offset?: IntArg;
}

/**
 * `struct kvm_userspace_memory_region` (v1) in the safe form. `slot` is the u32 field: slot id in
 * bits 0–15 and address-space id in bits 16–31 (`kvmSlot(asId, id)`). `memorySize` 0 deletes the slot.
 */
export interface UserMemoryRegion {
  slot: IntArg;
  flags: IntArg;
  guestPhysAddr: IntArg;
  memorySize: IntArg;
  /**
   * The slot's host memory (see {@link SlotUserspace}). Omitted or null: `userspace_addr` 0, which KVM
   * accepts (no host memory: a guest_memfd slot of a gmem-only file, or MMIO). Raw addresses only
   * through {@link KvmVm.unsafeSetUserMemoryRegion}.
   */
  userspace?: SlotUserspace | null;
}

/**
 * `struct kvm_userspace_memory_region2` in the safe form. With `KVM_MEM_GUEST_MEMFD` in `flags`, the
 * slot is bound to `[guestMemfdOffset, guestMemfdOffset + memorySize)` of the guest_memfd whose fd
 * number is `guestMemfd` (it must come from this VM, else EINVAL; a closed fd gives EBADF).
 */
export interface UserMemoryRegion2 extends UserMemoryRegion {
  guestMemfdOffset: IntArg;
  /** An fd number, deliberately not a handle: tests pass closed fds, the VM fd, a memfd… */
  guestMemfd: IntArg;
}

/**
 * The raw `struct kvm_userspace_memory_region2` of {@link KvmVm.unsafeSetUserMemoryRegion}: any
 * `userspace_addr`. The guestmem-only fields default to 0.
 */
export interface RawUserMemoryRegion {
  slot: IntArg;
  flags: IntArg;
  guestPhysAddr: IntArg;
  memorySize: IntArg;
  /** Any host virtual address: nothing checks what is (or later will be) mapped there. */
  userspaceAddr: IntArg;
  guestMemfdOffset?: IntArg;
  guestMemfd?: IntArg;
}

/** `struct kvm_memory_attributes`. */
export interface MemoryAttributesArgs {
  address: IntArg;
  size: IntArg;
  /** `KVM_MEMORY_ATTRIBUTE_PRIVATE` or 0. */
  attributes: IntArg;
  /** Must be 0. */
  flags: IntArg;
}

/**
 * A VM fd (`KVM_CREATE_VM`).
 *
 * Lifetime (docs/kvm-guest-memfd.md §2.12): every guest_memfd created on the VM pins it, so closing the VM fd does
 * not destroy a VM that still has a guest_memfd file (the file keeps working). VM ioctls are only
 * allowed from the creating process (EIO otherwise).
 */
export interface KvmVm {
  readonly fd: number;
  /** True once `close()` ran on this handle. */
  readonly closed: boolean;
  /** The `KVM_CREATE_VM` type argument. */
  readonly type: number;
  /** `ioctl(vm_fd, KVM_CHECK_EXTENSION, cap)`: the per-VM answer (may differ from the system fd's). */
  checkExtension(cap: IntArg): number;
  /**
   * `ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args)` → a new guest_memfd (api.rst 4.142).
   * Errors in kernel order: EINVAL (unsupported flag), EINVAL (size ≤ 0 or unaligned), EMFILE/ENFILE,
   * ENOMEM. Nothing is allocated; the fd has no FD_CLOEXEC; the file pins this VM.
   */
  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd;
  /**
   * `ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region)` (api.rst 4.35). Flags beyond
   * `LOG_DIRTY_PAGES|READONLY` (including `KVM_MEM_GUEST_MEMFD`) give EINVAL. The slot's host memory
   * is an owned mapping ({@link SlotUserspace}).
   */
  setUserMemoryRegion(region: UserMemoryRegion): void;
  /**
   * `ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &region)` (api.rst 4.140). See docs/kvm-guest-memfd.md §2.6 for the
   * order of checks: slot range, flags, alignment, offset, address space, delete, immutable slot,
   * GPA overlap (EEXIST, before any guest_memfd check), then the bind (EBADF bad fd, EINVAL wrong
   * kind of fd / other VM / range / overlapping guest_memfd range).
   */
  setUserMemoryRegion2(region: UserMemoryRegion2): void;
  /**
   * **Unsafe**: `KVM_SET_USER_MEMORY_REGION2` (or, with `ioctl: 'REGION'`, the v1 ioctl) with a raw
   * `userspace_addr`, issued as given.
   *
   * # Safety
   *
   * The caller must guarantee that `[userspaceAddr, userspaceAddr + memorySize)` stays mapped to
   * memory the guest may read and write for as long as the slot exists — until the slot is deleted
   * or the VM (which vCPU fds and guest_memfd files keep alive) is destroyed — and that nothing else
   * is mapped there meanwhile. Otherwise the guest reads and writes whatever memory of this process
   * ends up at that address (reproduced on /dev/kvm: a slot left pointing at an unmapped anonymous
   * mapping lets a guest store land in the next mapping placed at that address). guestmem pins
   * nothing for such a slot. Prefer {@link setUserMemoryRegion2}; this exists for addresses guestmem
   * did not map and for differential tests of the kernel's own checks.
   */
  unsafeSetUserMemoryRegion(region: RawUserMemoryRegion, opts?: { ioctl?: 'REGION' | 'REGION2' }): void;
  /**
   * `ioctl(vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &attrs)` (api.rst 4.141). ENOTTY when the kernel lacks
   * `CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES` (the probe machine); on a default VM PRIVATE gives EINVAL.
   */
  setMemoryAttributes(attrs: MemoryAttributesArgs): void;
  /** `close(vm_fd)`. */
  close(): void;
}

/** The subset of `struct stat` that guest_memfd defines (docs/kvm-guest-memfd.md §2.3). */
export interface GuestMemfdStat {
  /** `st_size`: the creation size (immutable). */
  size: bigint;
  /** `st_blksize`: the page size, 4096. */
  blksize: number;
  /** `st_blocks`: always 0 for guest_memfd at 6.18, even after allocation. */
  blocks: bigint;
  /** `st_mode`: `S_IFREG | 0600` = 0o100600. */
  mode: number;
  /** `st_ino`: distinct per file. */
  ino: bigint;
  /** `st_nlink`: 1. */
  nlink: number;
}

/** Arguments of {@link KvmGuestMemfd.mmap}. */
export interface MmapArgs {
  /** Bytes; 0 gives EINVAL. May exceed the file (pages past EOF then SIGBUS on access). */
  length: IntArg;
  /** `PROT_*`. `PROT_EXEC` gives EPERM (anon_inodefs is noexec). */
  prot: number;
  /**
   * `MAP_*`. Must be shared (`MAP_PRIVATE` gives EINVAL). `MAP_FIXED` (without
   * `MAP_FIXED_NOREPLACE`) and `MAP_ANONYMOUS` (without `MAP_FIXED_NOREPLACE`) are refused with
   * EINVAL by every driver before any syscall: the first could replace memory of the Node process,
   * the second would not map the file. With `MAP_FIXED_NOREPLACE | MAP_ANONYMOUS` the call reaches
   * the kernel, which ignores the fd and maps **anonymous** memory (shared, private or droppable per
   * `MAP_TYPE`; reads zero; no guest_memfd rule applies; `offset` is ignored and reported as 0).
   */
  flags: number;
  /** File offset; page-aligned (else EINVAL). Default 0. May be at or past EOF. */
  offset?: IntArg;
  /**
   * The `addr` argument (default 0). Without `MAP_FIXED_NOREPLACE` a hint, as the kernel takes it:
   * used when the range there is free (rounded down to a page, raised to mmap_min_addr when below
   * it), else ignored; `MAP_32BIT` places the mapping below 2 GiB instead. With
   * `MAP_FIXED_NOREPLACE` the exact address, where every driver refuses an address below 64 KiB (a
   * missing one included) with EPERM before any syscall: as root the kernel would map page 0 of the
   * process (guestmem's NULL-page guard).
   */
  address?: IntArg;
}

/**
 * A guest_memfd file descriptor (docs/kvm-guest-memfd.md §2.2–§2.5).
 *
 * It supports only fallocate, mmap and fstat; read/write/pread/pwrite/lseek/ftruncate exist here
 * so callers can observe that they fail exactly as the kernel makes them fail.
 */
export interface KvmGuestMemfd {
  readonly fd: number;
  /** Creation size (what `fstat().size` reports). */
  readonly size: bigint;
  /** Creation flags (`GUEST_MEMFD_FLAG_*`). */
  readonly flags: bigint;
  /** True once `close()` ran on this handle. */
  readonly closed: boolean;
  /**
   * `fallocate(fd, mode, offset, len)`. guest_memfd needs `FALLOC_FL_KEEP_SIZE`; with
   * `FALLOC_FL_PUNCH_HOLE` it frees (and zaps every host and guest mapping of) the range, beyond
   * EOF being fine; without it it allocates and requires `offset + len <= size`. Errors (§2.4):
   * EINVAL (negative offset / len ≤ 0 / unaligned / past EOF), EOPNOTSUPP (missing KEEP_SIZE or
   * other mode bits), EFBIG, EINTR.
   */
  fallocate(mode: number, offset: IntArg, len: IntArg): void;
  /**
   * `mmap(addr, length, prot, flags, fd, offset)` → a host mapping. Errors: ENODEV (file without
   * `GUEST_MEMFD_FLAG_MMAP`), EINVAL (`MAP_PRIVATE`, length 0, unaligned offset), EPERM
   * (`PROT_EXEC`, checked before ENODEV), EOVERFLOW (offset + length overflows the page offset).
   * The mapping holds a file reference: it keeps working after `close()`.
   */
  mmap(args: MmapArgs): KvmMapping;
  /** `fstat(fd)`. */
  fstat(): GuestMemfdStat;
  /** `read(fd, buf, len)`: guest_memfd → EINVAL (no FMODE_CAN_READ). Returns the bytes read. */
  read(len: number): Uint8Array;
  /** `write(fd, data, len)`: guest_memfd → EINVAL. Returns the bytes written. */
  write(data: Uint8Array): number;
  /** `pread(fd, buf, len, off)`: guest_memfd → ESPIPE. */
  pread(len: number, offset: IntArg): Uint8Array;
  /** `pwrite(fd, data, len, off)`: guest_memfd → ESPIPE. */
  pwrite(data: Uint8Array, offset: IntArg): number;
  /** `lseek(fd, off, whence)`: guest_memfd → ESPIPE for every whence. Returns the new offset. */
  lseek(offset: IntArg, whence: number): bigint;
  /** `ftruncate(fd, len)`: guest_memfd → EINVAL for any length (the size is fixed). */
  ftruncate(len: IntArg): void;
  /** `dup(fd)`: another fd for the same open file (a file reference of its own). */
  dup(): KvmGuestMemfd;
  /**
   * `close(fd)`. When this was the last reference (no other fd, no mapping) the file is released:
   * its memory is freed, every memslot bound to it becomes an orphan (still present, still
   * occupying its GPA range, deletable), and its pin on the VM is dropped.
   */
  close(): void;
}

/**
 * A host mapping of a guest_memfd (`mmap` result), or anonymous memory ({@link KvmAnonMapping}).
 * Host access goes through the accessor methods (never raw pointers), so an access the kernel would
 * answer with a signal becomes a thrown error and the process is never signalled.
 *
 * The mapping covers `length` rounded up to whole pages, as the kernel maps it: every byte up to the
 * end of the last page is accessible. An access is judged in address order, like the CPU meets it,
 * and reports the first refused byte the way the kernel would:
 * - a PROT violation (read of `PROT_NONE`, write without `PROT_WRITE`): `GuestMemError` EFAULT with
 *   `info.signal` `'SIGSEGV'`, before any byte (it applies to the whole mapping, so it comes first);
 * - a page the kernel answers with SIGBUS (docs/kvm-guest-memfd.md §2.5: at or past EOF; every page of a file created
 *   without `GUEST_MEMFD_FLAG_INIT_SHARED`, even allocated ones): `HostAccessFault` with `offset` =
 *   the file offset of the first refused byte;
 * - a byte past the mapped pages: `GuestMemError` EFAULT with `info.signal` `'SIGSEGV'` (the kernel
 *   would reach whatever else is mapped there; guestmem never does).
 * A write stores the bytes before the refused one, exactly like `memset` in the kernel selftest
 * `fault_overflow`. After `munmap()` every access is EFAULT; a zero-length access never faults.
 */
export interface KvmMapping {
  /** Start address in the host address space (pass the mapping itself as a slot's `userspace`). */
  readonly address: bigint;
  /** Mapping length in bytes. */
  readonly length: number;
  /** File offset of the first mapped byte. */
  readonly offset: bigint;
  readonly prot: number;
  readonly flags: number;
  /** True once `munmap()` ran. */
  readonly unmapped: boolean;
  /**
   * True while the address range, already unmapped, is still held by an inaccessible `PROT_NONE`
   * placeholder because a memslot references it (see {@link SlotUserspace}); it is released when the
   * last such slot is deleted or its VM destroyed.
   */
  readonly addressReserved: boolean;
  /** Copies `len` bytes starting `offset` bytes into the mapping. */
  read(offset: IntArg, len: number): Uint8Array;
  /** Copies `data` into the mapping at `offset`. */
  write(offset: IntArg, data: Uint8Array): void;
  /** `memset(address + offset, byte, len)`. */
  fill(offset: IntArg, len: number, byte: number): void;
  /**
   * `munmap(address, length)`; drops the mapping's file reference. A second call does nothing (like
   * munmap of an unmapped range). While a memslot references the mapping, the range is replaced by a
   * `PROT_NONE` placeholder instead (same effect for this object, see {@link addressReserved}).
   */
  munmap(): void;
}

/**
 * Anonymous private host memory: `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS,
 * -1, 0)` (from {@link Kvm.mmapAnonymous}). This is a VMM's normal guest RAM (QEMU, Cloud Hypervisor,
 * the selftests' `VM_MEM_SRC_ANONYMOUS`) and, on a confidential (private-memory) VM, the **shared
 * side** of a guest_memfd slot: REGION2 takes "a valid guest_memfd (private memory) and
 * userspace_addr (shared memory)" (docs/kvm-guest-memfd.md §1.4), and a private-memory VM's guest_memfd cannot be
 * INIT_SHARED, so the shared pages live here.
 *
 * `offset` is 0, `prot` `PROT_READ|PROT_WRITE`, `flags` `MAP_PRIVATE|MAP_ANONYMOUS`. Every page reads
 * zero on first touch. In-range accesses never SIGBUS; out-of-range or after-`munmap()` accesses are
 * a `GuestMemError` EFAULT, as for any {@link KvmMapping}.
 */
export interface KvmAnonMapping extends KvmMapping {
  /**
   * `madvise(address + offset, len, advice)`, as Linux 6.18 answers it for this mapping (probed):
   * - EINVAL: an advice the kernel does not know (5–7, 26+, …); `address + offset` not page-aligned;
   *   `len` whose page round-up wraps; `MADV_REMOVE` (private anonymous memory has no file to punch).
   * - `len` rounding to 0 is a no-op (0).
   * - `MADV_DONTNEED` / `MADV_DONTNEED_LOCKED` free the pages: the range reads zero afterwards. Other
   *   known advice (`MADV_NORMAL`, `WILLNEED`, `FREE`, `HUGEPAGE`, `POPULATE_*`, …) keep the contents.
   *   `MADV_COLLAPSE` is EINVAL unless the mapping's VMA holds a 2 MiB-aligned 2 MiB block (the
   *   native VMA may be larger than the mapping when the kernel merged adjacent anonymous mappings).
   * - A range reaching outside the mapping (after its last page, before `address` through a negative
   *   offset, or anything after `munmap()`) is applied to the part inside and then fails with ENOMEM.
   * - The anonymous mappings a guest_memfd `mmap` with `MAP_FIXED_NOREPLACE | MAP_ANONYMOUS` returns
   *   follow their type: shared anonymous memory is shmem (`MADV_DONTNEED`/`_LOCKED` keep the
   *   contents, `MADV_REMOVE` frees them, `MADV_FREE` and `MADV_WIPEONFORK` are EINVAL); droppable
   *   memory (`MAP_DROPPABLE`) refuses `MADV_DOFORK`/`MADV_KEEPONFORK` and loses its pages on
   *   `MADV_PAGEOUT`.
   *
   * Two guestmem policies, identical on both drivers: the advice never reaches memory outside this
   * mapping (the kernel would apply it to whatever else is mapped there, e.g. an adjacent anonymous
   * mapping it merged into the same VMA; guestmem answers as if nothing were mapped there, ENOMEM), and
   * `MADV_HWPOISON`, `MADV_SOFT_OFFLINE` and `MADV_GUARD_INSTALL` are refused with EINVAL before any
   * syscall, because they make a later access signal the process.
   */
  madvise(offset: IntArg, len: IntArg, advice: number): void;
}

/**
 * The fd numbers open in this process, read from `/proc/self/fd` (the directory fd used for the
 * listing itself is excluded). Used by tests to detect leaks; sim drivers use `Kvm.openFds()`.
 */
export function openFds(): number[] {
  const listed = readdirSync('/proc/self/fd').map(Number);
  // The directory fd readdirSync used is closed again by now: keep only fds whose link still resolves.
  return listed
    .filter((fd) => {
      try {
        readlinkSync(`/proc/self/fd/${fd}`);
        return true;
      } catch {
        return false;
      }
    })
    .sort((a, b) => a - b);
}
