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
  HostMapping,
  RangeStateMap,
  fileOffset,
  gmErr,
  gpa as toGpa,
  makeCapabilities,
  toBig,
  type BindOptions,
  type Capabilities,
  type CreateGuestMemoryOptions,
  type FolioAllocator,
  type GpaRange,
  type GuestMemory,
  type HostView,
  type Hypervisor,
  type MemoryAccess,
  type MemoryBinding,
  type Vm,
} from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';

const ID = 'toyvisor';
const PAGE = 4096n;

const CAPS: Capabilities = makeCapabilities({
  backend: ID,
  simulated: true,
  caps: ['guest-memory', 'host-map', 'initially-shared', 'private-memory', 'convert-in-place', 'punch-hole', 'guest-access', 'poison-injection'],
  maxGuestMemorySize: 1n << 40n,
});

export class Toyvisor implements Hypervisor {
  readonly id = ID;
  readonly capabilities = CAPS;
  constructor(readonly allocator: FolioAllocator = new ArenaFolioAllocator()) {}
  /** What close() must release: VMs and memory objects still alive. */
  readonly vms = new Set<ToyVm>();
  readonly memories = new Set<ToyMemory>();
  createVm(): Vm {
    const vm = new ToyVm(this);
    this.vms.add(vm);
    return vm;
  }
  close(): void {
    for (const vm of [...this.vms]) vm.destroy();
    for (const m of [...this.memories]) m.close();
  }
}

class ToyMemory implements GuestMemory {
  private static ids = 1;
  readonly id = ToyMemory.ids++;
  readonly file: GuestMemFile<ToyBinding>;
  /** Pages the guest owns: the host may not touch them. */
  readonly privatePages: RangeStateMap<MemoryAccess>;
  private open = true;

  constructor(readonly vm: ToyVm, size: bigint | number, readonly hostMappable: boolean, initiallyShared: boolean) {
    this.file = GuestMemFile.create<ToyBinding>(size, 0, {
      backend: ID,
      // The backend's whole host-access policy: private pages SIGBUS.
      hostAccess: (_f, index) => (this.privatePages.get(index) === 'private' ? 'sigbus' : 'allow'),
    }, { allocator: vm.hypervisor.allocator, maxSize: CAPS.maxGuestMemorySize });
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
    this.file.allocate(offset, len);
  }
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.assertOpen('punchHole');
    this.file.punchHole(offset, len);
  }
  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    this.assertOpen('map');
    if (!this.hostMappable) throw gmErr('ENODEV', 'map', ID, 'memory was created without hostMappable');
    const offset = toBig(opts.offset ?? 0);
    const m = new HostMapping(this.file, { offset, length: opts.length ?? Number(this.file.size - offset) });
    return m; // core's HostMapping already is a HostView
  }
  markPoisoned(offset: bigint | number): void {
    this.assertOpen('markPoisoned');
    const off = toBig(offset);
    if (off < 0n || off % PAGE || off >= this.file.size) throw gmErr('EINVAL', 'markPoisoned', ID, `offset ${off}`);
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
    if (o.hugePages) throw gmErr('EOPNOTSUPP', 'createGuestMemory', ID, 'no huge pages');
    return new ToyMemory(this, o.size, o.hostMappable ?? false, o.initiallyShared ?? false);
  }

  bind(o: BindOptions): MemoryBinding {
    this.live('bind');
    const mem = o.memory;
    if (!(mem instanceof ToyMemory) || mem.vm !== this) throw gmErr('EINVAL', 'bind', ID, 'the memory object was not created by this VM');
    if (mem.closed) throw gmErr('EBADF', 'bind', ID, 'the memory object is closed');
    const int = (v: bigint | number): bigint => {
      if (typeof v !== 'bigint' && !Number.isSafeInteger(v)) throw gmErr('EINVAL', 'bind', ID, `${v} is not an exact integer`);
      return BigInt(v);
    };
    const [gpa, size, offset] = [int(o.gpa), int(o.size), int(o.offset)];
    if (size <= 0n || gpa < 0n || gpa % PAGE || size % PAGE || offset % PAGE || offset < 0n || offset + size > mem.size || gpa + size > 1n << 64n) {
      throw gmErr('EINVAL', 'bind', ID, `gpa ${gpa}, size ${size}, offset ${offset}: need page-aligned, > 0, inside ${mem.size}`);
    }
    const clash = this.table.find((b) => gpa < b.gpa + b.size && b.gpa < gpa + size);
    if (clash) throw gmErr('EEXIST', 'bind', ID, `GPA range overlaps the binding at 0x${clash.gpa.toString(16)}`);
    const b = new ToyBinding(this, mem, toGpa(gpa), size, fileOffset(offset), o.readOnly ?? false);
    mem.file.bind(Number(offset / PAGE), Number((offset + size) / PAGE), b, { overlapCode: 'EEXIST' });
    // A binding pins the file: memory.close() leaves bound memory alive until the last unbind.
    mem.file.acquire();
    this.table.push(b);
    // Default access: private, since toyvisor VMs have private memory (the neutral rule). Either
    // access is applied to the GPA range (memoryState) and the memory's pages.
    this.convert({ gpa, size }, o.access ?? 'private', { discard: false });
    return b;
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.table].sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
  }
  forget(b: ToyBinding): void {
    this.table.splice(this.table.indexOf(b), 1);
  }

  convert(range: GpaRange, to: MemoryAccess, opts: { discard?: boolean } = {}): void {
    this.live('convert');
    const [gpa, size] = [toBig(range.gpa), toBig(range.size)];
    if (size <= 0n || gpa < 0n || gpa % PAGE || size % PAGE || gpa + size > 1n << 64n) throw gmErr('EINVAL', 'convert', ID, 'unaligned range');
    // Check every page first, so a failing conversion changes nothing.
    const pieces = this.table.filter((b) => gpa < b.gpa + b.size && b.gpa < gpa + size);
    for (const b of pieces) {
      const lo = gpa > b.gpa ? gpa : b.gpa;
      const hi = gpa + size < b.gpa + b.size ? gpa + size : b.gpa + b.size;
      const first = Number((b.offset + lo - b.gpa) / PAGE);
      const end = Number((b.offset + hi - b.gpa) / PAGE);
      // Converting drops the old contents of the pages that change, as a CoCo guest's conversion
      // does; pages already in state `to` keep theirs.
      const changed = b.memory.privatePages.set(first, end, to);
      if (opts.discard !== false) for (const c of changed) b.memory.file.punchHole(BigInt(c.first) * PAGE, BigInt(c.end - c.first) * PAGE);
    }
    this.memoryState.set(Number(gpa / PAGE), Number((gpa + size) / PAGE), to);
  }

  private locate(gpa: bigint, len: number, op: string): { b: ToyBinding; off: number } {
    this.live(op);
    const b = this.table.find((x) => gpa >= x.gpa && gpa + BigInt(len) <= x.gpa + x.size);
    if (!b) throw gmErr('EFAULT', op, ID, `GPA 0x${gpa.toString(16)} (+${len}) is not inside one binding`);
    return { b, off: Number(b.offset + gpa - b.gpa) };
  }
  guestRead(gpa: bigint | number, len: number): Uint8Array {
    const { b, off } = this.locate(toBig(gpa), len, 'guestRead');
    return b.memory.file.read(off, len);
  }
  guestWrite(gpa: bigint | number, data: Uint8Array): void {
    const { b, off } = this.locate(toBig(gpa), data.length, 'guestWrite');
    if (b.readOnly) throw gmErr('EFAULT', 'guestWrite', ID, 'read-only binding');
    b.memory.file.write(off, data);
  }

  destroy(): void {
    if (this.dead) return;
    for (const b of [...this.table]) b.unbind();
    this.dead = true;
    this.hypervisor.vms.delete(this);
  }
}

/** Registers toyvisor as a hypervisor provider (a simulation: priority 10, not a fake). */
export function registerToyvisor(container: DependencyContainer): DependencyContainer {
  container.register(HYPERVISOR_PROVIDER, {
    useValue: { id: ID, priority: 10, fake: false, description: 'toyvisor example backend', probe: () => ({ available: true, reason: 'in-process' }), create: () => new Toyvisor() },
  });
  return container;
}
