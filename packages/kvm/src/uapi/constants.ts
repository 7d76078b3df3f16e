/**
 * KVM guest_memfd constants at Linux 6.18 (docs/kvm-guest-memfd.md §1.3) and the VFS/mm constants the uAPI is used
 * with (fallocate modes, mmap protections and flags, lseek whence). All values are the x86-64 ones.
 * 64-bit flag words are `bigint`; flags that always fit in 32 bits are `number`.
 */

// ---- KVM_SET_USER_MEMORY_REGION(2) flags -------------------------------------------------------
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
/** v2-only: the region is bound to `[guest_memfd_offset, +memory_size)` of a guest_memfd. */
export const KVM_MEM_GUEST_MEMFD = 1 << 2;
/** Kernel-internal memslot flags, never accepted from or shown to userspace. */
export const KVM_MEMSLOT_INVALID = 1 << 16;
export const KVM_MEMSLOT_GMEM_ONLY = 1 << 17;
/** `KVM_USER_MEM_SLOTS` on x86 at 6.18 (`KVM_CAP_NR_MEMSLOTS` answers this on the probe machine). */
export const KVM_USER_MEM_SLOTS = 32764;

/** Builds the u32 `slot` field: address-space id in bits 16–31, slot id in bits 0–15. */
export function kvmSlot(asId: number, id: number): number {
  if (!Number.isInteger(asId) || asId < 0 || asId > 0xffff) throw new RangeError(`as_id ${asId} out of range`);
  if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`slot id ${id} out of range`);
  return ((asId << 16) | id) >>> 0;
}
/** Splits a u32 `slot` field into `{ asId, id }`. */
export function splitKvmSlot(slot: number): { asId: number; id: number } {
  return { asId: (slot >>> 16) & 0xffff, id: slot & 0xffff };
}

// ---- KVM_CREATE_GUEST_MEMFD flags ----------------------------------------------------------------
/** The file may be mmap()ed by the host (and a bound slot becomes "gmem-only"). */
export const GUEST_MEMFD_FLAG_MMAP = 1n << 0n;
/** All memory is shared (host-faultable) at creation; without it every page is private. */
export const GUEST_MEMFD_FLAG_INIT_SHARED = 1n << 1n;
/** Post-6.18 only (linux-next); on 6.18 this bit gives EINVAL. */
export const GUEST_MEMFD_FLAG_NO_DIRECT_MAP = 1n << 2n;

// ---- KVM_SET_MEMORY_ATTRIBUTES --------------------------------------------------------------------
export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1n << 3n;

// ---- exits (`kvm_run.exit_reason`) ----------------------------------------------------------------
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
/** Port I/O; `kvm_run.io` describes it and the data sits at `kvm_run + io.data_offset`. */
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
/** The guest executed `hlt` (no in-kernel irqchip). */
export const KVM_EXIT_HLT = 5;
/** An access to a GPA no memslot backs (or a write to a READONLY slot); `kvm_run.mmio` describes it. */
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
/** KVM_RUN returned -1 EINTR because a signal was pending. */
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_MEMORY_FAULT = 39;
/** `kvm_run.io.direction`. */
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
/** `kvm_run.internal.suberror`. */
export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1n << 3n;

// ---- x86 VM types (KVM_CREATE_VM argument; KVM_CAP_VM_TYPES is a bitmap of 1 << type) -------------
export const KVM_X86_DEFAULT_VM = 0;
export const KVM_X86_SW_PROTECTED_VM = 1;
export const KVM_X86_SEV_VM = 2;
export const KVM_X86_SEV_ES_VM = 3;
export const KVM_X86_SNP_VM = 4;
export const KVM_X86_TDX_VM = 5;

// ---- capabilities (KVM_CHECK_EXTENSION) ----------------------------------------------------------
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_MULTI_ADDRESS_SPACE = 118;
export const KVM_CAP_USER_MEMORY2 = 231;
export const KVM_CAP_MEMORY_FAULT_INFO = 232;
/** Answers the supported `KVM_MEMORY_ATTRIBUTE_*` bitmask (0 on a default VM). */
export const KVM_CAP_MEMORY_ATTRIBUTES = 233;
export const KVM_CAP_GUEST_MEMFD = 234;
/** Answers a bitmap of `1 << KVM_X86_*_VM`. */
export const KVM_CAP_VM_TYPES = 235;
export const KVM_CAP_PRE_FAULT_MEMORY = 236;
/** Answers the supported `GUEST_MEMFD_FLAG_*` bitmask (3 for a default VM at 6.18). Was `KVM_CAP_GUEST_MEMFD_MMAP` before release. */
export const KVM_CAP_GUEST_MEMFD_FLAGS = 244;

// ---- fallocate(2) modes --------------------------------------------------------------------------
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_NO_HIDE_STALE = 0x04;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;
export const FALLOC_FL_UNSHARE_RANGE = 0x40;

// ---- mmap(2) -------------------------------------------------------------------------------------
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
/** MAP_SHARED | MAP_PRIVATE: MAP_SHARED with unknown-flag validation. */
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_FIXED_NOREPLACE = 0x100000;
/** `(void *)-1` as an unsigned 64-bit address. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

// ---- madvise(2) advice (guest_memfd mappings and anonymous host memory) ---------------------------
export const MADV_NORMAL = 0;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_HUGEPAGE = 14;
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const MADV_DONTNEED_LOCKED = 24;
export const MADV_COLLAPSE = 25;
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;
export const MADV_GUARD_INSTALL = 102;
export const MADV_GUARD_REMOVE = 103;

// ---- lseek(2) whence -----------------------------------------------------------------------------
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

// ---- open(2) / memfd_create(2) flags -------------------------------------------------------------
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_LARGEFILE = 0o100000;
export const O_CLOEXEC = 0o2000000;
export const MFD_CLOEXEC = 0x1;

// ---- stat(2) -------------------------------------------------------------------------------------
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
