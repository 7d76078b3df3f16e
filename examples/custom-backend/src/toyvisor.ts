/**
 * "Toyvisor": a complete guestmem backend for a made-up hypervisor, in one file. It shows the
 * pieces of docs/writing-a-backend.md on the smallest possible policy:
 *
 * - memory objects are core `GuestMemFile`s sharing one `FolioAllocator`;
 * - bindings use the file's interval index (overlap → EEXIST) and a per-VM GPA table;
 * - private pages are enforced in `GuestMemOps.hostAccess` (the host gets SIGBUS);
 * - conversion is in place and punches what is no longer used;
 * - guests are emulated with `file.read/write` (capability 'guest-access').
 *
 * It passes @guestmem/conformance (see toyvisor.test.ts).
 */
import {
  ArenaFolioAllocator,
  GuestMemFile,
  HYPERVISOR_PROVIDER,
  HostMappedCounter,
  HostMapping,
  HostViewSet,
  RangeStateMap,
  fileOffset,
  fileUsage,
  gmErr,
  memoryReport,
  gpa as toGpa,
  makeCapabilities,
  accessArg,
  checkBind,
  checkFileRange,
  checkGpaRange,
  checkMapRange,
  checkMemorySize,
  checkPageOffset,
  type BindOptions,
  type Capabilities,
  type ConvertOptions,
  type CreateGuestMemoryOptions,
  type FolioAllocator,
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
  checkGuestAccess,
  GuestMemError,
  GuestOpInterpreter,
  sharedViewOf,
  memoryStats,
} from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';

const ID = 'toyvisor';
const PAGE = 4096n;

const CAPS: Capabilities = makeCapabilities({
  backend: ID,
  simulated: true,
  caps: [
    'guest-memory',
    'host-map',
    'initially-shared',
    'private-memory',
    'convert-in-place',
    'punch-hole',
    'guest-access',
    'poison-injection',
    'unbind',
    'vcpu',
  ],
  maxGuestMemorySize: 1n << 40n,
});

export class Toyvisor implements Hypervisor {
  readonly id = ID;
  readonly capabilities = CAPS;
  constructor(readonly allocator: FolioAllocator = new ArenaFolioAllocator()) {}
  /** What close() must release: VMs and memory objects still alive. */
  readonly vms = new Set<ToyVm>();
  readonly memories = new Set<ToyMemory>();
  private closed = false;
  createVm(): Vm {
    // A closed hypervisor makes nothing new (the neutral rule: every backend answers EBADF).
    if (this.closed) throw gmErr('EBADF', 'createVm', ID, 'the hypervisor was closed');
    const vm = new ToyVm(this);
    this.vms.add(vm);
    return vm;
  }
  /** Host views not yet unmapped. */
  readonly views = new HostViewSet(ID);
  close(): void {
    this.views.unmapAll();
    for (const vm of [...this.vms]) vm.destroy();
    for (const m of [...this.memories]) m.close();
    this.closed = true;
  }
}

class ToyMemory implements GuestMemory {
  private static ids = 1;
  readonly id = ToyMemory.ids++;
  readonly file: GuestMemFile<ToyBinding>;
  /** Pages the guest owns: the host may not touch them. */
  readonly privatePages: RangeStateMap<MemoryAccess>;
  private open = true;

  constructor(
    readonly vm: ToyVm,
    size: bigint | number,
    readonly hostMappable: boolean,
    initiallyShared: boolean,
  ) {
    this.file = GuestMemFile.create<ToyBinding>(
      size,
      0,
      {
        backend: ID,
        // The backend's whole host-access policy: private pages SIGBUS.
        hostAccess: (_f, index) => (this.privatePages.get(index) === 'private' ? 'sigbus' : 'allow'),
      },
      { allocator: vm.hypervisor.allocator, maxSize: CAPS.maxGuestMemorySize },
    );
    this.privatePages = new RangeStateMap<MemoryAccess>(initiallyShared ? 'shared' : 'private', this.file.pages);
    vm.hypervisor.memories.add(this);
  }
  get size(): bigint {
    return this.file.size;
  }
  get closed(): boolean {
    return !this.open;
  }
  /** The handle, not the file: bindings keep the file alive after close(). */
  private assertOpen(op: string): void {
    if (!this.open) throw gmErr('EBADF', op, ID, `memory ${this.id} was closed`);
  }
  allocate(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('allocate');
    const r = checkFileRange(offset, len, this.size, 'allocate', ID);
    this.file.allocate(r.offset, r.len);
  }
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('punchHole');
    const r = checkFileRange(offset, len, this.size, 'punchHole', ID);
    this.file.punchHole(r.offset, r.len);
  }
  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    this.assertOpen('map');
    if (!this.hostMappable) throw gmErr('ENODEV', 'map', ID, 'memory was created without hostMappable');
    const { offset, length } = checkMapRange(opts, this.size, ID);
    const m = new HostMapping(this.file, { offset, length });
    // The counter only tracks host-mapped bytes for stats().
    const unmapped = this.mapped.open(m.length);
    return this.vm.hypervisor.views.add(m, () => {
      m.unmap();
      unmapped();
    });
  }
  private readonly mapped = new HostMappedCounter();
  /** What this object holds: core's file counts pages and folios; the VM's state map counts private pages. */
  stats(): GuestMemoryStats {
    return memoryStats(this, this.vm, fileUsage(this.file), this.mapped.bytes);
  }
  markPoisoned(offset: bigint | number): void {
    this.assertOpen('markPoisoned');
    const off = checkPageOffset(offset, this.size, 'markPoisoned', ID);
    this.file.markPoisoned(Number(off / PAGE));
  }
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.vm.hypervisor.memories.delete(this);
    this.file.release();
  }
}

class ToyBinding implements MemoryBinding {
  active = true;
  readonly readOnly: boolean;
  constructor(
    private readonly vm: ToyVm,
    readonly memory: ToyMemory,
    readonly gpa: ReturnType<typeof toGpa>,
    readonly size: bigint,
    readonly offset: ReturnType<typeof fileOffset>,
    readOnly: boolean,
  ) {
    this.readOnly = readOnly;
  }
  unbind(): void {
    if (!this.active) return;
    this.active = false;
    this.memory.file.unbind(this);
    this.vm.forget(this);
    // The binding's reference on the file (taken by bind): the last one frees the memory.
    this.memory.file.release();
  }
}

class ToyVm implements Vm {
  private static ids = 1;
  readonly id = ToyVm.ids++;
  readonly capabilities = CAPS;
  readonly memoryState = new RangeStateMap<MemoryAccess>('shared');
  private readonly table: ToyBinding[] = [];
  private dead = false;

  constructor(readonly hypervisor: Toyvisor) {}

  get destroyed(): boolean {
    return this.dead;
  }
  private live(op: string): void {
    if (this.dead) throw gmErr('EBADF', op, ID, 'VM destroyed');
  }

  createGuestMemory(o: CreateGuestMemoryOptions): GuestMemory {
    this.live('createGuestMemory');
    // Bad input is EINVAL before any capability answer, as on every backend.
    const size = checkMemorySize(o, CAPS.maxGuestMemorySize, ID);
    if (o.hugePages) throw gmErr('EOPNOTSUPP', 'createGuestMemory', ID, 'no huge pages');
    return new ToyMemory(this, size, o.hostMappable ?? false, o.initiallyShared ?? false);
  }

  bind(o: BindOptions): MemoryBinding {
    this.live('bind');
    const { gpa, size, offset, access, readOnly } = checkBind(o, {
      backend: ID,
      owns: (m) => m instanceof ToyMemory && m.vm === this,
      privateMemory: true,
    });
    const mem = o.memory as ToyMemory;
    const clash = this.table.find((b) => gpa < b.gpa + b.size && b.gpa < gpa + size);
    if (clash) throw gmErr('EEXIST', 'bind', ID, `GPA range overlaps the binding at 0x${clash.gpa.toString(16)}`);
    const b = new ToyBinding(this, mem, toGpa(gpa), size, fileOffset(offset), readOnly);
    mem.file.bind(Number(offset / PAGE), Number((offset + size) / PAGE), b, { overlapCode: 'EEXIST' });
    // A binding pins the file: memory.close() leaves bound memory alive until the last unbind.
    mem.file.acquire();
    this.table.push(b);
    // Default access: private, since toyvisor VMs have private memory (the neutral rule).
    // Either way the file pages take the binding's access (a private page bound shared reads zero).
    this.convert({ gpa, size }, access, { discard: false });
    return b;
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.table].sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
  }
  memoryReport(): VmMemoryReport {
    return memoryReport(
      this,
      [...this.hypervisor.memories].filter((m) => m.vm === this),
    );
  }
  forget(b: ToyBinding): void {
    this.table.splice(this.table.indexOf(b), 1);
  }

  convert(range: GpaRange, to: MemoryAccess, opts: ConvertOptions = {}): void {
    this.live('convert');
    const { gpa, size } = checkGpaRange(range, 'convert', ID);
    accessArg(to, 'convert', ID);
    if (opts.keepContents) throw gmErr('EOPNOTSUPP', 'convert', ID, "no 'convert-keeps-contents'");
    // Check every page first, so a failing conversion changes nothing.
    const pieces = this.table.filter((b) => gpa < b.gpa + b.size && b.gpa < gpa + size);
    for (const b of pieces) {
      const lo = gpa > b.gpa ? gpa : b.gpa;
      const hi = gpa + size < b.gpa + b.size ? gpa + size : b.gpa + b.size;
      const first = Number((b.offset + lo - b.gpa) / PAGE);
      const end = Number((b.offset + hi - b.gpa) / PAGE);
      // Converting drops the old contents of the pages that change, as a CoCo guest's conversion
      // does; pages already in state `to` keep theirs. One copy per page: a page that becomes
      // shared is always zeroed, so its private bytes never reach the host (neutral rule).
      const changed = b.memory.privatePages.set(first, end, to);
      if (to === 'shared' || opts.discard !== false)
        for (const c of changed) b.memory.file.punchHole(BigInt(c.first) * PAGE, BigInt(c.end - c.first) * PAGE);
    }
    this.memoryState.set(Number(gpa / PAGE), Number((gpa + size) / PAGE), to);
  }

  /**
   * The bindings behind `[gpa, gpa+len)`, one piece per binding; an access that reaches a GPA no
   * binding covers (or a read-only one, for a write) is EFAULT and touches nothing. An access
   * spanning adjacent bindings works, as on every other backend.
   */
  private locate(gpa: bigint, len: number, op: string): Array<{ b: ToyBinding; off: number; at: number; n: number }> {
    this.live(op);
    const pieces: Array<{ b: ToyBinding; off: number; at: number; n: number }> = [];
    let at = 0;
    while (at < len) {
      const g = gpa + BigInt(at);
      const b = this.table.find((x) => g >= x.gpa && g < x.gpa + x.size);
      if (!b) throw gmErr('EFAULT', op, ID, `GPA 0x${g.toString(16)} is not inside a binding`);
      if (op === 'guestWrite' && b.readOnly) throw gmErr('EFAULT', op, ID, 'read-only binding');
      const n = Math.min(len - at, Number(b.gpa + b.size - g));
      pieces.push({ b, off: Number(b.offset + g - b.gpa), at, n });
      at += n;
    }
    return pieces;
  }
  guestRead(gpa: bigint | number, len: number): Uint8Array {
    const [g, n] = checkGuestAccess(gpa, len, 'guestRead', ID);
    const out = new Uint8Array(n);
    for (const p of this.locate(g, n, 'guestRead')) out.set(p.b.memory.file.read(p.off, p.n), p.at);
    return out;
  }
  guestWrite(gpa: bigint | number, data: Uint8Array): void {
    const [g, n] = checkGuestAccess(gpa, data.length, 'guestWrite', ID);
    for (const p of this.locate(g, n, 'guestWrite')) p.b.memory.file.write(p.off, data.subarray(p.at, p.at + p.n));
  }

  /** The files' shared pages by GPA; a private page refuses access (SIGBUS from the file's host-access rule). */
  sharedView(range: GpaRange): HostView {
    this.live('sharedView');
    const parts = this.table.map((b) => {
      const off = (at: number, len: number): number => {
        const first = Number(b.offset / PAGE) + Math.floor(at / 4096);
        const end = Number(b.offset / PAGE) + Math.ceil((at + len) / 4096);
        if (!b.memory.privatePages.isUniform(first, end, 'shared'))
          throw gmErr('EACCES', 'sharedView', ID, 'the range holds private pages');
        return Number(b.offset) + at;
      };
      return {
        gpa: b.gpa as bigint,
        size: b.size,
        read: (at: number, len: number) => b.memory.file.read(off(at, len), len),
        write: (at: number, d: Uint8Array) => b.memory.file.write(off(at, d.length), d),
        fill: (at: number, len: number, byte: number) => b.memory.file.write(off(at, len), new Uint8Array(len).fill(byte)),
        get live() {
          return b.active;
        },
      };
    });
    const view = sharedViewOf(parts, range, ID);
    // Tracked like every host view, so Hypervisor.close() ends it.
    return this.hypervisor.views.add(view, () => view.unmap());
  }

  /** A vCPU running the image's op list through guestRead/guestWrite; an address outside every binding is MMIO. */
  createVcpu(): Vcpu {
    this.live('createVcpu');
    const interp = new GuestOpInterpreter({
      access: (kind, gpa, buf) => {
        try {
          if (kind === 'read') buf.set(this.guestRead(gpa, buf.length));
          else this.guestWrite(gpa, buf);
          return undefined;
        } catch (e) {
          if (!GuestMemError.is(e, 'EFAULT')) throw e;
          const data = kind === 'write' ? Uint8Array.from(buf) : new Uint8Array(buf.length);
          return { kind: 'mmio', gpa, size: buf.length, write: kind === 'write', data, info: { detail: e.message } };
        }
      },
    });
    let closed = false;
    const live = (op: string) => {
      if (closed) throw gmErr('EBADF', op, ID, 'vCPU closed');
    };
    const vcpu: Vcpu = {
      id: this.vcpus.size,
      get closed() {
        return closed;
      },
      load: (image) => (live('load'), interp.load(image)),
      run: () => (live('run'), interp.run()),
      completeRead: (d) => (live('completeRead'), interp.completeRead(d)),
      // A toy: an MMIO access may be re-executed once the VMM bound memory there.
      retriesMmio: true,
      retryMmio: () => (live('retryMmio'), interp.retryMmio()),
      close: () => {
        closed = true;
        this.vcpus.delete(vcpu);
      },
    };
    this.vcpus.add(vcpu);
    return vcpu;
  }
  private readonly vcpus = new Set<Vcpu>();

  destroy(): void {
    if (this.dead) return;
    for (const v of [...this.vcpus]) v.close();
    for (const b of [...this.table]) b.unbind();
    this.dead = true;
    this.hypervisor.vms.delete(this);
  }
}

/** Registers toyvisor as a hypervisor provider (a simulation: priority 10, not a fake). */
export function registerToyvisor(container: DependencyContainer): DependencyContainer {
  container.register(HYPERVISOR_PROVIDER, {
    useValue: {
      id: ID,
      priority: 10,
      fake: false,
      simulated: true,
      description: 'toyvisor example backend',
      probe: () => ({ available: true, reason: 'in-process' }),
      create: () => new Toyvisor(),
    },
  });
  return container;
}
