/**
 * The neutral-interface adapter: `Hypervisor`/`Vm`/`GuestMemory`/`MemoryBinding` over the
 * simulated Gunyah uAPI. Lend ⇄ private, share ⇄ shared. Gunyah has no in-place conversion: a
 * conversion unmaps the affected part of the binding and maps it again with the other access value,
 * so it is subject to the reclaim rules (a lent page the guest locked refuses it with EBUSY).
 * Ioctl flags, fds and the DTB stay behind this file.
 */
import {
  GuestMemError,
  PAGE_SIZE_N,
  RangeStateMap,
  hostView,
  errnoCode,
  fileOffset,
  gmErr,
  gpa as toGpa,
  makeCapabilities,
  toBig,
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
  type HostView,
  type Hypervisor,
  type MemoryAccess,
  type MemoryBinding,
  type Vm,
} from '@guestmem/core';
import type { GuestAccess, GunyahGuestMem } from '../api.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GHMF_ALLOW_HUGEPAGE, MAP_FLAG_LAYOUTS, encodeMapFlags, type LayoutName } from '../uapi/index.js';
import { openGunyah, type SimDevice } from '../sim/device.js';
import { BACKEND } from '../sim/errors.js';
import type { SimGuestMem } from '../sim/guest-mem.js';
import type { SimVm } from '../sim/vm.js';

/** Options of {@link GunyahHypervisor}. */
export interface GunyahHypervisorOptions {
  /** Map-flag bit layout of the simulated kernel (default v17). */
  layout?: LayoutName;
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
  caps: ['guest-memory', 'host-map', 'initially-shared', 'private-memory', 'convert-remap', 'huge-pages', 'punch-hole', 'guest-access'],
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
    this.device = openGunyah({ driver: 'sim', layout: opts.layout, rodataFull: opts.rodataFull, allocator: opts.allocator });
  }

  createVm(_opts: CreateVmOptions = {}): Vm {
    // Every Gunyah VM is protected; `confidential` changes nothing.
    if (this.closed) throw gmErr('EBADF', 'createVm', BACKEND, 'the hypervisor was closed');
    const vm = new GunyahNeutralVm(this, this.device.createVm() as SimVm, () => this.vms.delete(vm));
    this.vms.add(vm);
    return vm;
  }

  close(): void {
    for (const vm of [...this.vms]) vm.destroy();
    for (const m of [...this.memories]) m.close();
    this.closed = true;
  }

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
  ) {}
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
    this.assertOpen('fallocate', 'fallocate');
    this.mem.fallocate(FALLOC_FL_KEEP_SIZE, offset, len);
  }
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('fallocate', 'fallocate');
    this.mem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset, len);
  }
  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    this.assertOpen('mmap', 'mmap');
    if (!this.hostMappable) throw gmErr('ENODEV', 'map', BACKEND, 'memory created without hostMappable', { syscall: 'mmap' });
    const offset = toBig(opts.offset ?? 0);
    const m = this.mem.mmap({ offset, length: opts.length ?? Number(this.size - offset) });
    // The mapping's own length (rounded up to whole pages), as on every other backend.
    return hostView(m, () => m.unmap());
  }
  /** Gunyah's uAPI has no memory-failure injection (research §6), so no 'poison-injection'. */
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
  /** The converted piece. */
  ps: bigint;
  pe: bigint;
  /** What must be unmapped: the piece, or for a middle piece the piece and the binding's tail. */
  cutFrom: bigint;
  cutTo: bigint;
}

const HUGE_BYTES = 2n << 20n;

/** An exact integer argument as bigint; anything else (a fraction, NaN, past 2^53) is EINVAL. */
function intArg(v: bigint | number, op: string, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw gmErr('EINVAL', op, BACKEND, `${what} ${v} is not an exact integer (pass a bigint beyond 2^53)`);
  return BigInt(v);
}
const GPA_LIMIT = 1n << 64n;
const MAP_MEM = 'ioctl(GUNYAH_VM_MAP_MEM)';

class GunyahNeutralVm implements Vm {
  readonly memoryState = new RangeStateMap<MemoryAccess>('shared');
  private readonly active: GunyahMemoryBinding[] = [];
  private dtbMem: GunyahGuestMem | undefined;
  destroyed = false;

  constructor(
    readonly hypervisor: GunyahHypervisor,
    readonly sim: SimVm,
    private readonly onDestroy: () => void,
  ) {}

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
    const size = intArg(opts.size, 'createGuestMemory', 'size');
    // The neutral limit this backend advertises (capabilities.maxGuestMemorySize).
    if (size > MAX_SIZE) throw gmErr('EINVAL', 'createGuestMemory', BACKEND, `size ${size} is above the largest guest-memory size ${MAX_SIZE}`);
    const mem = this.hypervisor.device.createGuestMem({ flags: opts.hugePages ? GHMF_ALLOW_HUGEPAGE : 0n, size }) as SimGuestMem;
    const m = new GunyahGuestMemory(this, mem, opts.hostMappable ?? false);
    this.hypervisor.memories.add(m);
    return m;
  }

  private flags(access: MemoryAccess, readOnly: boolean): number {
    return encodeMapFlags({ access: access === 'private' ? 'lend' : 'share', read: true, write: !readOnly, exec: access === 'private' }, MAP_FLAG_LAYOUTS[this.hypervisor.device.layout.name]);
  }

  private mapPiece(memory: GunyahGuestMemory, gpa: bigint, offset: bigint, size: bigint, access: MemoryAccess, readOnly: boolean, unmap = false): void {
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
    const memory = opts.memory;
    if (!(memory instanceof GunyahGuestMemory) || memory.vm !== this) {
      throw gmErr('EINVAL', 'bind', BACKEND, 'the memory object was not created by this VM');
    }
    if (memory.closed) throw gmErr('EBADF', 'bind', BACKEND, 'the memory object is closed');
    const access = opts.access ?? (this.capabilities.has('private-memory') ? 'private' : 'shared');
    if (access !== 'private' && access !== 'shared') throw gmErr('EINVAL', 'bind', BACKEND, `access ${String(access)}`);
    const g = intArg(opts.gpa, 'bind', 'gpa');
    const size = intArg(opts.size, 'bind', 'size');
    const off = intArg(opts.offset, 'bind', 'offset');
    if (g < 0n || off < 0n || size <= 0n || g % PAGE_SIZE_N || off % PAGE_SIZE_N || size % PAGE_SIZE_N) {
      throw gmErr('EINVAL', 'bind', BACKEND, `gpa ${g}, offset ${off}, size ${size}: need >= 0, page-aligned, size > 0`);
    }
    if (g + size > GPA_LIMIT) throw gmErr('EINVAL', 'bind', BACKEND, `gpa 0x${g.toString(16)} + size ${size} is past 2^64`);
    // v17 does not check offset+size against the file size; the neutral contract does.
    if (off + size > memory.size) throw gmErr('EINVAL', 'bind', BACKEND, `[${off}, ${off + size}) is not inside the ${memory.size}-byte memory`);
    const readOnly = opts.readOnly ?? false;
    this.mapPiece(memory, g, off, size, access, readOnly);
    const b = new GunyahMemoryBinding(this, toGpa(g), size, memory, fileOffset(off), readOnly, access);
    this.track(b);
    this.sortActive();
    this.setState(g, size, access);
    return b;
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.active];
  }

  private sortActive(): void {
    this.active.sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
  }

  /**
   * Gunyah conversion: for each binding piece inside `range` whose access differs, UNMAP it (a
   * whole binding, its head, or — for a middle piece — the tail from the piece on, since Gunyah
   * cannot split a binding) and MAP the pieces back, the converted one with the other access value.
   *
   * Order, so that either everything converts or nothing changes:
   * 1. every check first: alignment (a hugepage file converts in 2 MiB units) and reclaimability
   *    of every piece to unmap, judged as if the cooperating guest had relinquished it;
   * 2. the cooperating guest relinquishes the converted pages (sanitized only with `discard`) and
   *    any other lent part that is unmapped and mapped back (not sanitized: its data stays private);
   * 3. UNMAP + MAP; the guest re-accepts the pages of a re-mapped private part it had locked, so
   *    they stay out of the host's reach;
   * 4. `discard` (default true) punches the converted pages, so neither side sees the other's old data.
   * Parts of `range` no binding covers only change {@link memoryState} (as KVM's attributes do).
   */
  convert(range: GpaRange, to: MemoryAccess, opts: ConvertOptions = {}): void {
    this.assertLive('convert');
    const start = intArg(range.gpa, 'convert', 'gpa');
    const size = intArg(range.size, 'convert', 'size');
    const end = start + size;
    if (start < 0n || start % PAGE_SIZE_N || size % PAGE_SIZE_N || size <= 0n || end > GPA_LIMIT) {
      throw gmErr('EINVAL', 'convert', BACKEND, 'range must be page-aligned, non-empty and inside 2^64');
    }
    if (to !== 'private' && to !== 'shared') throw gmErr('EINVAL', 'convert', BACKEND, `access ${String(to)}`);
    const discard = opts.discard ?? true;
    const plan: ConvertStep[] = this.active
      .filter((b) => b.gpa < end && b.end > start && b.access !== to)
      .map((b) => {
        const ps = b.gpa > start ? b.gpa : start;
        const pe = b.end < end ? b.end : end;
        return { b, ps, pe, cutFrom: ps, cutTo: ps === b.gpa ? pe : b.end };
      });
    // 1. Checks.
    for (const { b, ps, pe, cutFrom, cutTo } of plan) {
      if (b.memory.mem.huge && (ps % HUGE_BYTES || pe % HUGE_BYTES)) {
        throw gmErr('EINVAL', 'convert', BACKEND, `a hugepage binding converts in 2 MiB units: 0x${ps.toString(16)}..0x${pe.toString(16)}`);
      }
      const refusal = this.checkRemovable(b, cutFrom, cutTo, 'convert');
      if (refusal) throw refusal;
    }
    // 2. The guest gives back what is unmapped; which re-mapped private pages it must take back.
    const reaccept: bigint[] = [];
    for (const { b, ps, pe, cutTo } of plan) {
      this.relinquishForHost(ps, pe, discard);
      if (cutTo > pe && b.access === 'private' && this.hypervisor.guestCooperates) {
        reaccept.push(...this.lockedPages(b, pe, cutTo));
        this.relinquishForHost(pe, cutTo, false);
      }
    }
    // 3. UNMAP + MAP. New bindings are tracked before the old one is forgotten, so a closed
    // memory's fd stays open throughout.
    for (const { b, ps, pe, cutFrom, cutTo } of plan) {
      const mem = b.memory;
      this.unmapPiece(b, cutFrom, cutTo - cutFrom);
      const off = (g: bigint): bigint => b.offset + (g - b.gpa);
      const pieces: Array<[bigint, bigint, MemoryAccess]> = [];
      if (b.gpa < cutFrom) pieces.push([b.gpa, cutFrom, b.access]); // kept head (still mapped)
      pieces.push([ps, pe, to]);
      if (pe < b.end) pieces.push([pe, b.end, b.access]);
      for (const [s, e, a] of pieces) {
        if (s >= cutFrom && e <= cutTo) this.mapPiece(mem, s, off(s), e - s, a, b.readOnly); // others stayed mapped
        this.track(new GunyahMemoryBinding(this, toGpa(s), e - s, mem, fileOffset(off(s)), b.readOnly, a));
      }
      this.forget(b);
    }
    this.sortActive();
    for (const g of reaccept) this.sim.vcpu(0).read(g, 1);
    // 4. Discard.
    if (discard) {
      for (const { b, ps, pe } of plan) {
        // Punch through core (partial huge folios are zeroed, not dropped: the neighbours keep data).
        b.memory.mem.file.punchHole(b.offset + (ps - b.gpa), pe - ps);
      }
    }
    this.setState(start, size, to);
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

  /** Gunyah will not start without a DTB; the adapter supplies a one-page one at {@link ADAPTER_DTB_GPA}. */
  private ensureStarted(): void {
    if (this.sim.status === 'running') return;
    if (!this.dtbMem) {
      const dtb = this.hypervisor.device.createGuestMem({ flags: 0n, size: PAGE_SIZE_N });
      try {
        this.sim.mapMem({ guestAddr: ADAPTER_DTB_GPA, flags: this.flags('shared', false), guestMemFd: dtb.fd, offset: 0n, size: PAGE_SIZE_N });
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

  private run(op: 'guestRead' | 'guestWrite', access: () => GuestAccess): Uint8Array {
    this.assertLive(op);
    this.ensureStarted();
    const r = access();
    if (r.status === 'done') return r.data ?? new Uint8Array(0);
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

  guestRead(g: bigint | number, len: number): Uint8Array {
    return this.run('guestRead', () => this.sim.vcpu(0).read(g, len));
  }

  guestWrite(g: bigint | number, data: Uint8Array): void {
    this.run('guestWrite', () => this.sim.vcpu(0).write(g, data));
  }

  destroy(): void {
    if (this.destroyed) return;
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
