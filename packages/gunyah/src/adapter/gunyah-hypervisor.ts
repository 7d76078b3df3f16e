/**
 * The neutral-interface adapter: `Hypervisor`/`Vm`/`GuestMemory`/`MemoryBinding` over the
 * simulated Gunyah uAPI. Lend ⇄ private, share ⇄ shared. Gunyah has no in-place conversion: a
 * conversion unmaps the affected part of the binding and maps it again with the other access value,
 * so it is subject to the reclaim rules (a lent page the guest locked refuses it with EBUSY).
 * Ioctl flags, fds and the DTB stay behind this file.
 */
import {
  HostMappedCounter,
  fileUsage,
  memoryReport,
  GuestMemError,
  PAGE_SIZE_N,
  HostViewSet,
  RangeStateMap,
  errnoCode,
  fileOffset,
  gmErr,
  gpa as toGpa,
  makeCapabilities,
  accessArg,
  checkBind,
  checkFileRange,
  checkGpaRange,
  checkMapRange,
  checkMemorySize,
  type BindOptions,
  type Capabilities,
  type ConvertOptions,
  type CreateGuestMemoryOptions,
  type CreateVmOptions,
  type FileOffset,
  type FolioAllocator,
  type Gpa,
  type GpaRange,
  type GuestMemory,
  type GuestMemoryStats,
  type HostView,
  type Hypervisor,
  type MemoryAccess,
  type MemoryBinding,
  type Vcpu,
  type Vm,
  type VmMemoryReport,
  guestAccessGpa,
  sharedViewOf,
  type SharedPart,
  memoryStats,
  refusePrivatePages,
} from '@guestmem/core';
import { GunyahSimVcpu } from './gunyah-vcpu.js';
import type { GuestAccess, GunyahGuestMem } from '../api.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GHMF_ALLOW_HUGEPAGE, encodeMapFlags } from '../uapi/index.js';
import { openGunyah, type SimDevice } from '../sim/device.js';
import { BACKEND } from '../sim/errors.js';
import { guardedTarget } from '../sim/leak-guard.js';
import type { SimGuestMem, SimHostMapping } from '../sim/guest-mem.js';
import type { SimVm } from '../sim/vm.js';
import type { GunyahGuestControls } from './guest-controls.js';

/** Options of {@link GunyahHypervisor}. */
export interface GunyahHypervisorOptions {
  /** Folio allocator shared with other files (the container's `FOLIO_ALLOCATOR`). */
  allocator?: FolioAllocator;
  rodataFull?: boolean;
  /**
   * The simulated guest cooperates with host-initiated removal (default true): before the adapter
   * unbinds or converts a range, the guest relinquishes the lent pages it holds there — sanitized,
   * except for `convert(…, { discard: false })` — as a guest following an unplug/conversion protocol
   * would. With false the adapter behaves like the raw uAPI: unbind/convert of pages the guest holds
   * fail with EBUSY.
   */
  guestCooperates?: boolean;
}

/**
 * Where the adapter places the VM's DTB (Gunyah cannot start a VM without one): the last page
 * below 2^40, the top of crosvm's 40-bit Gunyah IPA space, in its own shared 4 KiB file.
 */
export const ADAPTER_DTB_GPA = (1n << 40n) - PAGE_SIZE_N;

const MAX_SIZE = (1n << 63n) - PAGE_SIZE_N;

export const GUNYAH_SIM_CAPABILITIES: Capabilities = makeCapabilities({
  backend: BACKEND,
  simulated: true,
  caps: [
    'guest-memory',
    'host-map',
    'initially-shared',
    'private-memory',
    'convert-remap',
    'convert-keeps-contents',
    'huge-pages',
    'punch-hole',
    'guest-access',
    'unbind',
    'vcpu',
  ],
  pageSizes: [4096, 2 * 1024 * 1024],
  maxGuestMemorySize: MAX_SIZE,
  raw: { uapi: 'gunyah-v17', inPlaceConversion: false },
});

/** `Hypervisor` over the simulated Gunyah device. */
export class GunyahHypervisor implements Hypervisor {
  readonly id = BACKEND;
  readonly capabilities = GUNYAH_SIM_CAPABILITIES;
  /** The uAPI-level device underneath (for tests and diagnostics). */
  readonly device: SimDevice;
  readonly guestCooperates: boolean;
  private readonly vms = new Set<GunyahNeutralVm>();
  private closed = false;

  constructor(opts: GunyahHypervisorOptions = {}) {
    this.guestCooperates = opts.guestCooperates ?? true;
    this.device = openGunyah({ driver: 'sim', rodataFull: opts.rodataFull, allocator: opts.allocator });
  }

  createVm(_opts: CreateVmOptions = {}): Vm {
    // Every Gunyah VM is protected; `confidential` changes nothing.
    if (this.closed) throw gmErr('EBADF', 'createVm', BACKEND, 'the hypervisor was closed');
    const vm = new GunyahNeutralVm(this, this.device.createVm() as SimVm, () => this.vms.delete(vm));
    this.vms.add(vm);
    return vm;
  }

  /** Unmaps every host view, destroys every VM still alive, closes every memory. */
  close(): void {
    this.views.unmapAll();
    for (const vm of [...this.vms]) vm.destroy();
    for (const m of [...this.memories]) m.close();
    this.closed = true;
  }

  /** @internal Host views not yet unmapped (unmapped by {@link close}). */
  readonly views = new HostViewSet(BACKEND);

  /** @internal Guest-memory objects not yet closed by their user (closed by {@link close}). */
  readonly memories = new Set<GunyahGuestMemory>();
}

class GunyahGuestMemory implements GuestMemory {
  /** Adapter bindings (in any state of a conversion) that still name this file's fd. */
  private readonly users = new Set<GunyahMemoryBinding>();
  private userClosed = false;

  constructor(
    /** The VM that created it: only that VM may bind it (neutral rule, see `BindOptions.memory`). */
    readonly vm: GunyahNeutralVm,
    readonly mem: SimGuestMem,
    /**
     * Gunyah files can always be mmapped; the neutral API still honours `hostMappable: false` by
     * refusing `map()` with ENODEV (what KVM answers for a file without GUEST_MEMFD_FLAG_MMAP).
     */
    readonly hostMappable: boolean,
    initiallyShared: boolean,
  ) {
    this.pageAccess = new RangeStateMap<MemoryAccess>(initiallyShared ? 'shared' : 'private', mem.file.pages);
  }
  /**
   * Per file page, whether the host may access it: the neutral rule on top of v17's own (which
   * lets the host read every page a guest has not locked). Pages start private unless the memory
   * was created `initiallyShared`; a binding or conversion sets its pages' access; unbinding keeps
   * it (a private page stays private once the guest is gone). A host access to a private page is
   * SIGBUS, as on KVM.
   */
  readonly pageAccess: RangeStateMap<MemoryAccess>;
  setPageAccess(offset: bigint, len: bigint, access: MemoryAccess): void {
    this.pageAccess.set(Number(offset / PAGE_SIZE_N), Number((offset + len) / PAGE_SIZE_N), access);
  }
  /** Zeroes `[offset, offset+len)` through core (partial huge folios are zeroed, not dropped). */
  zeroPages(offset: bigint, len: bigint): void {
    this.mem.file.punchHole(offset, len);
  }
  /** SIGBUS at the first private page of view bytes `[at, at+len)` of a view at `offset`. */
  private checkHostAccess(op: string, offset: bigint, at: number, len: number): void {
    refusePrivatePages(this.pageAccess, op, BACKEND, offset, at, len);
  }
  get id(): number {
    return this.mem.fd;
  }
  get size(): bigint {
    return this.mem.size;
  }
  /** Closed for the caller; the fd itself stays open while a binding needs it (see {@link close}). */
  get closed(): boolean {
    return this.userClosed;
  }
  private assertOpen(op: string, syscall: string): void {
    if (this.userClosed) throw gmErr('EBADF', op, BACKEND, `memory fd ${this.mem.fd} was closed`, { syscall });
  }
  allocate(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('allocate', 'fallocate');
    const r = checkFileRange(offset, len, this.size, 'allocate', BACKEND);
    this.mem.fallocate(FALLOC_FL_KEEP_SIZE, r.offset, r.len);
  }
  /**
   * The uAPI punch drops what it can and fails on the folios the guest holds (v17 punches folio by
   * folio); the neutral punch is all-or-nothing, so the refusal is checked over the whole range first.
   */
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('punchHole', 'fallocate');
    const r = checkFileRange(offset, len, this.size, 'punchHole', BACKEND);
    // Neutral rule (c): a punch never changes bytes outside its range. v17 frees whole 2 MiB folios,
    // so on huge-page memory a punch must cover whole folios; a partial-folio punch is EINVAL.
    if (this.mem.huge && (r.offset % HUGE_BYTES || r.len % HUGE_BYTES)) {
      throw gmErr('EINVAL', 'punchHole', BACKEND, `huge-page memory punches whole 2 MiB folios: offset ${r.offset}, len ${r.len}`, {
        syscall: 'fallocate',
      });
    }
    const { first, end } = this.mem.punchRange(r.offset, r.len);
    const refusal = first < end ? this.mem.checkReclaim(first, end, 'punchHole', 'fallocate') : null;
    if (refusal) throw refusal;
    this.mem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, r.offset, r.len);
  }
  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    this.assertOpen('map', 'mmap');
    if (!this.hostMappable) throw gmErr('ENODEV', 'map', BACKEND, 'memory created without hostMappable', { syscall: 'mmap' });
    const { offset, length } = checkMapRange(opts, this.size, BACKEND);
    const m = this.mem.mmap({ offset, length });
    const unmapped = this.mapped.open(m.length);
    // The mapping's own length (rounded up to whole pages), as on every other backend.
    const guarded = {
      length: m.length,
      read: (at: number, len: number) => (this.checkHostAccess('read', offset, at, len), m.read(at, len)),
      write: (at: number, data: Uint8Array) => (this.checkHostAccess('write', offset, at, data.length), m.write(at, data)),
      fill: (at: number, len: number, byte: number) => (this.checkHostAccess('write', offset, at, len), m.fill(at, len, byte)),
    };
    return this.vm.hypervisor.views.add(guarded, () => {
      m.unmap();
      unmapped();
    });
  }
  private readonly mapped = new HostMappedCounter();
  /** Exact: the simulated file's own pages and folios; private pages are the lent (bound private) ones. */
  stats(): GuestMemoryStats {
    return memoryStats(this, this.vm, fileUsage(this.mem.file), this.mapped.bytes);
  }
  /** Gunyah's uAPI has no memory-failure injection (none among the ioctls of docs/gunyah-v17.md §1.2), so no 'poison-injection'. */
  markPoisoned(): void {
    throw gmErr('EOPNOTSUPP', 'markPoisoned', BACKEND, 'the Gunyah simulation does not model memory failure');
  }
  /**
   * Closes the memory for the caller. GUNYAH_VM_MAP_MEM names the file by fd on every UNMAP (unbind
   * and conversion), so the adapter keeps the fd until the last binding of it is gone — as a VMM
   * keeps a region's fd — and closes it then. The file's lifetime is unchanged: bindings pin it.
   */
  close(): void {
    if (this.userClosed) return;
    this.userClosed = true;
    this.vm.hypervisor.memories.delete(this);
    this.releaseFdIfUnused();
  }
  retain(b: GunyahMemoryBinding): void {
    this.users.add(b);
  }
  release(b: GunyahMemoryBinding): void {
    this.users.delete(b);
    this.releaseFdIfUnused();
  }
  private releaseFdIfUnused(): void {
    if (this.userClosed && this.users.size === 0 && this.mem.isOpen) this.mem.close();
  }
}

class GunyahMemoryBinding implements MemoryBinding {
  active = true;
  constructor(
    private readonly vm: GunyahNeutralVm,
    public gpa: Gpa,
    public size: bigint,
    readonly memory: GunyahGuestMemory,
    public offset: FileOffset,
    readonly readOnly: boolean,
    public access: MemoryAccess,
  ) {}
  get end(): bigint {
    return this.gpa + this.size;
  }
  unbind(): void {
    if (!this.active) return;
    this.vm.unbindAll(this);
  }
}

/** One binding's part of a conversion (see {@link GunyahNeutralVm.convert}). */
interface ConvertStep {
  b: GunyahMemoryBinding;
  /** The converted piece `[ps, pe)`. */
  ps: bigint;
  pe: bigint;
}

const HUGE_BYTES = 2n << 20n;

const MAP_MEM = 'ioctl(GUNYAH_VM_MAP_MEM)';

class GunyahNeutralVm implements Vm, GunyahGuestControls {
  readonly memoryState = new RangeStateMap<MemoryAccess>('shared');
  private readonly active: GunyahMemoryBinding[] = [];
  private dtbMem: GunyahGuestMem | undefined;
  destroyed = false;

  /**
   * The VM object behind the `sim` handle, for the guest-access hot paths (the handle forwards every
   * property). `sim` stays held here, so the handle lives as long as this VM.
   */
  private readonly raw: SimVm;

  constructor(
    readonly hypervisor: GunyahHypervisor,
    readonly sim: SimVm,
    private readonly onDestroy: () => void,
  ) {
    this.raw = guardedTarget(sim);
  }

  get id(): number {
    return this.sim.fd;
  }
  get capabilities(): Capabilities {
    return this.hypervisor.capabilities;
  }

  createGuestMemory(opts: CreateGuestMemoryOptions): GuestMemory {
    this.assertLive('createGuestMemory');
    // `initiallyShared` needs nothing on Gunyah: a file's pages are the host's until a lend binding
    // provides them to the guest. Access is chosen per binding (`BindOptions.access`).
    const size = checkMemorySize(opts, this.capabilities.maxGuestMemorySize, BACKEND);
    // v17 itself accepts GHMF_ALLOW_HUGEPAGE with any page-aligned size (23/35 checks only
    // PAGE_ALIGNED(size) and the flag bits), but every binding of such a file must be a 2 MiB
    // multiple at a 2 MiB-aligned offset (24/35 gunyah_gmem_init_binding), so the part past the last
    // 2 MiB boundary could never be bound inside the memory: the neutral API refuses the combination.
    if (opts.hugePages && size % HUGE_BYTES !== 0n) {
      throw gmErr(
        'EINVAL',
        'createGuestMemory',
        BACKEND,
        `hugePages needs a size that is a multiple of 2 MiB (got ${size}): Gunyah binds a hugepage file only in 2 MiB units`,
      );
    }
    const mem = this.hypervisor.device.createGuestMem({ flags: opts.hugePages ? GHMF_ALLOW_HUGEPAGE : 0n, size }) as SimGuestMem;
    const m = new GunyahGuestMemory(this, mem, opts.hostMappable ?? false, opts.initiallyShared ?? false);
    this.hypervisor.memories.add(m);
    return m;
  }

  private flags(access: MemoryAccess, readOnly: boolean): number {
    return encodeMapFlags(
      { access: access === 'private' ? 'lend' : 'share', read: true, write: !readOnly, exec: access === 'private' },
      this.hypervisor.device.layout,
    );
  }

  private mapPiece(
    memory: GunyahGuestMemory,
    gpa: bigint,
    offset: bigint,
    size: bigint,
    access: MemoryAccess,
    readOnly: boolean,
    unmap = false,
  ): void {
    const flags = this.flags(access, readOnly) | (unmap ? this.hypervisor.device.layout.GUNYAH_MEM_UNMAP : 0);
    this.sim.mapMem({ guestAddr: gpa, flags, guestMemFd: memory.id, offset, size });
  }

  private unmapPiece(b: GunyahMemoryBinding, gpa: bigint, size: bigint): void {
    this.mapPiece(b.memory, gpa, b.offset + (gpa - b.gpa), size, b.access, b.readOnly, true);
  }

  /** File pages `[first, end)` of `b` behind guest range `[from, to)`. */
  private filePages(b: GunyahMemoryBinding, from: bigint, to: bigint): { first: number; end: number } {
    return { first: Number((b.offset + (from - b.gpa)) / PAGE_SIZE_N), end: Number((b.offset + (to - b.gpa)) / PAGE_SIZE_N) };
  }

  /**
   * What UNMAP of `[from, to)` of `b` would refuse with, judged as if the cooperating guest had
   * relinquished its pages there first (see {@link GunyahHypervisorOptions.guestCooperates}).
   */
  private checkRemovable(b: GunyahMemoryBinding, from: bigint, to: bigint, op: string): GuestMemError | null {
    const { first, end } = this.filePages(b, from, to);
    const binding = this.sim.bindingAt(Number(b.gpa / PAGE_SIZE_N));
    return b.memory.mem.checkReclaim(first, end, op, MAP_MEM, { binding, assumeRelinquished: this.hypervisor.guestCooperates });
  }

  /** See {@link GunyahHypervisorOptions.guestCooperates}. */
  private relinquishForHost(start: bigint, end: bigint, sanitize: boolean): void {
    if (this.hypervisor.guestCooperates && end > start) this.sim.relinquish(start, Number((end - start) / PAGE_SIZE_N), sanitize);
  }

  /** Unbinds `b` entirely: check, the guest relinquishes (sanitized), UNMAP, forget. */
  unbindAll(b: GunyahMemoryBinding): void {
    const refusal = this.checkRemovable(b, b.gpa, b.end, 'unbind');
    if (refusal) throw refusal;
    this.relinquishForHost(b.gpa, b.end, true);
    this.unmapPiece(b, b.gpa, b.size);
    this.forget(b);
  }

  private track(b: GunyahMemoryBinding): void {
    this.active.push(b);
    b.memory.retain(b);
  }

  private forget(b: GunyahMemoryBinding): void {
    b.active = false;
    const i = this.active.indexOf(b);
    if (i >= 0) this.active.splice(i, 1);
    b.memory.release(b);
  }

  /**
   * Checks everything before the one uAPI call (GUNYAH_VM_MAP_MEM), and records the binding only
   * after it succeeded, so a failing bind changes nothing.
   */
  bind(opts: BindOptions): MemoryBinding {
    this.assertLive('bind');
    // v17 checks neither offset + size against the file size nor the 2^64 edge; core's neutral rules do.
    const {
      gpa: g,
      offset: off,
      size,
      access,
      readOnly,
    } = checkBind(opts, {
      backend: BACKEND,
      owns: (m) => m instanceof GunyahGuestMemory && m.vm === this,
      privateMemory: this.capabilities.has('private-memory'),
    });
    const memory = opts.memory as GunyahGuestMemory;
    this.mapPiece(memory, g, off, size, access, readOnly);
    const b = new GunyahMemoryBinding(this, toGpa(g), size, memory, fileOffset(off), readOnly, access);
    // A private page bound shared reads zero, as on KVM (whose shared side is separate memory):
    // its private bytes never reach the host.
    if (access === 'shared') {
      for (const r of memory.pageAccess.runs(Number(off / PAGE_SIZE_N), Number((off + size) / PAGE_SIZE_N))) {
        if (r.state === 'private') memory.zeroPages(BigInt(r.first) * PAGE_SIZE_N, BigInt(r.end - r.first) * PAGE_SIZE_N);
      }
    }
    memory.setPageAccess(off, size, access);
    this.track(b);
    this.sortActive();
    this.setState(g, size, access);
    return b;
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.active];
  }

  memoryReport(): VmMemoryReport {
    return memoryReport(
      this,
      [...this.hypervisor.memories].filter((m) => m.vm === this),
    );
  }

  private sortActive(): void {
    this.active.sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
  }

  /**
   * Gunyah conversion: every binding with a piece inside `range` whose access differs is UNMAPped
   * whole and MAPped back as up to three bindings (head and tail keep their access, the piece gets
   * `to`), since Gunyah has no in-place conversion and cannot split a binding.
   *
   * All-or-nothing, in this order:
   * 1. every check first: alignment (a hugepage file converts in 2 MiB units) and reclaimability
   *    of every binding to unmap, judged as if the cooperating guest had relinquished it;
   * 2. the cooperating guest relinquishes the lent pages of those bindings, without sanitizing
   *    (the data must survive a rollback); the pages it held locked are remembered;
   * 3. UNMAP + MAP, each step journalled. When one fails (ENOMEM, a refusal), the journal is undone
   *    in reverse — new pieces UNMAPped, old bindings MAPped back — the guest re-accepts the pages
   *    it held, and the error is thrown: bindings, states and data are as before;
   * 4. the adapter's bindings are replaced; the guest re-accepts the locked pages of parts that
   *    stayed private, so they stay out of the host's reach;
   * 5. pages converted to shared are zeroed (punched) unless `keepContents`, so private bytes never
   *    become host-visible by surprise; pages converted to private are punched with `discard`.
   * Parts of `range` no binding covers only change {@link memoryState} (as KVM's attributes do).
   */
  convert(range: GpaRange, to: MemoryAccess, opts: ConvertOptions = {}): void {
    this.assertLive('convert');
    const { gpa: start, size, end } = checkGpaRange(range, 'convert', BACKEND);
    accessArg(to, 'convert', BACKEND);
    const keep = opts.keepContents === true;
    const discard = !keep && (opts.discard ?? true);
    const plan: ConvertStep[] = this.active
      .filter((b) => b.gpa < end && b.end > start && b.access !== to)
      .map((b) => ({ b, ps: b.gpa > start ? b.gpa : start, pe: b.end < end ? b.end : end }));
    // 1. Checks.
    for (const { b, ps, pe } of plan) {
      if (b.memory.mem.huge && (ps % HUGE_BYTES || pe % HUGE_BYTES)) {
        throw gmErr('EINVAL', 'convert', BACKEND, `a hugepage binding converts in 2 MiB units: 0x${ps.toString(16)}..0x${pe.toString(16)}`);
      }
      const refusal = this.checkRemovable(b, b.gpa, b.end, 'convert');
      if (refusal) throw refusal;
    }
    // 2. The guest gives back what is unmapped; remember what it held.
    const locked: bigint[] = [];
    for (const { b } of plan) {
      if (b.access === 'private' && this.hypervisor.guestCooperates) locked.push(...this.lockedPages(b, b.gpa, b.end));
      this.relinquishForHost(b.gpa, b.end, false);
    }
    // 3. UNMAP + MAP with a journal.
    const undo: Array<() => void> = [];
    const replaced: Array<[GunyahMemoryBinding, GunyahMemoryBinding[]]> = [];
    try {
      for (const { b, ps, pe } of plan) {
        const mem = b.memory;
        const off = (g: bigint): bigint => b.offset + (g - b.gpa);
        this.unmapPiece(b, b.gpa, b.size);
        undo.push(() => this.mapPiece(mem, b.gpa, b.offset, b.size, b.access, b.readOnly));
        const pieces: Array<[bigint, bigint, MemoryAccess]> = [];
        if (b.gpa < ps) pieces.push([b.gpa, ps, b.access]);
        pieces.push([ps, pe, to]);
        if (pe < b.end) pieces.push([pe, b.end, b.access]);
        const made: GunyahMemoryBinding[] = [];
        for (const [s, e, a] of pieces) {
          this.mapPiece(mem, s, off(s), e - s, a, b.readOnly);
          undo.push(() => this.mapPiece(mem, s, off(s), e - s, a, b.readOnly, true));
          made.push(new GunyahMemoryBinding(this, toGpa(s), e - s, mem, fileOffset(off(s)), b.readOnly, a));
        }
        replaced.push([b, made]);
      }
    } catch (e) {
      this.rollback(undo, locked, e);
    }
    // 4. Commit. New bindings are tracked before the old one is forgotten, so a closed memory's
    // fd stays open throughout.
    for (const [b, made] of replaced) {
      for (const n of made) this.track(n);
      this.forget(b);
    }
    this.sortActive();
    for (const g of locked) if (this.bindingCovering(g)?.access === 'private') this.sim.vcpu(0).read(g, 1);
    // 5. Zero what became shared (unless kept), discard what became private.
    for (const { b, ps, pe } of plan) {
      if (to === 'shared' ? !keep : discard) b.memory.zeroPages(b.offset + (ps - b.gpa), pe - ps);
      b.memory.setPageAccess(b.offset + (ps - b.gpa), pe - ps, to);
    }
    this.setState(start, size, to);
  }

  /**
   * Undoes a failed conversion's uAPI steps in reverse and lets the guest re-accept the pages it
   * held, then throws `cause`. If an undo step itself fails, the VM's bindings no longer match the
   * adapter's: that is `EIO` with both errors, never silent.
   */
  private rollback(undo: Array<() => void>, locked: bigint[], cause: unknown): never {
    for (const step of undo.reverse()) {
      try {
        step();
      } catch (e) {
        throw new GuestMemError({
          code: 'EIO',
          op: 'convert',
          backend: BACKEND,
          syscall: MAP_MEM,
          detail: `the conversion failed (${String((cause as Error)?.message ?? cause)}) and undoing it failed too: ${String((e as Error)?.message ?? e)}`,
          info: { rollbackFailed: true, undoError: e },
          cause,
        });
      }
    }
    for (const g of locked) this.sim.vcpu(0).read(g, 1);
    throw cause;
  }

  /** The adapter binding covering `gpa`, if any. */
  private bindingCovering(gpa: bigint): GunyahMemoryBinding | undefined {
    return this.active.find((b) => b.gpa <= gpa && gpa < b.end);
  }

  /** GPAs of the pages of `[from, to)` of `b` the guest holds locked (lent and touched). */
  private lockedPages(b: GunyahMemoryBinding, from: bigint, to: bigint): bigint[] {
    const mem = b.memory.mem;
    const { first, end } = this.filePages(b, from, to);
    const out: bigint[] = [];
    for (const pf of mem.providedIn(first, end)) {
      for (let i = Math.max(pf.head, first); i < Math.min(pf.head + pf.nr, end); i++) {
        if (mem.pageState(i) === 'LENT_LOCKED') out.push(b.gpa + (BigInt(i) * PAGE_SIZE_N - b.offset));
      }
    }
    return out;
  }

  private setState(g: bigint, size: bigint, access: MemoryAccess): void {
    const first = Number(g / PAGE_SIZE_N);
    const end = Number((g + size) / PAGE_SIZE_N);
    if (end <= this.memoryState.limit) this.memoryState.set(first, end, access);
  }

  private readonly vcpus = new Set<Vcpu>();

  /** A vCPU running the image's op list through GUNYAH_VCPU_RUN's access path (see gunyah-vcpu.ts). */
  createVcpu(): Vcpu {
    this.assertLive('createVcpu');
    const v = new GunyahSimVcpu(
      this.vcpus.size === 0 ? 0 : Math.max(...[...this.vcpus].map((x) => x.id)) + 1,
      {
        sim: this.raw,
        ensureStarted: () => this.ensureStarted(),
        accessAt: (g) => this.active.find((b) => b.gpa <= g && g < b.end)?.access,
      },
      (x) => this.vcpus.delete(x),
    );
    this.vcpus.add(v);
    return v;
  }

  /**
   * The guest-memory files of share bindings by GPA (see `Vm.sharedView`): each part maps its file
   * range on first use. A lend (private) binding is part of the range but refuses every access with
   * `EACCES`: mapping it would make v17 reclaim the guest's pages, and the host never reads lent memory.
   */
  sharedView(range: GpaRange): HostView {
    this.assertLive('sharedView');
    const maps: { unmap(): void }[] = [];
    const parts: SharedPart[] = this.active.map((b) => {
      let m: ReturnType<SimGuestMem['mmap']> | undefined;
      const mapping = () => {
        if (b.access === 'private') throw gmErr('EACCES', 'sharedView', BACKEND, `0x${b.gpa.toString(16)} +${b.size} is lent to the guest`);
        if (!m) maps.push((m = b.memory.mem.mmap({ offset: b.offset, length: b.size })));
        return m;
      };
      return {
        gpa: b.gpa,
        size: b.size,
        read: (at, len) => mapping().read(at, len),
        readInto: (at, dst, off) => (mapping() as SimHostMapping).readInto(at, dst, off),
        write: (at, d) => mapping().write(at, d),
        fill: (at, len, byte) => mapping().fill(at, len, byte),
        get live() {
          return b.active;
        },
      };
    });
    const view = sharedViewOf(parts, range, BACKEND);
    // Tracked like every host view, so Hypervisor.close() ends it (and its file mappings).
    return this.hypervisor.views.add(view, () => {
      view.unmap();
      for (const m of maps.splice(0)) m.unmap();
    });
  }

  /**
   * Gunyah will not start without a DTB; the adapter supplies a one-page one at
   * {@link ADAPTER_DTB_GPA}, lent (v17 refuses a DTB in a share binding with ENOMEM). The VM starts
   * on the first guest access (GUNYAH_VM_START; v17 never starts a VM implicitly on vCPU run).
   */
  private ensureStarted(): void {
    if (this.raw.status === 'running') return;
    if (!this.dtbMem) {
      const dtb = this.hypervisor.device.createGuestMem({ flags: 0n, size: PAGE_SIZE_N });
      try {
        this.sim.mapMem({
          guestAddr: ADAPTER_DTB_GPA,
          flags: this.flags('private', false),
          guestMemFd: dtb.fd,
          offset: 0n,
          size: PAGE_SIZE_N,
        });
      } catch (e) {
        // Nothing half-done: the next access tries again (e.g. once the user unbound that GPA).
        dtb.close();
        throw e;
      }
      this.dtbMem = dtb;
      this.sim.setDtbConfig({ guestPhysAddr: ADAPTER_DTB_GPA, size: PAGE_SIZE_N });
    }
    this.sim.start();
  }

  /** The bytes of a completed access, else the neutral error for how it ended. */
  private settle(op: 'guestRead' | 'guestWrite', r: GuestAccess): Uint8Array {
    if (r.status === 'done') return r.data ?? new Uint8Array(0);
    if (r.status === 'mmio') {
      // An access the hypervisor hands to the VMM as MMIO (an address no binding backs, outside the
      // demand-paged ranges): no device here, so the neutral EFAULT; the exit stays in info.exit.
      throw new GuestMemError({
        code: 'EFAULT',
        op,
        backend: BACKEND,
        syscall: 'ioctl(GUNYAH_VCPU_RUN)',
        detail: `GUNYAH_VCPU_EXIT_MMIO at 0x${r.exit.physAddr.toString(16)} (${r.exit.isWrite ? 'write' : 'read'}, ${r.exit.len} bytes)`,
        info: { exit: r.exit },
      });
    }
    if (r.status === 'page-fault') {
      // The neutral API reports every unresolved guest access as EFAULT (poison as EHWPOISON); the
      // uAPI's own answer (-ENOENT unbound, -EPERM read-only…) stays in info.exit.attempt.
      const code = errnoCode(-r.exit.attempt) === 'EHWPOISON' ? 'EHWPOISON' : 'EFAULT';
      throw new GuestMemError({
        code,
        op,
        backend: BACKEND,
        syscall: 'ioctl(GUNYAH_VCPU_RUN)',
        detail: `GUNYAH_VCPU_EXIT_PAGE_FAULT at 0x${r.exit.physAddr.toString(16)}, attempt ${r.exit.attempt}`,
        info: { exit: r.exit },
      });
    }
    throw gmErr('EFAULT', op, BACKEND, `guest access ended with ${r.status}`);
  }

  // No closure per access, and a number GPA stays a number (the driver's fast path avoids BigInt).
  guestRead(g: bigint | number, len: number): Uint8Array {
    this.assertLive('guestRead');
    const gpa = guestAccessGpa(g, len, 'guestRead', BACKEND);
    this.ensureStarted();
    const v = this.raw.vcpu(0);
    if (typeof gpa === 'number') {
      const d = v.readIfFast(gpa, len);
      if (d !== undefined) return d;
    }
    return this.settle('guestRead', v.read(gpa, len));
  }

  guestWrite(g: bigint | number, data: Uint8Array): void {
    this.assertLive('guestWrite');
    const gpa = guestAccessGpa(g, data.length, 'guestWrite', BACKEND);
    this.ensureStarted();
    const v = this.raw.vcpu(0);
    if (typeof gpa === 'number' && v.writeIfFast(gpa, data)) return;
    const r = v.write(gpa, data);
    if (r.status !== 'done') this.settle('guestWrite', r);
  }

  /**
   * {@link GunyahGuestControls.reclaim}: the host takes back the provided folios of `range` (what
   * UNMAP, punch and mmap do first), keeping the bindings. All-or-nothing: EBUSY when a lent page
   * the guest holds is in it. The cooperating-guest option does not apply: this is the raw rule.
   */
  reclaim(range: GpaRange): void {
    this.assertLive('reclaim');
    const { gpa: start, end } = checkGpaRange(range, 'reclaim', BACKEND);
    const pieces = this.active
      .filter((b) => b.gpa < end && b.end > start)
      .map((b) => ({
        b,
        binding: this.sim.bindingAt(Number(b.gpa / PAGE_SIZE_N)),
        ...this.filePages(b, b.gpa > start ? b.gpa : start, b.end < end ? b.end : end),
      }));
    for (const p of pieces) {
      const refusal = p.b.memory.mem.checkReclaim(p.first, p.end, 'reclaim', undefined, { binding: p.binding });
      if (refusal) throw refusal;
    }
    for (const p of pieces) {
      const e = p.b.memory.mem.reclaim(p.first, p.end, 'reclaim', undefined, { binding: p.binding });
      if (e) throw e;
    }
  }

  /** {@link GunyahGuestControls.relinquish}: the test guest's hypercall 0x8069 over `range`. */
  relinquish(range: GpaRange, opts: { sanitize?: boolean } = {}): void {
    this.assertLive('relinquish');
    const { gpa: start, size } = checkGpaRange(range, 'relinquish', BACKEND);
    this.sim.relinquish(start, Number(size / PAGE_SIZE_N), opts.sanitize ?? false);
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const v of [...this.vcpus]) v.close();
    this.sim.close(); // reclaims everything, drops every binding's file reference
    for (const b of [...this.active]) this.forget(b);
    this.dtbMem?.close();
    this.destroyed = true;
    this.onDestroy();
  }

  private assertLive(op: string): void {
    if (this.destroyed) throw gmErr('EBADF', op, BACKEND, 'the VM was destroyed');
  }
}
