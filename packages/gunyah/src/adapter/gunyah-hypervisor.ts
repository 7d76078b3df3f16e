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
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_FLAG_LAYOUTS, encodeMapFlags, type LayoutName } from '../uapi/index.js';
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
    this.closed = true;
  }
}

class GunyahGuestMemory implements GuestMemory {
  constructor(
    readonly owner: GunyahHypervisor,
    readonly mem: GunyahGuestMem,
    /** Access of new bindings when `BindOptions.access` is not given. */
    readonly defaultAccess: MemoryAccess,
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
  get closed(): boolean {
    return !(this.mem as SimGuestMem).isOpen;
  }
  allocate(offset: bigint | number, len: bigint | number): void {
    this.mem.fallocate(FALLOC_FL_KEEP_SIZE, offset, len);
  }
  punchHole(offset: bigint | number, len: bigint | number): void {
    this.mem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset, len);
  }
  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    if (!this.hostMappable) throw gmErr('ENODEV', 'map', BACKEND, 'memory created without hostMappable', { syscall: 'mmap' });
    const offset = toBig(opts.offset ?? 0);
    const length = opts.length ?? Number(this.size - offset);
    const m = this.mem.mmap({ offset, length });
    return {
      length,
      read: (at, len) => m.read(at, len),
      write: (at, data) => m.write(at, data),
      fill: (at, len, byte) => m.write(at, new Uint8Array(len).fill(byte)),
      unmap: () => m.unmap(),
    };
  }
  /** Gunyah's uAPI has no memory-failure injection (research §6), so no 'poison-injection'. */
  markPoisoned(): void {
    throw gmErr('EOPNOTSUPP', 'markPoisoned', BACKEND, 'the Gunyah simulation does not model memory failure');
  }
  close(): void {
    if (!this.closed) this.mem.close();
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
    this.vm.relinquishForHost(this.gpa, this.gpa + this.size, true);
    this.vm.unmapPiece(this, this.gpa, this.size);
    this.vm.forget(this);
  }
}

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
    const mem = this.hypervisor.device.createGuestMem({ flags: opts.hugePages ? 2n : 0n, size: opts.size });
    return new GunyahGuestMemory(this.hypervisor, mem, opts.initiallyShared ? 'shared' : 'private', opts.hostMappable ?? false);
  }

  private flags(access: MemoryAccess, readOnly: boolean): number {
    return encodeMapFlags({ access: access === 'private' ? 'lend' : 'share', read: true, write: !readOnly, exec: access === 'private' }, MAP_FLAG_LAYOUTS[this.hypervisor.device.layout.name]);
  }

  private mapPiece(memory: GunyahGuestMemory, gpa: bigint, offset: bigint, size: bigint, access: MemoryAccess, readOnly: boolean, unmap = false): void {
    const flags = this.flags(access, readOnly) | (unmap ? this.hypervisor.device.layout.GUNYAH_MEM_UNMAP : 0);
    this.sim.mapMem({ guestAddr: gpa, flags, guestMemFd: memory.id, offset, size });
  }

  unmapPiece(b: GunyahMemoryBinding, gpa: bigint, size: bigint): void {
    this.mapPiece(b.memory, gpa, b.offset + (gpa - b.gpa), size, b.access, b.readOnly, true);
  }

  /** See {@link GunyahHypervisorOptions.guestCooperates}. */
  relinquishForHost(start: bigint, end: bigint, sanitize: boolean): void {
    if (this.hypervisor.guestCooperates && end > start) this.sim.relinquish(start, Number((end - start) / PAGE_SIZE_N), sanitize);
  }

  forget(b: GunyahMemoryBinding): void {
    b.active = false;
    const i = this.active.indexOf(b);
    if (i >= 0) this.active.splice(i, 1);
  }

  bind(opts: BindOptions): MemoryBinding {
    this.assertLive('bind');
    const memory = opts.memory;
    if (!(memory instanceof GunyahGuestMemory) || memory.owner !== this.hypervisor) {
      throw gmErr('EINVAL', 'bind', BACKEND, 'the memory object does not belong to this Gunyah hypervisor');
    }
    const access = opts.access ?? memory.defaultAccess;
    const g = toBig(opts.gpa);
    const size = toBig(opts.size);
    const off = toBig(opts.offset);
    // v17 does not check offset+size against the file size; the neutral contract does.
    if (off < 0n || size <= 0n || off + size > memory.size) {
      throw gmErr('EINVAL', 'bind', BACKEND, `[${off}, ${off + size}) is not inside the ${memory.size}-byte memory`);
    }
    this.mapPiece(memory, g, off, size, access, opts.readOnly ?? false);
    const b = new GunyahMemoryBinding(this, toGpa(g), size, memory, fileOffset(off), opts.readOnly ?? false, access);
    this.active.push(b);
    this.active.sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
    this.setState(g, size, access);
    return b;
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.active];
  }

  /**
   * Gunyah conversion: for each binding piece inside `range` whose access differs, UNMAP it (a
   * whole binding, its head, or — for a middle piece — the tail from the piece on) and MAP it back
   * with the other access value. Every affected piece is checked for reclaimability first, so either
   * everything converts or nothing changes. `discard` (default true) then punches the converted
   * pages, so neither side sees the other's old data.
   */
  convert(range: GpaRange, to: MemoryAccess, opts: ConvertOptions = {}): void {
    this.assertLive('convert');
    const start = toBig(range.gpa);
    const end = start + toBig(range.size);
    if (start % PAGE_SIZE_N || end % PAGE_SIZE_N || end <= start) throw gmErr('EINVAL', 'convert', BACKEND, 'range must be page-aligned and non-empty');
    const hit = this.active.filter((b) => b.gpa < end && b.end > start);
    let covered = start;
    for (const b of hit) {
      if (b.gpa > covered) break;
      covered = b.end > covered ? b.end : covered;
    }
    if (covered < end) throw gmErr('ENOENT', 'convert', BACKEND, `guest range 0x${start.toString(16)}..0x${end.toString(16)} is not fully bound`);
    // Plan: for each binding, the part to unmap (from the piece's start to the binding's end if the
    // piece is in the middle, since Gunyah cannot split a binding).
    const plan = hit
      .filter((b) => b.access !== to)
      .map((b) => {
        const ps = b.gpa > start ? b.gpa : start;
        const pe = b.end < end ? b.end : end;
        return { b, ps, pe, cutFrom: ps, cutTo: ps === b.gpa ? pe : b.end };
      });
    for (const p of plan) this.relinquishForHost(p.cutFrom, p.cutTo, opts.discard ?? true);
    for (const p of plan) {
      const mem = this.hypervisor.device.guestMem(p.b.memory.id)!;
      const first = Number((p.b.offset + (p.cutFrom - p.b.gpa)) / PAGE_SIZE_N);
      const last = Number((p.b.offset + (p.cutTo - p.b.gpa)) / PAGE_SIZE_N);
      const binding = this.sim.bindingAt(Number(p.b.gpa / PAGE_SIZE_N));
      const refusal = mem.checkReclaim(first, last, 'convert', 'ioctl(GUNYAH_VM_MAP_MEM)', { binding });
      if (refusal) throw refusal;
    }
    for (const { b, ps, pe, cutFrom, cutTo } of plan) {
      const mem = b.memory;
      this.unmapPiece(b, cutFrom, cutTo - cutFrom);
      this.forget(b);
      const off = (g: bigint) => b.offset + (g - b.gpa);
      const pieces: Array<[bigint, bigint, MemoryAccess]> = [];
      if (b.gpa < cutFrom) pieces.push([b.gpa, cutFrom, b.access]); // kept head (still mapped)
      pieces.push([ps, pe, to]);
      if (pe < b.end) pieces.push([pe, b.end, b.access]);
      for (const [s, e, a] of pieces) {
        if (s >= cutFrom && e <= cutTo) this.mapPiece(mem, s, off(s), e - s, a, b.readOnly); // others stayed mapped
        const nb = new GunyahMemoryBinding(this, toGpa(s), e - s, mem, fileOffset(off(s)), b.readOnly, a);
        this.active.push(nb);
      }
      if ((opts.discard ?? true) && pe > ps) {
        // Punch through core (partial huge folios are zeroed, not dropped: the neighbours keep data).
        this.hypervisor.device.guestMem(mem.id)!.file.punchHole(off(ps), pe - ps);
      }
    }
    this.active.sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
    this.setState(start, end - start, to);
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
      this.dtbMem = this.hypervisor.device.createGuestMem({ flags: 0n, size: PAGE_SIZE_N });
      this.sim.mapMem({ guestAddr: ADAPTER_DTB_GPA, flags: this.flags('shared', false), guestMemFd: this.dtbMem.fd, offset: 0n, size: PAGE_SIZE_N });
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
      const code = errnoCode(-r.exit.attempt) ?? 'EFAULT';
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
