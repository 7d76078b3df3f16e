/**
 * The neutral-interface adapter over the simulated ACK Gunyah driver (`'gunyah-ack-sim'`).
 *
 * - Guest memory is host memory: `createGuestMemory` is a shmem mapping (a memfd mapped
 *   `MAP_SHARED`, as crosvm and Qualcomm's test VMM use) in the VMM's simulated process.
 * - `bind` private ⇄ `GH_VM_ANDROID_LEND_USER_MEM`, shared ⇄ `GH_VM_SET_USER_MEM_REGION`, with the
 *   memory's address + offset as `userspace_addr` and a fresh label per binding.
 * - What ACK lacks fails with `EOPNOTSUPP`, and the capabilities say so: no `'unbind'` (a region
 *   cannot be removed), no `'punch-hole'` (no guest-memory file to punch), no conversion (a region's
 *   lend/share is fixed by the ioctl that made it), no `'guest-memory'` (the memory is ordinary
 *   host memory the host keeps mapped).
 * - `reclaim` and `relinquish` ({@link GunyahGuestControls}) reach `GH_VM_RECLAIM_REGION` and the
 *   test guest's relinquish hypercall.
 */
import {
  GuestMemError,
  HostViewSet,
  PAGE_SIZE_N,
  RangeStateMap,
  checkBind,
  checkFileRange,
  checkGpaRange,
  checkMapRange,
  checkMemorySize,
  errnoCode,
  fileOffset,
  gmErr,
  gpa as toGpa,
  makeCapabilities,
  type BindOptions,
  type Capabilities,
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
  type UserMemory,
  type Vm,
  memoryReport,
  type GuestMemoryStats,
  type VmMemoryReport,
  guestAccessGpa,
  sharedViewOf,
  type SharedPart,
  type Vcpu,
  memoryStats,
  refusePrivatePages,
} from '@guestmem/core';
import { AckSimVcpu } from './ack-vcpu.js';
import { ACK_MAP_FLAGS as F, type AckGeneration } from '../uapi/index.js';
import { ACK_BACKEND } from '../sim/errors.js';
import { guardedTarget } from '../../sim/leak-guard.js';
import { openGunyahAck, type AckHost, type AckProcess } from '../sim/host.js';
import type { AckGuestAccess, AckVm } from '../sim/vm.js';
import type { GunyahGuestControls } from '../../adapter/guest-controls.js';

/** Options of {@link GunyahAckHypervisor}. */
export interface GunyahAckHypervisorOptions {
  /** ACK generation of the simulated kernel (default 'C', the 6.12 line). */
  generation?: AckGeneration;
  /** Folio allocator shared with other backends (the container's `FOLIO_ALLOCATOR`). */
  allocator?: FolioAllocator;
  /** RLIMIT_MEMLOCK of the VMM process in bytes (default unlimited, as crosvm users run it). */
  memlockLimit?: number;
}

/**
 * Largest guest memory: ACK guest memory is a mapping in the VMM's address space, so no memory
 * larger than the simulated process's mmap area (top-down from 0x7f00_0000_0000, core's
 * `UserAddressSpace`) can exist. 64 TiB fits in an empty process; a larger size is `EINVAL`
 * (the neutral rule for a size past `maxGuestMemorySize`), never an `ENOMEM` from a size the
 * capabilities said was accepted.
 */
const MAX_SIZE = 1n << 46n;
const HUGE_BYTES = 2n << 20n;

export const GUNYAH_ACK_SIM_CAPABILITIES = (generation: AckGeneration, line: string): Capabilities =>
  makeCapabilities({
    backend: ACK_BACKEND,
    simulated: true,
    caps: ['host-map', 'initially-shared', 'private-memory', 'huge-pages', 'guest-access', 'vcpu'],
    pageSizes: [4096, 2 * 1024 * 1024],
    maxGuestMemorySize: MAX_SIZE,
    raw: { uapi: 'gunyah-ack', generation, line, unbind: false, punchHole: false },
  });

/** `Hypervisor` over the simulated ACK Gunyah machine. */
export class GunyahAckHypervisor implements Hypervisor {
  readonly id = ACK_BACKEND;
  readonly capabilities: Capabilities;
  /** The uAPI-level machine underneath (for tests and diagnostics). */
  readonly host: AckHost;
  /** The simulated VMM process every VM and memory of this hypervisor belongs to. */
  readonly process: AckProcess;
  private readonly vms = new Set<AckNeutralVm>();
  /** @internal memory objects not yet closed by their user */
  readonly memories = new Set<AckGuestMemory>();
  /** @internal host views not yet unmapped (unmapped by {@link close}) */
  readonly views = new HostViewSet(ACK_BACKEND);
  private closed = false;

  constructor(opts: GunyahAckHypervisorOptions = {}) {
    this.host = openGunyahAck({ generation: opts.generation ?? 'C', allocator: opts.allocator, memlockLimit: opts.memlockLimit });
    this.process = this.host.current;
    this.capabilities = GUNYAH_ACK_SIM_CAPABILITIES(this.host.profile.generation, this.host.profile.line);
  }

  createVm(_opts: CreateVmOptions = {}): Vm {
    if (this.closed) throw gmErr('EBADF', 'createVm', ACK_BACKEND, 'the hypervisor was closed');
    const vm = new AckNeutralVm(this, this.host.createVm(), () => this.vms.delete(vm));
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
}

class AckGuestMemory implements GuestMemory {
  private userClosed = false;
  /** Bindings naming this memory's address (they keep it mapped). */
  private readonly users = new Set<AckMemoryBinding>();
  private mapped = true;
  /** Live host views (each keeps the mapping, as an mmap keeps a memfd's pages). */
  private views = 0;
  /** Total length of the live host views. */
  private viewBytes = 0n;

  constructor(
    readonly vm: AckNeutralVm,
    readonly memory: UserMemory,
    /** Host virtual address of the mapping (the `userspace_addr` of its bindings). */
    readonly address: bigint,
    readonly hostMappable: boolean,
    initiallyShared: boolean,
  ) {
    this.pageAccess = new RangeStateMap<MemoryAccess>(initiallyShared ? 'shared' : 'private', memory.pages);
  }
  /**
   * Per page, whether the host may access it: the neutral rule on top of ACK's own. ACK lets the
   * host touch every page a guest has not faulted in (and faults the rest at stage 2); the neutral
   * contract makes memory not created `initiallyShared`, and every page bound private, the guest's:
   * a host access to such a page is SIGBUS, as on KVM and the v17 adapter.
   */
  readonly pageAccess: RangeStateMap<MemoryAccess>;
  setPageAccess(offset: bigint, len: bigint, access: MemoryAccess): void {
    this.pageAccess.set(Number(offset / PAGE_SIZE_N), Number((offset + len) / PAGE_SIZE_N), access);
  }
  /**
   * Zeroes the private pages of `[offset, offset+len)` before they are bound shared, so their bytes
   * never reach the host: whole folios are discarded (`MADV_DONTNEED`; a guest that pinned one keeps
   * its old page, the new region sees a fresh zero page), a partial huge folio is zeroed in place.
   */
  zeroPrivate(offset: bigint, len: bigint): void {
    for (const run of this.pageAccess.runs(Number(offset / PAGE_SIZE_N), Number((offset + len) / PAGE_SIZE_N))) {
      if (run.state !== 'private') continue;
      const from = BigInt(run.first) * PAGE_SIZE_N;
      const size = BigInt(run.end - run.first) * PAGE_SIZE_N;
      if (!this.memory.hugePages || (from % HUGE_BYTES === 0n && size % HUGE_BYTES === 0n)) this.memory.discard(from, size);
      else this.memory.fill(from, Number(size), 0);
    }
  }
  /** SIGBUS at the first private page of view bytes `[at, at+len)` of a view at `offset`. */
  checkHostAccess(op: string, offset: bigint, at: number, len: number): void {
    refusePrivatePages(this.pageAccess, op, ACK_BACKEND, offset, at, len);
  }
  get id(): number {
    return this.memory.id;
  }
  get size(): bigint {
    return this.memory.size;
  }
  get closed(): boolean {
    return this.userClosed;
  }
  private assertOpen(op: string): void {
    if (this.userClosed) throw gmErr('EBADF', op, ACK_BACKEND, 'the memory was closed');
  }
  /** `MADV_POPULATE_WRITE`: faults the range in (zeroed). */
  allocate(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('allocate');
    const r = checkFileRange(offset, len, this.size, 'allocate', ACK_BACKEND);
    this.memory.populate(r.offset, r.len);
  }
  /**
   * ACK has no guest-memory file to punch: pages the guest holds are pinned, so discarding host
   * memory under them would leave the guest on the old pages. No 'punch-hole': EOPNOTSUPP.
   */
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('punchHole');
    checkFileRange(offset, len, this.size, 'punchHole', ACK_BACKEND);
    throw gmErr('EOPNOTSUPP', 'punchHole', ACK_BACKEND, 'the ACK uAPI has no guest-memory file to punch (capability punch-hole is absent)');
  }
  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    this.assertOpen('map');
    if (!this.hostMappable) throw gmErr('ENODEV', 'map', ACK_BACKEND, 'memory created without hostMappable', { syscall: 'mmap' });
    const { offset, length } = checkMapRange(opts, this.size, ACK_BACKEND);
    const len = Math.ceil(length / 4096) * 4096;
    const mem = this.memory;
    let live = true;
    const check = (op: string, at: number, n: number): bigint => {
      if (!live) throw gmErr('EFAULT', `host ${op}`, ACK_BACKEND, 'the view was unmapped');
      if (!(Number.isSafeInteger(at) && Number.isSafeInteger(n) && at >= 0 && n >= 0 && at + n <= len))
        throw gmErr('EFAULT', `host ${op}`, ACK_BACKEND, `[${at}, +${n}) is outside the ${len}-byte view`);
      this.checkHostAccess(op, offset, at, n);
      return offset + BigInt(at);
    };
    // The view is the VMM's own mapping: past the neutral check every access goes through the
    // host's stage 2 (a page lent to the guest takes a stage-2 fault: SIGBUS).
    this.views++;
    this.viewBytes += BigInt(len);
    return this.vm.hypervisor.views.add(
      {
        length: len,
        read: (at, n) => mem.read(check('read', at, n), n),
        readInto: (at, dst, dstOffset = 0) => mem.readInto(check('read', at, dst.length - dstOffset), dst, dstOffset),
        write: (at, data) => mem.write(check('write', at, data.length), data),
        fill: (at, n, byte) => mem.fill(check('write', at, n), n, byte),
      },
      () => {
        live = false;
        this.views--;
        this.viewBytes -= BigInt(len);
        this.unmapIfUnused();
      },
    );
  }
  stats(): GuestMemoryStats {
    // Over the present folios only: a page-by-page walk of a 64 TiB memory would never return.
    let hugeFolios = 0;
    this.memory.forEachFolio((_head, _folio, order) => {
      if (order === 9) hugeFolios++;
    });
    return memoryStats(this, this.vm, { allocatedBytes: BigInt(this.memory.pagesPresent) * PAGE_SIZE_N, hugeFolios }, this.viewBytes);
  }
  markPoisoned(): void {
    throw gmErr('EOPNOTSUPP', 'markPoisoned', ACK_BACKEND, 'the ACK simulation does not model memory failure');
  }
  /** Drops the handle; the mapping stays while a binding uses its address (ACK regions cannot be removed). */
  close(): void {
    if (this.userClosed) return;
    this.userClosed = true;
    this.vm.hypervisor.memories.delete(this);
    this.unmapIfUnused();
  }
  retain(b: AckMemoryBinding): void {
    this.users.add(b);
  }
  release(b: AckMemoryBinding): void {
    this.users.delete(b);
    this.unmapIfUnused();
  }
  private unmapIfUnused(): void {
    if (this.userClosed && this.users.size === 0 && this.views === 0 && this.mapped) {
      this.mapped = false;
      this.vm.hypervisor.process.munmap(this.address);
    }
  }
}

class AckMemoryBinding implements MemoryBinding {
  active = true;
  constructor(
    readonly gpa: Gpa,
    readonly size: bigint,
    readonly memory: AckGuestMemory,
    readonly offset: FileOffset,
    readonly readOnly: boolean,
    readonly access: MemoryAccess,
  ) {}
  get end(): bigint {
    return this.gpa + this.size;
  }
  /** ACK has no way to remove a region (docs/gunyah-ack.md §7): EOPNOTSUPP, the binding stays. */
  unbind(): void {
    if (!this.active) return;
    throw gmErr(
      'EOPNOTSUPP',
      'unbind',
      ACK_BACKEND,
      'ACK user-memory regions cannot be removed (capability unbind is absent); GH_VM_RECLAIM_REGION takes pages back but keeps the region',
    );
  }
}

/** Where the adapter puts the VM's DTB (a one-page shared region), as the v17 adapter does. */
export const ACK_ADAPTER_DTB_GPA = (1n << 40n) - PAGE_SIZE_N;

class AckNeutralVm implements Vm, GunyahGuestControls {
  readonly memoryState = new RangeStateMap<MemoryAccess>('shared');
  private readonly active: AckMemoryBinding[] = [];
  private nextLabel = 1;
  private dtbReady = false;
  destroyed = false;

  /**
   * The VM object behind the `sim` handle, for the guest-access hot paths (the handle forwards every
   * property). `sim` stays held here, so the handle lives as long as this VM.
   */
  private readonly raw: AckVm;

  constructor(
    readonly hypervisor: GunyahAckHypervisor,
    readonly sim: AckVm,
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
    // `initiallyShared` needs nothing: user memory is the host's until a lend region's page is
    // faulted in by the guest.
    const size = checkMemorySize(opts, MAX_SIZE, ACK_BACKEND);
    const { address, memory } = this.hypervisor.process.mmap({ size, kind: 'shmem', hugePages: opts.hugePages });
    const m = new AckGuestMemory(this, memory, address, opts.hostMappable ?? false, opts.initiallyShared ?? false);
    this.hypervisor.memories.add(m);
    return m;
  }

  /**
   * Validates everything, then one ioctl (LEND_USER_MEM or SET_USER_MEM_REGION); the binding is
   * recorded only after it succeeded, so a failing bind changes nothing.
   */
  bind(opts: BindOptions): MemoryBinding {
    this.assertLive('bind');
    // The neutral rules (core): ACK itself checks neither offset + size against the memory nor the 2^64 edge.
    const {
      gpa: g,
      offset: off,
      size,
      access,
      readOnly,
    } = checkBind(opts, {
      backend: ACK_BACKEND,
      owns: (m) => m instanceof AckGuestMemory && m.vm === this,
      privateMemory: this.capabilities.has('private-memory'),
    });
    const memory = opts.memory as AckGuestMemory;
    // A guest fault on huge-page memory is handed the whole 2 MiB folio (ack/sim demand paging), so a
    // binding that cut a folio would give the guest the folio's pages outside it: bind such memory in
    // 2 MiB units, as the v17 adapter does (guestmem's rule; ACK itself does not check, inference).
    if (memory.memory.hugePages && (g % HUGE_BYTES !== 0n || off % HUGE_BYTES !== 0n || size % HUGE_BYTES !== 0n)) {
      throw gmErr(
        'EINVAL',
        'bind',
        ACK_BACKEND,
        `huge-page memory binds in 2 MiB units (gpa 0x${g.toString(16)}, offset ${off}, size ${size})`,
      );
    }
    // GPA overlap is the driver's EEXIST; check it first so the zeroing below never runs for a refused bind.
    const first = Number(g / PAGE_SIZE_N);
    const pages = Number(size / PAGE_SIZE_N);
    if (this.sim.bindings().some((b) => b.gfn < first + pages && first < b.gfn + b.nr)) {
      throw gmErr('EEXIST', 'bind', ACK_BACKEND, `guest range 0x${g.toString(16)} +${size} overlaps a binding`, {
        syscall: access === 'private' ? 'ioctl(GH_VM_ANDROID_LEND_USER_MEM)' : 'ioctl(GH_VM_SET_USER_MEM_REGION)',
      });
    }
    // One memory range, one binding (the neutral overlap rule every backend keeps): ACK regions are
    // host addresses, so the driver would alias the pages at a second GPA — and binding them shared
    // there would zero (or expose) what the guest holds privately through the first.
    const clash = this.active.find((b) => b.memory === memory && b.active && b.offset < off + size && off < b.offset + b.size);
    if (clash) {
      throw gmErr('EEXIST', 'bind', ACK_BACKEND, `memory range [${off}, +${size}) is already bound at 0x${clash.gpa.toString(16)}`);
    }
    // Generation A makes one memory parcel per region when the VM starts, and never one for a
    // region added later (the simulated K4 `gh_vm_start`; inference, research §10): such a region
    // would be accepted by the ioctl yet never reach the guest. The neutral bind promises memory the
    // guest can reach, so once the VM runs it is refused with EBUSY and nothing changes.
    if (this.hypervisor.host.profile.parcelPerRegion && this.sim.status === 'running') {
      throw gmErr('EBUSY', 'bind', ACK_BACKEND, 'generation A shares regions with the guest only when the VM starts: this VM is running');
    }
    const flags = F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_EXEC | (readOnly ? 0 : F.GUNYAH_MEM_ALLOW_WRITE); // crosvm: R|X (|W)
    const region = { label: this.nextLabel, flags, guestPhysAddr: g, memorySize: size, userspaceAddr: memory.address + off };
    // A private page bound shared reads zero (neutral rule): its bytes never reach the host.
    if (access === 'shared') memory.zeroPrivate(off, size);
    if (access === 'private') this.sim.lendUserMem(region);
    else this.sim.setUserMemRegion(region);
    this.nextLabel++;
    memory.setPageAccess(off, size, access);
    const b = new AckMemoryBinding(toGpa(g), size, memory, fileOffset(off), readOnly, access);
    this.active.push(b);
    this.active.sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
    memory.retain(b);
    const end = first + pages;
    if (end <= this.memoryState.limit) this.memoryState.set(first, end, access);
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

  /** A region's lend/share is fixed by the ioctl that made it, and regions cannot be removed: EOPNOTSUPP. */
  convert(range: GpaRange, _to: MemoryAccess): void {
    this.assertLive('convert');
    checkGpaRange(range, 'convert', ACK_BACKEND);
    throw gmErr('EOPNOTSUPP', 'convert', ACK_BACKEND, 'ACK cannot change a region between lend and share (no conversion capability)');
  }

  /** Gunyah will not start without a DTB: a one-page shared region at {@link ACK_ADAPTER_DTB_GPA}, created on first run. */
  private ensureStarted(): void {
    if (this.raw.status === 'running') return;
    if (!this.dtbReady) {
      this.dtbReady = true;
      const dtb = this.hypervisor.process.mmap({ size: PAGE_SIZE_N, kind: 'shmem' });
      this.sim.setUserMemRegion({
        label: 0,
        flags: F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE,
        guestPhysAddr: ACK_ADAPTER_DTB_GPA,
        memorySize: PAGE_SIZE_N,
        userspaceAddr: dtb.address,
      });
      this.sim.setDtbConfig({ guestPhysAddr: ACK_ADAPTER_DTB_GPA, size: PAGE_SIZE_N });
      this.dtbAddress = dtb.address;
    }
    this.sim.start();
  }
  private dtbAddress: bigint | undefined;

  /** The bytes of a completed access, else the neutral error for how it ended. */
  private settle(op: 'guestRead' | 'guestWrite', r: AckGuestAccess): Uint8Array {
    if (r.status === 'done') return r.data ?? new Uint8Array(0);
    // Every unresolved guest access is EFAULT in the neutral API; the uAPI's exit is in info.
    const exit =
      r.status === 'page-fault' ? r.exit : r.status === 'mmio' ? { exitReason: 'MMIO', physAddr: r.gpa } : { exitReason: r.status };
    const attempt = r.status === 'page-fault' ? r.exit.attempt : 0;
    throw new GuestMemError({
      code: attempt && errnoCode(-attempt) === 'EHWPOISON' ? 'EHWPOISON' : 'EFAULT',
      op,
      backend: ACK_BACKEND,
      syscall: 'ioctl(GH_VCPU_RUN)',
      detail:
        r.status === 'page-fault'
          ? `GUNYAH_VCPU_EXIT_PAGE_FAULT at 0x${r.exit.physAddr.toString(16)}, attempt ${attempt}`
          : `${r.status} exit`,
      info: { exit },
    });
  }

  guestRead(g: bigint | number, len: number): Uint8Array {
    this.assertLive('guestRead');
    const gpa = guestAccessGpa(g, len, 'guestRead', ACK_BACKEND);
    this.ensureStarted();
    return this.settle('guestRead', this.raw.vcpu().read(gpa, len));
  }

  guestWrite(g: bigint | number, data: Uint8Array): void {
    this.assertLive('guestWrite');
    const gpa = guestAccessGpa(g, data.length, 'guestWrite', ACK_BACKEND);
    this.ensureStarted();
    const r = this.raw.vcpu().write(gpa, data);
    if (r.status !== 'done') this.settle('guestWrite', r);
  }

  private readonly vcpus = new Set<Vcpu>();
  private nextVcpuId = 0;

  /**
   * A vCPU running the image's op list through `GH_VCPU_RUN`'s access path (see ack-vcpu.ts); the
   * VM starts (with the adapter's DTB) on its first run.
   */
  createVcpu(): Vcpu {
    this.assertLive('createVcpu');
    const v = new AckSimVcpu(
      this.nextVcpuId++,
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
   * The user memory of share regions by GPA (see `Vm.sharedView`): the VMM's own mapping at the
   * region's `userspace_addr`, through the same host-access rule as `GuestMemory.map`. A lend
   * (private) region is part of the range but refuses every access with `EACCES`: the host never
   * reads lent memory.
   */
  sharedView(range: GpaRange): HostView {
    this.assertLive('sharedView');
    const parts: SharedPart[] = this.active.map((b) => {
      const at = (op: string, off: number, n: number): bigint => {
        if (b.access === 'private')
          throw gmErr('EACCES', 'sharedView', ACK_BACKEND, `0x${b.gpa.toString(16)} +${b.size} is lent to the guest`);
        b.memory.checkHostAccess(op, b.offset, off, n);
        return b.offset + BigInt(off);
      };
      const mem = b.memory.memory;
      return {
        gpa: b.gpa,
        size: b.size,
        read: (off, n) => mem.read(at('read', off, n), n),
        readInto: (off, dst, dstOffset) => mem.readInto(at('read', off, dst.length - dstOffset), dst, dstOffset),
        write: (off, d) => mem.write(at('write', off, d.length), d),
        fill: (off, n, byte) => mem.fill(at('write', off, n), n, byte),
        get live() {
          return b.active;
        },
      };
    });
    const view = sharedViewOf(parts, range, ACK_BACKEND);
    // Tracked like every host view, so Hypervisor.close() ends it.
    return this.hypervisor.views.add(view, () => view.unmap());
  }

  /**
   * `GH_VM_RECLAIM_REGION` of `range`, made all-or-nothing: if the hypervisor would refuse any folio
   * (a lent page the guest touched and holds), EBUSY and nothing is reclaimed. Bindings stay. On
   * generations without the ioctl (A, B): ENOTTY, as the driver answers.
   */
  reclaim(range: GpaRange): void {
    this.assertLive('reclaim');
    const { gpa: g, size } = checkGpaRange(range, 'reclaim', ACK_BACKEND);
    if (this.hypervisor.host.profile.handles.has('GH_VM_RECLAIM_REGION')) {
      const refused = this.sim.checkReclaim(Number(g / PAGE_SIZE_N), Number((g + size) / PAGE_SIZE_N) - 1);
      if (refused) {
        throw gmErr(
          'EBUSY',
          'reclaim',
          ACK_BACKEND,
          `${refused.count} folio(s) are lent pages the guest holds (first at gfn 0x${refused.first.toString(16)}); nothing was reclaimed`,
          {
            syscall: 'ioctl(GH_VM_RECLAIM_REGION)',
            info: refused,
          },
        );
      }
    }
    this.sim.reclaimRegion({ guestPhysAddr: g, size });
  }

  /** The simulated guest relinquishes `range` (Qualcomm test guest's hypercall 0x8069). */
  relinquish(range: GpaRange, opts: { sanitize?: boolean } = {}): void {
    this.assertLive('relinquish');
    const { gpa: g, size } = checkGpaRange(range, 'relinquish', ACK_BACKEND);
    this.sim.vcpu().relinquish(g, Number(size / PAGE_SIZE_N), opts);
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const v of [...this.vcpus]) v.close();
    this.sim.close();
    for (const b of this.active) {
      b.active = false;
      b.memory.release(b);
    }
    this.active.length = 0;
    if (this.dtbAddress !== undefined) this.hypervisor.process.munmap(this.dtbAddress);
    this.destroyed = true;
    this.onDestroy();
  }

  private assertLive(op: string): void {
    if (this.destroyed) throw gmErr('EBADF', op, ACK_BACKEND, 'the VM was destroyed');
  }
}
