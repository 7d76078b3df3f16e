import type { FileOffset, Gpa } from '../types/brands.js';
import type { ReadonlyRangeStateMap } from '../state/range-state-map.js';
import type { GuestMemoryStats, VmMemoryReport } from './memory-stats.js';
import type { Vcpu } from './vcpu.js';

/**
 * The hypervisor-neutral API. VMM code written against these interfaces runs on every backend
 * (KVM native, KVM simulated, Gunyah simulated, yours). Nothing here mentions slots, ioctl flags or
 * VM types: those stay behind each backend's adapter.
 *
 * ## Numbers (one rule on every backend)
 * Every `bigint | number` argument (sizes, offsets, GPAs) must be an exact integer — a `number`
 * must be a safe integer, pass a `bigint` beyond 2^53 — inside its documented range. A fraction,
 * NaN, ±Infinity, a negative value or a value past its range is `EINVAL`, changes nothing, and the
 * message shows the value as the caller gave it (`-4096`, `NaN`), never an encoded form. Every
 * backend checks arguments with core's `validate.ts` (`checkBind`, `checkGpaRange`,
 * `checkFileRange`, `checkMapRange`, `checkMemorySize`) before touching its uAPI.
 *
 * ## Errors
 * Every error is a `GuestMemError` whose `backend` is the hypervisor's {@link Hypervisor.id}.
 */

/**
 * Whether guest accesses to a page go to private (guest-only) or shared (host-visible) memory.
 * A host access (through a {@link HostView}) to a private page fails with `SIGBUS` on every
 * backend; memory created without `initiallyShared` is private until a shared binding or a
 * conversion makes pages shared.
 */
export type MemoryAccess = 'private' | 'shared';

/**
 * Named capabilities, queried with {@link Capabilities.has}. Capabilities are an explicit query,
 * never optional methods: every method exists on every backend and fails with `EOPNOTSUPP` when its
 * capability is absent.
 */
export type CapabilityName =
  /** Guest memory lives in a file the host cannot freely map (guest_memfd, Gunyah guest-mem). */
  | 'guest-memory'
  /** `GuestMemory.map()` gives the host a view (KVM: GUEST_MEMFD_FLAG_MMAP). */
  | 'host-map'
  /** Memory can start shared/host-accessible (KVM: INIT_SHARED; Gunyah: share bindings). */
  | 'initially-shared'
  /** Some guest memory can be private: the host cannot read it. */
  | 'private-memory'
  /** `Vm.convert` flips shared⇄private in place, keeping the binding (KVM memory attributes). */
  | 'convert-in-place'
  /** `Vm.convert` works by unbinding and rebinding (Gunyah share⇄lend), which may fail on reclaim. */
  | 'convert-remap'
  /**
   * `convert(range, 'shared', { keepContents: true })` keeps the former private bytes, visible to
   * host and guest (the backend shares the same pages in place: Gunyah lend→share).
   */
  | 'convert-keeps-contents'
  /** 2 MiB folios. */
  | 'huge-pages'
  /** `GuestMemory.punchHole` frees memory. */
  | 'punch-hole'
  /** `Vm.guestRead/guestWrite` emulate guest accesses (simulated backends). */
  | 'guest-access'
  /** {@link GuestMemory.markPoisoned} injects a memory failure (simulated backends). */
  | 'poison-injection'
  /**
   * {@link MemoryBinding.unbind} removes a binding. Absent on Gunyah's Android (ACK) uAPI, which
   * has no way to remove a user-memory region: `unbind()` then fails with `EOPNOTSUPP`.
   */
  | 'unbind'
  /** {@link Vm.createVcpu} gives a vCPU that runs guest images (native: x86 code; simulated: the op list). */
  | 'vcpu';

/** What a hypervisor (or one VM of it) offers. */
export interface Capabilities {
  /** Backend id these capabilities describe. */
  readonly backend: string;
  /** True when this is a simulation (never true for a real kernel driver). */
  readonly simulated: boolean;
  /** The explicit capability query. */
  has(cap: CapabilityName): boolean;
  /** Every capability present. */
  list(): readonly CapabilityName[];
  /** Page sizes guest memory can be backed with, in bytes (4096, and 2 MiB with huge pages). */
  readonly pageSizes: readonly number[];
  /** Largest guest-memory size accepted, in bytes. */
  readonly maxGuestMemorySize: bigint;
  /** Backend-specific raw values for diagnostics (e.g. KVM capability numbers and answers). */
  readonly raw: Readonly<Record<string, number | bigint | string | boolean>>;
}

/** Options of {@link Vm.createGuestMemory}. */
export interface CreateGuestMemoryOptions {
  /** Size in bytes: > 0 and a multiple of 4096. */
  size: bigint | number;
  /** The host may map it ({@link GuestMemory.map}). Needs capability 'host-map'. Default false. */
  hostMappable?: boolean;
  /** Pages start shared (host-accessible). Needs 'initially-shared'. Default false (private). */
  initiallyShared?: boolean;
  /** Back with 2 MiB folios where aligned. Needs 'huge-pages'. Default false. */
  hugePages?: boolean;
}

/** A host view of guest memory (the mmap analogue): accessors that copy, never raw views. */
export interface HostView {
  /** Length in bytes. */
  readonly length: number;
  read(at: number, len: number): Uint8Array;
  /**
   * Copies `dst.length - dstOffset` bytes at `at` into `dst` from `dstOffset` on (no allocation:
   * the fast way to copy large ranges). Same checks and faults as {@link read}.
   */
  readInto(at: number, dst: Uint8Array, dstOffset?: number): void;
  write(at: number, data: Uint8Array): void;
  fill(at: number, len: number, byte: number): void;
  /** Ends the view (idempotent); it stops pinning the memory. */
  unmap(): void;
}

/**
 * A guest-memory object (KVM guest_memfd, Gunyah guest-mem file). It owns its backend handle: the
 * fd-leak class of bugs (vm-memory#315) cannot happen because the handle is closed by `close()`.
 */
export interface GuestMemory {
  /** Backend-scoped id (KVM/Gunyah: the fd number). */
  readonly id: number;
  readonly size: bigint;
  readonly hostMappable: boolean;
  readonly closed: boolean;
  /** Allocates backing for `[offset, offset+len)` (fallocate): page-aligned, `len > 0`, inside the memory, else `EINVAL`. */
  allocate(offset: bigint | number, len: bigint | number): void;
  /**
   * Frees backing for `[offset, offset+len)`; afterwards the range reads zero. May fail (Gunyah
   * reclaim). Never changes a byte outside the range: on memory created with `hugePages`, a punch
   * that does not cover whole 2 MiB folios (`offset` and `len` multiples of 2 MiB) is `EINVAL`
   * and changes nothing. `offset`/`len`: page-aligned, `len > 0`, inside the memory (`EINVAL`).
   */
  punchHole(offset: bigint | number, len: bigint | number): void;
  /**
   * Maps `[offset, offset+length)` for the host. Needs 'host-map'. `offset` (default 0) is
   * page-aligned and inside the memory, `length` (default: the rest) > 0 with
   * `offset + length <= size`, else `EINVAL`. Accesses to private pages fail with `SIGBUS`.
   * The view covers whole pages, as mmap does: its `length` is `length` rounded up to 4096.
   */
  map(opts?: { offset?: bigint | number; length?: number }): HostView;
  /**
   * Injects a memory failure on the page at `offset` (needs 'poison-injection', else `EOPNOTSUPP`):
   * afterwards a host access to it fails `SIGBUS` and a guest access `EHWPOISON`, until the page is
   * punched out. For testing a VMM's memory-failure handling without faulty hardware.
   */
  markPoisoned(offset: bigint | number): void;
  /**
   * A snapshot of what this object holds (QEMU's `query-memdev` analogue): size, allocated and
   * resident bytes, host-mapped bytes, bound ranges, private and shared pages, huge folios. Works on
   * a closed object too (its bindings may outlive it).
   */
  stats(): GuestMemoryStats;
  /**
   * Drops this handle (idempotent). Memory lives on while bindings or views pin it (backend rules).
   * Bindings made before stay usable: their `unbind()` still works after `close()`. A later
   * `Vm.bind` of it fails with `EBADF`.
   */
  close(): void;
}

/** Options of {@link Vm.bind}. */
export interface BindOptions {
  /**
   * A memory object created by this VM (`Vm.createGuestMemory`); another VM's is `EINVAL`, a closed
   * one `EBADF`.
   */
  memory: GuestMemory;
  /** Byte offset into `memory`: an integer >= 0, page-aligned, with `offset + size <= memory.size`. */
  offset: bigint | number;
  /**
   * Guest physical address: an integer >= 0, page-aligned, with `gpa + size < 2^64` — a binding
   * never ends exactly at 2^64 (the last bindable page is `2^64 - 8192`), because KVM computes the
   * end in u64 and refuses one that wraps to 0; every backend refuses it with `EINVAL`. A backend
   * may refuse high GPAs its hardware cannot address with `EINVAL` (x86 KVM refuses a slot past
   * its largest guest frame: measured on the probe machine, a slot must end at or below 2^52).
   */
  gpa: bigint | number;
  /** Bytes (page-aligned, > 0). Any violation of these rules is `EINVAL` and changes nothing. */
  size: bigint | number;
  /**
   * Initial access of the range. Default: 'private' when the VM has private memory (its
   * capability 'private-memory'), else 'shared' — whatever the memory's `initiallyShared`.
   */
  access?: MemoryAccess;
  /** The guest may only read. */
  readOnly?: boolean;
}

/** A range of a guest-memory object bound at a guest physical range. */
export interface MemoryBinding {
  readonly gpa: Gpa;
  readonly size: bigint;
  readonly memory: GuestMemory;
  readonly offset: FileOffset;
  readonly readOnly: boolean;
  /** False once unbound (explicitly, by VM destroy, or by the backend). */
  readonly active: boolean;
  /** Removes the binding. Data stays in the memory object. Needs capability 'unbind' (else `EOPNOTSUPP`, binding kept). */
  unbind(): void;
}

/** A guest physical range. */
export interface GpaRange {
  gpa: bigint | number;
  size: bigint | number;
}

/** Options of {@link Vm.convert}. */
export interface ConvertOptions {
  /**
   * Free the backing that is no longer used after the conversion (default true), as Cloud
   * Hypervisor and libkrun do: converting to shared punches the private pages.
   *
   * `discard: false` never makes private bytes host-visible: after a conversion to shared, the
   * guest and the host read the page's shared contents (zero on a backend with one copy per page,
   * whatever the shared side held on a backend with two), never its former private bytes.
   */
  discard?: boolean;
  /**
   * Private→shared only: keep the former private bytes, so host and guest read them after the
   * conversion (the guest shares data in place). Needs 'convert-keeps-contents', `EOPNOTSUPP`
   * (changing nothing) otherwise. Without it, private bytes never become host-visible by a
   * conversion. Implies no discard of the converted pages.
   */
  keepContents?: boolean;
}

/** A virtual machine's memory side. */
export interface Vm {
  readonly id: number;
  readonly hypervisor: Hypervisor;
  readonly capabilities: Capabilities;
  readonly destroyed: boolean;
  /** Current shared/private state per guest frame (gpa / 4096), with change listeners. */
  readonly memoryState: ReadonlyRangeStateMap<MemoryAccess>;
  createGuestMemory(opts: CreateGuestMemoryOptions): GuestMemory;
  bind(opts: BindOptions): MemoryBinding;
  /** Bindings currently active, by GPA. */
  bindings(): readonly MemoryBinding[];
  /**
   * Converts a GPA range to `to`. Needs 'convert-in-place' or 'convert-remap'; `EOPNOTSUPP`
   * otherwise. The range must be page-aligned and non-empty (`EINVAL`). Either the whole range
   * converts or nothing changes (e.g. a 'convert-remap' backend refusing reclaim: `EBUSY`, nothing
   * changed). Only the range converts: guest data outside it is kept. Parts of the range no binding
   * covers only change {@link memoryState} (KVM's memory attributes exist for unbound GPAs too; a
   * later `bind` sets its own `access` anyway).
   */
  convert(range: GpaRange, to: MemoryAccess, opts?: ConvertOptions): void;
  /**
   * Reads guest memory as the guest would see it. Needs 'guest-access'. An access the backend
   * cannot resolve (no binding, a read-only binding written, a private/shared mismatch) fails with
   * `EFAULT`, a poisoned page with `EHWPOISON`; the backend's own exit record is in `info`.
   */
  guestRead(gpa: bigint | number, len: number): Uint8Array;
  /** Writes guest memory as the guest would. Needs 'guest-access'. Errors as {@link guestRead}. */
  guestWrite(gpa: bigint | number, data: Uint8Array): void;
  /** {@link GuestMemory.stats} of every memory object this VM created that is still open, with totals. */
  memoryReport(): VmMemoryReport;
  /**
   * The host's side of guest memory by guest address, for device emulation and loading images:
   * offset 0 is `range.gpa`. It is what the host reaches for shared pages — KVM: each binding's
   * `userspace_addr` memory (the guest_memfd's own mapping, or anonymous memory on a VM with
   * private memory); Gunyah: the guest-memory file itself. Private pages are never readable
   * through it (KVM: the separate shared copy or zero; Gunyah: a lent page faults the access).
   * `range` must lie in bindings end to end (`EFAULT` for a hole, `EINVAL` for a bad range).
   * The view ends with `unmap()` or when a binding it uses goes away.
   */
  sharedView(range: GpaRange): HostView;
  /**
   * A new vCPU (capability 'vcpu', else `EOPNOTSUPP`). Closed with the VM at the latest.
   */
  createVcpu(): Vcpu;
  /** Tears the VM down: unbinds everything. Memory objects follow their backend's lifetime rules. */
  destroy(): void;
}

/** Options of {@link Hypervisor.createVm}. */
export interface CreateVmOptions {
  /** Ask for a VM whose memory can be private (KVM: SW_PROTECTED where offered). Default false. */
  confidential?: boolean;
}

/** One hypervisor backend instance. */
export interface Hypervisor {
  /** Backend id: 'kvm', 'kvm-sim', 'gunyah-sim', … */
  readonly id: string;
  readonly capabilities: Capabilities;
  createVm(opts?: CreateVmOptions): Vm;
  /**
   * Releases everything created through this hypervisor — unmaps every {@link HostView} still
   * mapped (including views of memory already closed), destroys every VM still alive, closes every
   * guest-memory object still open — then the hypervisor handle itself (e.g. /dev/kvm's fd).
   * Afterwards no fd or mapping it made remains, and an access through an old view fails with
   * `EFAULT` (or `EBADF`). Idempotent. A VMM that forgets a `close()` somewhere leaks nothing once
   * this runs.
   *
   * Safety net: fds, mappings and folios of objects that become unreachable without being closed
   * are released at garbage collection, with one `process.emitWarning` (code
   * `GUESTMEM_RELEASED_ON_GC`) naming them; memory a live binding or slot still uses is never
   * released that way.
   */
  close(): void;
}
