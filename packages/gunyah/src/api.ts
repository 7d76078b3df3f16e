/**
 * The uAPI-level API of `@guestmem/gunyah`: one object per Gunyah fd, one method per ioctl or
 * file operation, errno-exact errors. Read it side by side with the v17 `include/uapi/linux/gunyah.h`.
 *
 * ```ts
 * const gh = openGunyah({ driver: 'sim' });
 * const mem = gh.createGuestMem({ flags: 0n, size: 2n << 20n });      // GUNYAH_CREATE_GUEST_MEM
 * const vm = gh.createVm();                                            // GUNYAH_CREATE_VM
 * vm.mapMem({ guestAddr: 0x8000_0000n, flags: F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_RWX, // F = MAP_FLAGS_V17
 *             guestMemFd: mem.fd, offset: 0n, size: 2n << 20n });      // GUNYAH_VM_MAP_MEM
 * const r = vm.vcpu(0).write(0x8000_0000n, bytes);                      // guest access (simulation)
 * ```
 *
 * Every failure is a `GuestMemError` with `backend: 'gunyah-sim'` and `syscall` naming the ioctl
 * or file operation (`'ioctl(GUNYAH_VM_MAP_MEM)'`, `'fallocate'`, `'mmap'`); a refused host access
 * is a `HostAccessFault` (code `'SIGBUS'`).
 */
import type { MapFlagLayout, ResumeAction, GunyahPageFaultExit, GunyahMmioExit, GunyahStatusExit } from './uapi/index.js';

/** Options of {@link openGunyah}. */
export interface OpenGunyahOptions {
  /** Only `'sim'` exists: no Gunyah hardware is available (a `native` slot is reserved). */
  driver: 'sim';
  /**
   * Whether the host kernel can unmap single pages from its direct map (arm64 `rodata=full`).
   * Default true. With false every LEND binding fails with EINVAL, as v17 does.
   */
  rodataFull?: boolean;
  /** Maximum number of open fds before EMFILE (default 1024). */
  maxFds?: number;
  /** Byte limit of folio memory (allocator limit → ENOMEM). Default: unlimited. */
  memoryLimit?: bigint;
  /**
   * How `GUNYAH_VCPU_RUN` treats `page_fault.resume_action` after a PAGE_FAULT exit.
   * - `'v17'` (default): never read back, as in the v17 code; the guest re-executes the access.
   * - `'proposed'`: the header's documented meaning — HANDLED skips the access, FAULT injects an
   *   abort into the guest, RETRY re-executes; another value is EINVAL.
   */
  pageFaultResume?: 'v17' | 'proposed';
  /**
   * `ftruncate(2)` on a guest-memory file.
   * - `'v17'` (default): the v17 inode is a regular file with no `setattr`, so the VFS resizes it
   *   through `simple_setattr` (grow or shrink), as Qualcomm's test VMM expects (`setlen`).
   * - `'fixed'`: the size is fixed at creation and ftruncate is EINVAL, what KVM's guest_memfd
   *   answers (`kvm_gmem_setattr`) and what a Gunyah port adding that `setattr` would answer.
   */
  truncate?: 'v17' | 'fixed';
}

/** `/dev/gunyah`. */
export interface Gunyah {
  readonly layout: MapFlagLayout;
  /** `GUNYAH_CREATE_VM`. `arg` must be 0 (Android14-6.1 checks it; assumed for v17). */
  createVm(arg?: number): GunyahVm;
  /**
   * `GUNYAH_CREATE_GUEST_MEM`: a guest-memory file **not tied to any VM**. EINVAL for an unknown
   * flag bit or a size that is 0 or not page-aligned. Reserved words are not checked (v17 quirk).
   */
  createGuestMem(args: { flags: bigint | number; size: bigint | number; reserved?: readonly bigint[] }): GunyahGuestMem;
  /** Raw ioctl entry for byte-level callers: `(fd of /dev/gunyah or a VM, request, arg struct bytes)`. */
  ioctl(fd: number, request: number, arg?: Uint8Array): number;
  /** Looks up an open guest-memory fd. */
  guestMem(fd: number): GunyahGuestMem | undefined;
  /** Accounting: open fds, live folios and bindings (for leak checks). */
  stats(): GunyahStats;
}

export interface GunyahStats {
  /** open fds other than /dev/gunyah itself */
  openFds: number;
  /** open VM fds */
  vms: number;
  /** open guest-memory fds (a closed file pinned only by bindings or mappings is not counted) */
  files: number;
  /** bindings of all open VMs */
  bindings: number;
  /** bytes of folio memory held by all files */
  folioBytes: bigint;
  /** folios currently provided to some VM */
  providedFolios: number;
  parcels: number;
}

/** Arguments of `GUNYAH_VM_MAP_MEM` (`struct gunyah_map_mem_args`). */
export interface MapMemArgs {
  guestAddr: bigint | number;
  /** Raw `gunyah_map_flags` word in the device's layout. Include UNMAP to unbind. */
  flags: number;
  guestMemFd: number;
  offset: bigint | number;
  size: bigint | number;
}

/** A VM fd. */
export interface GunyahVm {
  readonly fd: number;
  /** RM VMID, assigned at start (0 before). */
  readonly vmid: number;
  /**
   * The RM's view of the VM: 'no-state' until `start`; 'load' / 'ready' / 'init-failed' when a
   * start failed at that step (every later start is ENODEV); 'running'; 'exited' once the guest
   * powered off; 'closed' once the fd is gone.
   */
  readonly status: 'no-state' | 'load' | 'ready' | 'init-failed' | 'running' | 'exited' | 'closed';
  /**
   * `GUNYAH_VM_MAP_MEM`: record a binding (nothing is mapped until the guest faults) or, with
   * `GUNYAH_MEM_UNMAP` and the binding's exact flags, remove the whole binding, its head or its
   * tail (reclaiming that part first). Checks, in the kernel's order: bad fd / not a guest-memory
   * file → EINVAL (not EBADF); unknown bits, no R/W/X, access value not 0/1/2, unaligned
   * guest_addr/offset/size → EINVAL; then bind: hugepage file not 2 MiB-aligned → EINVAL, lend
   * without rodata=full → EINVAL, file range overlapping any binding of the file (any VM) →
   * EEXIST, GPA range overlapping a binding of this VM → EEXIST. Unbind: no binding with identical
   * flags and offset↔GPA relation containing the range → ENOENT; a middle piece → EINVAL; reclaim
   * refused → that errno (binding kept).
   */
  mapMem(args: MapMemArgs): void;
  /** `GUNYAH_VM_SET_DTB_CONFIG`: EOVERFLOW when guest_phys_addr + size wraps. */
  setDtbConfig(args: { guestPhysAddr: bigint | number; size: bigint | number }): void;
  /**
   * `GUNYAH_VM_SET_BOOT_CONTEXT`: `reg` = `GUNYAH_VM_BOOT_CONTEXT_REG(set, index)` with set X
   * (index ≤ 31), PC (0) or SP (≤ 2), else EINVAL; EINVAL once the VM left NO_STATE.
   */
  setBootContext(args: { reg: number; value: bigint | number }): void;
  /**
   * `GUNYAH_VM_START`. From NO_STATE: the DTB parcel — `size >> PAGE_SHIFT` pages from
   * `guest_phys_addr >> PAGE_SHIFT` (EINVAL when less than one page), inside one binding (ENOENT),
   * lent (a share binding gives ENOMEM), with no host mapping over a lent folio (EPERM) — is lent
   * through the RM; the lend bindings become demand-paged ranges; the vCPUs get their resources;
   * the VM runs. Returns at once while running; ENODEV in any other state, including after a
   * failed start (the VM stays in LOAD).
   */
  start(): void;
  /**
   * `GUNYAH_VM_ADD_FUNCTION`: `type` (only `GUNYAH_FN_VCPU` is modelled; others ENOENT),
   * `argSize` ≤ 256 (EINVAL), `arg` the copied argument (undefined = EFAULT). A vCPU needs a 4-byte
   * `gunyah_fn_vcpu_arg` (EINVAL) with a new id (EEXIST). Returns the vCPU fd.
   */
  addFunction(desc: { type: number; argSize: number; arg: Uint8Array | undefined }): number;
  /** `GUNYAH_VM_REMOVE_FUNCTION`: ENOENT when no function matches. */
  removeFunction(desc: { type: number; argSize: number; arg: Uint8Array | undefined }): void;
  /**
   * The vCPU function with this id, added (ADD_FUNCTION) when absent: the guest side of the model.
   * Its accesses run the vCPU, so they need a started VM (ENODEV otherwise).
   */
  vcpu(id?: number): GunyahVcpu;
  /** Current bindings of this VM, ordered by GPA. */
  bindings(): readonly BindingInfo[];
  /**
   * Closes the VM fd. Teardown: stop, remove every binding (reclaim + drop the file reference),
   * reclaim what is still provided, RM VM_RESET (auto-releasing accepted parcels), reclaim the DTB
   * parcel. Locked lent pages are forcibly returned by the reset (the guest no longer exists). The
   * files keep their contents.
   */
  close(): void;
}

export interface BindingInfo {
  guestAddr: bigint;
  offset: bigint;
  size: bigint;
  guestMemFd: number;
  flags: number;
  lend: boolean;
  write: boolean;
}

/**
 * What a guest access produced.
 * - `done`: the access completed (`data` for reads);
 * - `page-fault`: the vCPU exited to the VMM with `GUNYAH_VCPU_EXIT_PAGE_FAULT`. `run` is the
 *   40-byte `gunyah_vcpu_run` block; call `resume(action)` (default: the block's resume_action,
 *   FAULT) to continue: `retry` re-executes the access (e.g. after adding a binding), `fault`
 *   injects an abort into the guest, `handled` skips the access as emulated by the VMM.
 * - `guest-abort`: the fault was injected into the guest; nothing was read or written.
 * - `handled`: the VMM declared the access handled; nothing was read or written.
 */
export type GuestAccess =
  | { status: 'done'; data?: Uint8Array }
  | { status: 'page-fault'; exit: GunyahPageFaultExit; run: Uint8Array; resume(action?: ResumeAction): GuestAccess }
  /**
   * `GUNYAH_VCPU_EXIT_MMIO`: an access the hypervisor handed to the VMM (≤ 8 bytes). `resume`
   * sets `mmio.resume_action` (default: what the block holds, HANDLED) and, for a read, the bytes
   * the guest reads; HANDLED completes the access, FAULT injects an abort, RETRY re-executes.
   */
  | { status: 'mmio'; exit: GunyahMmioExit; run: Uint8Array; resume(action?: ResumeAction, data?: Uint8Array): GuestAccess }
  /** `GUNYAH_VCPU_EXIT_STATUS`: the VM is not running any more. */
  | { status: 'vm-exited'; exit: GunyahStatusExit }
  | { status: 'guest-abort'; gpa: bigint; attempt: number }
  | { status: 'handled' };

/** A simulated vCPU: guest reads/writes and the Qualcomm test guest's relinquish hypercall. */
export interface GunyahVcpu {
  readonly id: number;
  read(gpa: bigint | number, length: number): GuestAccess;
  write(gpa: bigint | number, data: Uint8Array): GuestAccess;
  /**
   * Instruction fetch. Lent memory is always mapped executable (RX/RWX); shared memory never is, so
   * a fetch from a share binding exits with attempt -EPERM.
   */
  exec(gpa: bigint | number): GuestAccess;
  /**
   * The test guest's page-relinquish hypercall (0x8069): unlock `pages` lent pages from `gpa`, so
   * the host can reclaim them; `sanitize` zeroes them first. Pages not lent to this VM are skipped.
   */
  relinquish(gpa: bigint | number, pages: number, opts?: { sanitize?: boolean }): void;
  /** The guest calls PSCI SYSTEM_OFF: the RM reports VM_EXITED (`exitType`, default SYSTEM_OFF 1). */
  systemOff(exitType?: number, reason?: Uint8Array): void;
}

/** A guest-memory fd. */
export interface GunyahGuestMem {
  readonly fd: number;
  readonly size: bigint;
  readonly flags: bigint;
  /**
   * fallocate(2): KEEP_SIZE mandatory and only PUNCH_HOLE / ZERO_RANGE besides it (EOPNOTSUPP);
   * offset/len page-aligned (EINVAL). PUNCH_HOLE reclaims from every VM first and fails if that is
   * refused. Anything else — **including ZERO_RANGE** — allocates (v17 quirk: it does not zero
   * existing data); past EOF → EINVAL; aborted signal → EINTR.
   */
  fallocate(mode: number, offset: bigint | number, len: bigint | number, opts?: { signal?: AbortSignal }): void;
  /**
   * mmap(2), MAP_SHARED only (private → EINVAL). First reclaims overlapping lent bindings (v17
   * code: from the mapping's start to the end of the binding); a refused reclaim fails the mmap.
   */
  mmap(args: { offset: bigint | number; length: bigint | number; shared?: boolean }): GunyahHostMapping;
  /**
   * ftruncate(2). v17 (default): length < 0 → EINVAL, > MAX_LFS_FILESIZE → EFBIG; otherwise the
   * size changes (`simple_setattr`): growing adds holes, shrinking drops the pages past the new
   * size (a huge folio across it keeps its memory, the part past EOF zeroed). Shrinking over a
   * folio still provided to a VM is refused with EBUSY (not v17: see the README). With
   * `truncate: 'fixed'`, EINVAL always.
   */
  ftruncate(length: bigint | number): void;
  /** Drops the fd. The file lives on while bindings or mappings reference it. */
  close(): void;
}

/**
 * A host mapping of a guest-memory file. Each access faults per page: a page currently lent is
 * reclaimed first, and if the hypervisor refuses, the access throws `HostAccessFault` (SIGBUS).
 */
export interface GunyahHostMapping {
  readonly offset: bigint;
  readonly length: bigint;
  read(at: bigint | number, length: number): Uint8Array;
  write(at: bigint | number, data: Uint8Array): void;
  /** memset of `[at, at+length)` with `byte`, page by page (no buffer of the fill's size). */
  fill(at: bigint | number, length: number, byte: number): void;
  /** munmap. */
  unmap(): void;
}
