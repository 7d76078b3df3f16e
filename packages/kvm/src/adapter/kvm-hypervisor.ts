/**
 * `KvmHypervisor`: KVM behind the neutral interfaces of @guestmem/core. Memslot numbers, ioctl
 * flags and VM types stay in here; VMM code sees `Vm.bind({ memory, offset, gpa, size })`.
 *
 * Works on both uAPI drivers (native /dev/kvm and the simulated kernel) because it only speaks the
 * uAPI of `api.ts`.
 */
import {
  GuestMemError,
  RangeStateMap,
  fileOffset,
  gmErr,
  gpa as toGpa,
  makeCapabilities,
  toBig,
  type BindOptions,
  type Capabilities,
  type CapabilityName,
  type ConvertOptions,
  type CreateGuestMemoryOptions,
  type CreateVmOptions,
  type FileOffset,
  type Gpa,
  type GpaRange,
  type GuestMemory,
  type HostView,
  type Hypervisor,
  type MemoryAccess,
  type MemoryBinding,
  type Vm,
} from '@guestmem/core';
import type { Kvm, KvmGuestMemfd, KvmMapping, KvmVm } from '../api.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CAP_GUEST_MEMFD,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_USER_MEMORY2,
  KVM_CAP_VM_TYPES,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_USER_MEM_SLOTS,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';

/** Largest guest_memfd KVM accepts: the largest page-aligned loff_t. */
const MAX_GMEM_SIZE = (1n << 63n) - 4096n;
const PAGE = 4096n;

/**
 * Optional sim-only extensions a driver may offer (the simulated kernel's guest-access and poison
 * hooks). Detected at run time, surfaced through capabilities, never through optional methods of
 * the neutral API.
 */
export interface KvmGuestAccessDriver {
  guestRead(vm: KvmVm, gpa: bigint, len: number): Uint8Array;
  guestWrite(vm: KvmVm, gpa: bigint, data: Uint8Array): void;
}

function answerCaps(kvm: { checkExtension(cap: number): number }, backend: string, simulated: boolean, guestAccess: boolean): Capabilities {
  const gmem = kvm.checkExtension(KVM_CAP_GUEST_MEMFD) === 1;
  const flags = BigInt(kvm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS));
  const attrs = BigInt(kvm.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES));
  const vmTypes = kvm.checkExtension(KVM_CAP_VM_TYPES);
  const caps: CapabilityName[] = [];
  if (gmem) caps.push('guest-memory', 'punch-hole');
  if (flags & GUEST_MEMFD_FLAG_MMAP) caps.push('host-map');
  if (flags & GUEST_MEMFD_FLAG_INIT_SHARED) caps.push('initially-shared');
  if ((attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n || (vmTypes & (1 << KVM_X86_SW_PROTECTED_VM)) !== 0) caps.push('private-memory');
  if ((attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n) caps.push('convert-in-place');
  if (guestAccess) caps.push('guest-access');
  return makeCapabilities({
    backend,
    simulated,
    caps,
    pageSizes: [4096],
    maxGuestMemorySize: MAX_GMEM_SIZE,
    raw: {
      KVM_CAP_USER_MEMORY2: kvm.checkExtension(KVM_CAP_USER_MEMORY2),
      KVM_CAP_GUEST_MEMFD: gmem ? 1 : 0,
      KVM_CAP_GUEST_MEMFD_FLAGS: flags,
      KVM_CAP_MEMORY_ATTRIBUTES: attrs,
      KVM_CAP_VM_TYPES: vmTypes,
    },
  });
}

/** KVM as a neutral {@link Hypervisor}. Owns the `/dev/kvm` fd it is given. */
export class KvmHypervisor implements Hypervisor {
  readonly capabilities: Capabilities;
  private readonly vms = new Set<KvmVmAdapter>();

  constructor(
    readonly kvm: Kvm,
    readonly id: string = kvm.driver === 'native' ? 'kvm' : 'kvm-sim',
    readonly guestAccess?: KvmGuestAccessDriver,
  ) {
    this.capabilities = answerCaps(kvm, id, kvm.driver === 'sim', guestAccess !== undefined);
  }

  /**
   * Creates a VM: the default type, or with `confidential` a `KVM_X86_SW_PROTECTED_VM` when
   * `KVM_CAP_VM_TYPES` offers it (else `EOPNOTSUPP`).
   */
  createVm(opts: CreateVmOptions = {}): Vm {
    let type = KVM_X86_DEFAULT_VM;
    if (opts.confidential) {
      const types = this.kvm.checkExtension(KVM_CAP_VM_TYPES);
      if (!(types & (1 << KVM_X86_SW_PROTECTED_VM))) {
        throw gmErr('EOPNOTSUPP', 'createVm', this.id, `no VM type with private memory: KVM_CAP_VM_TYPES = ${types}`);
      }
      type = KVM_X86_SW_PROTECTED_VM;
    }
    const vm = new KvmVmAdapter(this, this.kvm.createVm(type));
    this.vms.add(vm);
    return vm;
  }

  /** Destroys every VM still alive and closes `/dev/kvm`. */
  close(): void {
    for (const vm of this.vms) if (!vm.destroyed) vm.destroy();
    this.vms.clear();
    if (!this.kvm.closed) this.kvm.close();
  }
}

/** One KVM VM behind the neutral {@link Vm}. */
export class KvmVmAdapter implements Vm {
  private static nextId = 1;
  readonly id = KvmVmAdapter.nextId++;
  readonly capabilities: Capabilities;
  readonly memoryState = new RangeStateMap<MemoryAccess>('shared');
  private readonly slots = new Map<number, KvmBinding>();
  private readonly memories = new Set<KvmGuestMemory>();
  private dead = false;

  constructor(
    readonly hypervisor: KvmHypervisor,
    readonly kvmVm: KvmVm,
  ) {
    this.capabilities = answerCaps(kvmVm, hypervisor.id, hypervisor.kvm.driver === 'sim', hypervisor.guestAccess !== undefined);
  }

  get destroyed(): boolean {
    return this.dead;
  }

  private live(op: string): void {
    if (this.dead) throw gmErr('EBADF', op, this.hypervisor.id, `VM ${this.id} was destroyed`);
  }

  createGuestMemory(opts: CreateGuestMemoryOptions): GuestMemory {
    this.live('createGuestMemory');
    const c = this.capabilities;
    if (opts.hugePages) throw gmErr('EOPNOTSUPP', 'createGuestMemory', this.hypervisor.id, 'guest_memfd at 6.18 has only 4 KiB folios');
    if (opts.hostMappable && !c.has('host-map')) throw gmErr('EOPNOTSUPP', 'createGuestMemory', this.hypervisor.id, 'GUEST_MEMFD_FLAG_MMAP is not offered');
    if (opts.initiallyShared && !c.has('initially-shared')) {
      throw gmErr('EOPNOTSUPP', 'createGuestMemory', this.hypervisor.id, 'GUEST_MEMFD_FLAG_INIT_SHARED is not offered for this VM');
    }
    let flags = 0n;
    if (opts.hostMappable) flags |= GUEST_MEMFD_FLAG_MMAP;
    if (opts.initiallyShared) flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
    const mem = new KvmGuestMemory(this, this.kvmVm.createGuestMemfd({ size: opts.size, flags }));
    this.memories.add(mem);
    return mem;
  }

  bind(opts: BindOptions): MemoryBinding {
    this.live('bind');
    const mem = opts.memory;
    if (!(mem instanceof KvmGuestMemory) || mem.vm !== this) {
      throw gmErr('EINVAL', 'bind', this.hypervisor.id, 'the memory object was not created by this VM');
    }
    if (mem.closed) throw gmErr('EBADF', 'bind', this.hypervisor.id, 'the memory object is closed');
    if (opts.readOnly) throw gmErr('EOPNOTSUPP', 'bind', this.hypervisor.id, 'KVM rejects read-only guest_memfd slots (KVM_MEM_READONLY with KVM_MEM_GUEST_MEMFD is EINVAL)');
    const access = opts.access ?? 'shared';
    if (access === 'private' && !this.capabilities.has('private-memory')) {
      throw gmErr('EOPNOTSUPP', 'bind', this.hypervisor.id, 'this VM has no private memory (default VM type)');
    }
    const gpa = toBig(opts.gpa);
    const size = toBig(opts.size);
    const offset = toBig(opts.offset);
    // memory_size 0 means "delete" to KVM; the neutral API has no such meaning.
    if (size <= 0n) throw gmErr('EINVAL', 'bind', this.hypervisor.id, `size ${size} must be > 0`);
    const slot = this.freeSlot();
    // The shared side of a gmem slot is `userspace_addr`. For a host-mappable, initially-shared file
    // we map the file itself there: the upstream MMU then uses guest_memfd for every fault, and
    // KVM's emulator / PV accessors (which go through userspace_addr) see the same memory.
    let mapping: KvmMapping | undefined;
    if (mem.hostMappable && mem.initiallyShared && offset % PAGE === 0n && size % PAGE === 0n && offset + size <= mem.size) {
      mapping = mem.fd.mmap({ length: size, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset });
    }
    try {
      this.kvmVm.setUserMemoryRegion2({
        slot,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: gpa,
        memorySize: size,
        userspaceAddr: mapping?.address ?? 0n,
        guestMemfdOffset: offset,
        guestMemfd: mem.fd.fd,
      });
    } catch (e) {
      mapping?.munmap();
      throw e;
    }
    const b = new KvmBinding(this, slot, toGpa(gpa), size, mem, fileOffset(offset), mapping);
    this.slots.set(slot, b);
    if (access === 'private') this.convert({ gpa, size }, 'private', { discard: false });
    return b;
  }

  /** Deletes the memslot behind `b` (KVM keeps the data in the guest_memfd). */
  unbindSlot(b: KvmBinding): void {
    if (!this.dead) {
      this.kvmVm.setUserMemoryRegion2({
        slot: b.slot,
        flags: 0,
        guestPhysAddr: b.gpa,
        memorySize: 0,
        userspaceAddr: 0,
        guestMemfdOffset: 0,
        guestMemfd: 0,
      });
    }
    this.slots.delete(b.slot);
    b.mapping?.munmap();
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.slots.values()].sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
  }

  /**
   * In-place conversion with `KVM_SET_MEMORY_ATTRIBUTES` (needs 'convert-in-place'). With `discard`
   * (default) converting to shared punches the now-unused private pages out of the guest_memfd, as
   * Cloud Hypervisor does.
   */
  convert(range: GpaRange, to: MemoryAccess, opts: ConvertOptions = {}): void {
    this.live('convert');
    if (!this.capabilities.has('convert-in-place')) {
      throw gmErr('EOPNOTSUPP', 'convert', this.hypervisor.id, 'KVM_SET_MEMORY_ATTRIBUTES cannot set PRIVATE on this VM');
    }
    const gpa = toBig(range.gpa);
    const size = toBig(range.size);
    this.kvmVm.setMemoryAttributes({ address: gpa, size, attributes: to === 'private' ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n, flags: 0 });
    if (to === 'shared' && opts.discard !== false) {
      for (const b of this.slots.values()) {
        const lo = gpa > b.gpa ? gpa : b.gpa;
        const hi = gpa + size < b.gpa + b.size ? gpa + size : b.gpa + b.size;
        if (lo < hi) (b.memory as KvmGuestMemory).fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, b.offset + (lo - b.gpa), hi - lo);
      }
    }
    this.memoryState.set(Number(gpa / PAGE), Number((gpa + size) / PAGE), to);
  }

  guestRead(gpa: bigint | number, len: number): Uint8Array {
    this.live('guestRead');
    const ga = this.hypervisor.guestAccess;
    if (!ga) throw gmErr('EOPNOTSUPP', 'guestRead', this.hypervisor.id, 'this driver cannot run guest accesses');
    return ga.guestRead(this.kvmVm, toBig(gpa), len);
  }

  guestWrite(gpa: bigint | number, data: Uint8Array): void {
    this.live('guestWrite');
    const ga = this.hypervisor.guestAccess;
    if (!ga) throw gmErr('EOPNOTSUPP', 'guestWrite', this.hypervisor.id, 'this driver cannot run guest accesses');
    ga.guestWrite(this.kvmVm, toBig(gpa), data);
  }

  /** Deletes every slot and closes the VM fd. Guest memory objects keep the VM alive until they close (KVM rule). */
  destroy(): void {
    if (this.dead) return;
    for (const b of [...this.slots.values()]) b.unbind();
    this.dead = true;
    this.kvmVm.close();
  }

  /** Forgets a closed memory object. */
  forget(m: KvmGuestMemory): void {
    this.memories.delete(m);
  }

  private freeSlot(): number {
    for (let s = 0; s < KVM_USER_MEM_SLOTS; s++) if (!this.slots.has(s)) return s;
    throw gmErr('ENOSPC', 'bind', this.hypervisor.id, `all ${KVM_USER_MEM_SLOTS} memslots are in use`);
  }
}

/** A guest_memfd behind the neutral {@link GuestMemory}; owns the fd. */
export class KvmGuestMemory implements GuestMemory {
  readonly size: bigint;
  readonly hostMappable: boolean;
  readonly initiallyShared: boolean;

  constructor(
    readonly vm: KvmVmAdapter,
    readonly fd: KvmGuestMemfd,
  ) {
    this.size = fd.size;
    this.hostMappable = (fd.flags & GUEST_MEMFD_FLAG_MMAP) !== 0n;
    this.initiallyShared = (fd.flags & GUEST_MEMFD_FLAG_INIT_SHARED) !== 0n;
  }

  get id(): number {
    return this.fd.fd;
  }

  get closed(): boolean {
    return this.fd.closed;
  }

  allocate(offset: bigint | number, len: bigint | number): void {
    this.fd.fallocate(FALLOC_FL_KEEP_SIZE, offset, len);
  }

  punchHole(offset: bigint | number, len: bigint | number): void {
    this.fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
  }

  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    if (!this.vm.capabilities.has('host-map')) throw gmErr('EOPNOTSUPP', 'map', this.vm.hypervisor.id, 'GUEST_MEMFD_FLAG_MMAP is not offered');
    const offset = toBig(opts.offset ?? 0);
    const length = opts.length ?? Number(this.size - offset);
    const m = this.fd.mmap({ length, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset });
    return {
      length: m.length,
      read: (at, len) => m.read(at, len),
      write: (at, data) => m.write(at, data),
      fill: (at, len, byte) => m.fill(at, len, byte),
      unmap: () => m.munmap(),
    };
  }

  close(): void {
    if (this.fd.closed) return;
    this.fd.close();
    this.vm.forget(this);
  }
}

/** A memslot behind the neutral {@link MemoryBinding}. */
export class KvmBinding implements MemoryBinding {
  private bound = true;

  constructor(
    private readonly vm: KvmVmAdapter,
    /** The KVM memslot id (kept out of the neutral API). */
    readonly slot: number,
    readonly gpa: Gpa,
    readonly size: bigint,
    readonly memory: GuestMemory,
    readonly offset: FileOffset,
    /** The mapping used as the slot's userspace_addr, if any. */
    readonly mapping: KvmMapping | undefined,
  ) {}

  get readOnly(): boolean {
    return false;
  }

  get active(): boolean {
    return this.bound;
  }

  unbind(): void {
    if (!this.bound) return;
    this.vm.unbindSlot(this);
    this.bound = false;
  }
}
