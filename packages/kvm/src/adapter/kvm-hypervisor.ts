/**
 * `KvmHypervisor`: KVM behind the neutral interfaces of @guestmem/core. Memslot numbers, ioctl
 * flags and VM types stay in here; VMM code sees `Vm.bind({ memory, offset, gpa, size })`.
 *
 * Works on both uAPI drivers (native /dev/kvm and the simulated kernel) because it only speaks the
 * uAPI of `api.ts`. What a driver offers beyond the uAPI (the simulated kernel's guest access and
 * poison injection) comes in as a {@link KvmGuestAccessDriver} from whoever wires the driver in
 * (`register.ts`'s providers and `openKvmHypervisor`); this file never imports a driver.
 */
import {
  GuestMemError,
  HostMappedCounter,
  HostViewSet,
  RangeStateMap,
  memoryReport,
  fileOffset,
  gmErr,
  hostView,
  gpa as toGpa,
  makeCapabilities,
  accessArg,
  checkBind,
  GPA_LIMIT,
  checkFileRange,
  checkGpaRange,
  checkMapRange,
  checkMemorySize,
  checkPageOffset,
  uintArg,
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
  memoryStats,
} from '@guestmem/core';
import type { Kvm, KvmAnonMapping, KvmGuestMemfd, KvmMapping, KvmVm } from '../api.js';
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
  MADV_DONTNEED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';

/** Largest guest_memfd KVM accepts: the largest page-aligned loff_t. */
const MAX_GMEM_SIZE = (1n << 63n) - 4096n;
const PAGE = 4096n;

/**
 * Optional extensions a driver may offer beyond the uAPI (today the simulated kernel's: guest
 * access and poison injection). Detected at run time, surfaced through
 * capabilities ('guest-access', 'poison-injection'), never through optional methods of the
 * neutral API. `simKvmExtensions` (sim-extensions.ts) builds the simulated kernel's.
 */
export interface KvmGuestAccessDriver {
  /** A vCPU read of guest memory (the access kind follows the gfn's attribute). */
  guestRead(vm: KvmVm, gpa: bigint | number, len: number): Uint8Array;
  /** A vCPU write of guest memory. */
  guestWrite(vm: KvmVm, gpa: bigint | number, data: Uint8Array): void;
  /** Memory-failure injection on the guest_memfd page at byte `offset`. */
  markPoisoned?(memfd: KvmGuestMemfd, offset: bigint): void;
  /** Exact backing of a guest_memfd (bytes with pages, 2 MiB folios), for `GuestMemory.stats()`. */
  usage?(memfd: KvmGuestMemfd): { allocatedBytes: bigint; hugeFolios: number } | undefined;
}

/**
 * A driver's neutral vCPUs (capability 'vcpu'), wired in by whoever opens the driver like
 * {@link KvmGuestAccessDriver}: native KVM runs the image's x86-64 code on a `KVM_CREATE_VCPU` fd
 * (`nativeKvmVcpus`, kvm-vcpu.ts); the simulated kernel runs its op list on a sim vCPU fd
 * (`SimKvmVm.createVcpu`, through `simKvmVcpus` in sim-vcpu.ts).
 */
export interface KvmVcpuDriver {
  /**
   * Creates vCPU `id` of `vm` (`KVM_CREATE_VCPU`). The vCPU fd outlives the VM fd (kernel rule);
   * the adapter closes it on `Vm.destroy()`. `onClose` runs once when the returned vCPU closes.
   */
  createVcpu(vm: KvmVm, id: number, onClose: (v: Vcpu) => void): Vcpu;
}

function answerCaps(
  kvm: { checkExtension(cap: number): number },
  backend: string,
  simulated: boolean,
  ext: KvmGuestAccessDriver | undefined,
  vcpus: KvmVcpuDriver | undefined,
  level: 'system' | 'vm',
): Capabilities {
  const gmem = kvm.checkExtension(KVM_CAP_GUEST_MEMFD) === 1;
  const flags = BigInt(kvm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS));
  const attrs = BigInt(kvm.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES));
  const vmTypes = kvm.checkExtension(KVM_CAP_VM_TYPES);
  const caps: CapabilityName[] = ['unbind'];
  if (gmem) caps.push('guest-memory', 'punch-hole');
  if (flags & GUEST_MEMFD_FLAG_MMAP) caps.push('host-map');
  if (flags & GUEST_MEMFD_FLAG_INIT_SHARED) caps.push('initially-shared');
  const attrPrivate = (attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n;
  // The system fd says whether *some* VM type has private memory; a VM fd answers for that VM
  // (a default VM on a kernel that also offers SW_PROTECTED has none).
  if (attrPrivate || (level === 'system' && (vmTypes & (1 << KVM_X86_SW_PROTECTED_VM)) !== 0)) caps.push('private-memory');
  if (attrPrivate) caps.push('convert-in-place');
  if (ext) caps.push('guest-access');
  if (ext?.markPoisoned) caps.push('poison-injection');
  // Native: KVM_CREATE_VCPU runs the image's x86 code; simulated: the image's op list.
  if (vcpus) caps.push('vcpu');
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
  /** The driver's extensions (guest access, poison), if it has any. */
  readonly guestAccess: KvmGuestAccessDriver | undefined;
  /** The driver's neutral vCPUs, if it has them (capability 'vcpu'). */
  readonly vcpuDriver: KvmVcpuDriver | undefined;
  private readonly vms = new Set<KvmVmAdapter>();

  /**
   * @param kvm the system fd (owned from now on).
   * @param id backend id (default `'kvm'` native, `'kvm-sim'` sim).
   * @param guestAccess the driver's extensions beyond the uAPI, if any ('guest-access',
   *   'poison-injection'). `openKvmHypervisor({ driver: 'sim' })` and the 'kvm-sim' provider pass
   *   the simulated kernel's; without them a simulated kernel has no 'guest-access'.
   * @param vcpus the driver's neutral vCPUs ('vcpu'); `openKvmHypervisor` and the providers pass
   *   them for both drivers.
   */
  constructor(
    readonly kvm: Kvm,
    readonly id: string = kvm.driver === 'native' ? 'kvm' : 'kvm-sim',
    guestAccess?: KvmGuestAccessDriver,
    vcpus?: KvmVcpuDriver,
  ) {
    this.guestAccess = guestAccess;
    this.vcpuDriver = vcpus;
    this.views = new HostViewSet(id);
    this.capabilities = answerCaps(kvm, id, kvm.driver === 'sim', this.guestAccess, vcpus, 'system');
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

  /** Unmaps every host view, destroys every VM still alive, closes every guest_memfd and `/dev/kvm`. */
  close(): void {
    this.views.unmapAll();
    for (const vm of [...this.vms]) vm.destroy();
    this.vms.clear();
    for (const m of [...this.memories]) m.close();
    if (!this.kvm.closed) this.kvm.close();
  }

  /** @internal Host views not yet unmapped (unmapped by {@link close}). */
  readonly views: HostViewSet;

  /** @internal Guest-memory objects still open (closed by {@link close}). */
  readonly memories = new Set<KvmGuestMemory>();

  /** @internal A destroyed VM stops being tracked (so create/destroy cycles do not accumulate). */
  forgetVm(vm: KvmVmAdapter): void {
    this.vms.delete(vm);
  }
}

/** One KVM VM behind the neutral {@link Vm}. */
export class KvmVmAdapter implements Vm {
  private static nextId = 1;
  readonly id = KvmVmAdapter.nextId++;
  readonly capabilities: Capabilities;
  readonly memoryState = new RangeStateMap<MemoryAccess>('shared');
  private readonly slots = new Map<number, KvmBinding>();
  private readonly vcpus = new Set<Vcpu>();
  private nextVcpuId = 0;
  private dead = false;

  constructor(
    readonly hypervisor: KvmHypervisor,
    readonly kvmVm: KvmVm,
  ) {
    this.capabilities = answerCaps(
      kvmVm,
      hypervisor.id,
      hypervisor.kvm.driver === 'sim',
      hypervisor.guestAccess,
      hypervisor.vcpuDriver,
      'vm',
    );
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
    // Bad input is EINVAL before any capability answer, as on every backend.
    const size = checkMemorySize(opts, c.maxGuestMemorySize, this.hypervisor.id);
    if (opts.hugePages) throw gmErr('EOPNOTSUPP', 'createGuestMemory', this.hypervisor.id, 'guest_memfd at 6.18 has only 4 KiB folios');
    if (opts.hostMappable && !c.has('host-map'))
      throw gmErr('EOPNOTSUPP', 'createGuestMemory', this.hypervisor.id, 'GUEST_MEMFD_FLAG_MMAP is not offered');
    if (opts.initiallyShared && !c.has('initially-shared')) {
      throw gmErr('EOPNOTSUPP', 'createGuestMemory', this.hypervisor.id, 'GUEST_MEMFD_FLAG_INIT_SHARED is not offered for this VM');
    }
    let flags = 0n;
    if (opts.hostMappable) flags |= GUEST_MEMFD_FLAG_MMAP;
    if (opts.initiallyShared) flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
    const mem = new KvmGuestMemory(this, this.kvmVm.createGuestMemfd({ size, flags }));
    this.hypervisor.memories.add(mem);
    return mem;
  }

  /**
   * Binds `[offset, offset+size)` of `memory` at `gpa` as one memslot (`KVM_SET_USER_MEMORY_REGION2`
   * with `KVM_MEM_GUEST_MEMFD`). The slot's shared side (`userspace_addr`) is:
   * - the guest_memfd itself, mapped shared, when it is host-mappable and initially shared (default
   *   VM): the MMU and KVM's emulator then see the same memory;
   * - otherwise fresh anonymous host memory (`Kvm.mmapAnonymous`, both drivers): what a CoCo VMM
   *   uses for shared pages, since a private-memory VM's guest_memfd cannot be INIT_SHARED, and what
   *   KVM's emulator reads for a slot whose guest_memfd it does not fault in (docs/kvm-guest-memfd.md §0.2, §2.8).
   * The arguments pass core's neutral {@link checkBind} first.
   * The mapping belongs to the binding: unbind (and VM destroy) unmaps it.
   * `access` (default: 'private' on a VM with private memory, else 'shared') is applied to the GPA
   * range with `convert(…, { discard: false })` when the range is not already in that state.
   */
  bind(opts: BindOptions): MemoryBinding {
    this.live('bind');
    const { gpa, offset, size, access, readOnly } = checkBind(opts, {
      backend: this.hypervisor.id,
      owns: (m) => m instanceof KvmGuestMemory && m.vm === this,
      privateMemory: this.capabilities.has('private-memory'),
    });
    const mem = opts.memory as KvmGuestMemory;
    if (readOnly)
      throw gmErr(
        'EOPNOTSUPP',
        'bind',
        this.hypervisor.id,
        'KVM rejects read-only guest_memfd slots (KVM_MEM_READONLY with KVM_MEM_GUEST_MEMFD is EINVAL)',
      );
    const slot = this.freeSlot();
    let mapping: KvmMapping | undefined;
    let hostMemory: KvmAnonMapping | undefined;
    if (mem.hostMappable && mem.initiallyShared) {
      mapping = mem.fd.mmap({ length: size, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset });
    } else {
      hostMemory = this.hypervisor.kvm.mmapAnonymous(size);
    }
    const shared = mapping ?? hostMemory;
    try {
      this.kvmVm.setUserMemoryRegion2({
        slot,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: gpa,
        memorySize: size,
        userspace: shared ? { mapping: shared } : null,
        guestMemfdOffset: offset,
        guestMemfd: mem.fd.fd,
      });
    } catch (e) {
      shared?.munmap();
      throw e;
    }
    const b = new KvmBinding(this, slot, toGpa(gpa), size, mem, fileOffset(offset), shared, hostMemory);
    this.slots.set(slot, b);
    try {
      if (!this.memoryState.isUniform(Number(gpa / PAGE), Number((gpa + size) / PAGE), access))
        this.convert({ gpa, size }, access, { discard: false });
      // A guest_memfd-only slot (host-mappable memory) shows the file's pages to shared accesses
      // too: pages that held private data are scrubbed before they are bound shared.
      const first = Number(offset / PAGE);
      const end = Number((offset + size) / PAGE);
      if (access === 'shared' && mem.hostMappable) {
        for (const r of mem.pageAccess.runs(first, end)) {
          if (r.state === 'private')
            mem.fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BigInt(r.first) * PAGE, BigInt(r.end - r.first) * PAGE);
        }
      }
      mem.pageAccess.set(first, end, access);
    } catch (e) {
      b.unbind();
      throw e;
    }
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
        guestMemfdOffset: 0,
        guestMemfd: 0,
      });
    }
    this.slots.delete(b.slot);
    b.mapping?.munmap();
    (b.memory as KvmGuestMemory).releaseIfUnused();
  }

  /** True while a slot of this VM is bound to `mem`. */
  usesMemory(mem: KvmGuestMemory): boolean {
    for (const b of this.slots.values()) if (b.memory === mem) return true;
    return false;
  }

  /** True while a slot's own guest_memfd mapping of `mem` is still mapped (it keeps the file alive). */
  mapsMemory(mem: KvmGuestMemory): boolean {
    for (const b of this.slots.values()) if (b.memory === mem && b.mapping && !b.mapping.unmapped) return true;
    return false;
  }

  /**
   * After a punch of `[offset, offset+len)` of `mem`: drops the same pages from the anonymous shared
   * side of every binding of that range (`MADV_DONTNEED`), so neither the host nor a guest reading
   * through `userspace_addr` sees the old contents (invariant 2). A shared side that is the
   * guest_memfd's own mapping needs nothing: the punch already zapped it.
   */
  discardShared(mem: KvmGuestMemory, offset: bigint, len: bigint): void {
    for (const b of this.slots.values()) {
      if (b.memory !== mem || !b.hostMemory) continue;
      const lo = offset > b.offset ? offset : b.offset;
      const hi = offset + len < b.offset + b.size ? offset + len : b.offset + b.size;
      if (lo < hi) b.hostMemory.madvise(lo - b.offset, hi - lo, MADV_DONTNEED);
    }
  }

  /** {@link KvmGuestMemory.stats} of every memory object of this VM still open, with totals. */
  memoryReport(): VmMemoryReport {
    return memoryReport(
      this,
      [...this.hypervisor.memories].filter((m) => m.vm === this),
    );
  }

  bindings(): readonly MemoryBinding[] {
    return [...this.slots.values()].sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
  }

  /**
   * In-place conversion with `KVM_SET_MEMORY_ATTRIBUTES` (needs 'convert-in-place'); listeners of
   * {@link memoryState} hear every gfn run that changed.
   *
   * With `discard` (default true) the side that is no longer used is freed, so a VM does not hold
   * both copies of a page (Cloud Hypervisor #8167, QEMU's `ram_block_discard_range`):
   * - to **shared**: the now-unused private pages are punched out of the guest_memfd
   *   (`fallocate(PUNCH_HOLE|KEEP_SIZE)`); the next private use starts from zero;
   * - to **private**: the now-unused shared pages are dropped from the slot's host memory with
   *   `madvise(MADV_DONTNEED)` when the adapter allocated that memory (anonymous memory then reads
   *   zero on the next shared use). When the shared side is the guest_memfd's own mapping (only on
   *   VMs that cannot convert) nothing is discarded.
   * With `discard: false` both sides keep their contents, as the kernel selftest's conversion
   * handler does (a page converted back finds its old shared data).
   * Ranges outside every binding only change attributes (the neutral rule: unbound parts of a
   * range only change {@link memoryState}).
   */
  convert(range: GpaRange, to: MemoryAccess, opts: ConvertOptions = {}): void {
    this.live('convert');
    // Bad input is EINVAL before the capability answer, as on every backend.
    const { gpa, size } = checkGpaRange(range, 'convert', this.hypervisor.id);
    accessArg(to, 'convert', this.hypervisor.id);
    if (!this.capabilities.has('convert-in-place')) {
      throw gmErr('EOPNOTSUPP', 'convert', this.hypervisor.id, 'KVM_SET_MEMORY_ATTRIBUTES cannot set PRIVATE on this VM');
    }
    if (opts.keepContents) {
      // guest_memfd keeps private and shared copies apart: shared reads never see private bytes.
      throw gmErr(
        'EOPNOTSUPP',
        'convert',
        this.hypervisor.id,
        "keepContents needs 'convert-keeps-contents': KVM's private pages never become shared in place",
      );
    }
    const discard = opts.discard !== false;
    // What each binding in the range needs after the attribute change. A host-mappable guest_memfd
    // makes the slot guest_memfd-only (6.18): shared accesses read the same pages the guest wrote
    // privately, so those are punched even without `discard` (neutral rule: private bytes never
    // become visible by a conversion).
    const first = Number(gpa / PAGE);
    const end = Number((gpa + size) / PAGE);
    const prior = this.memoryState.runs(first, end);
    // Only the pages that change are discarded: a host-mappable guest_memfd holds a page's shared
    // data in the file too, so punching a page already in state `to` would erase data the
    // conversion does not touch.
    const changed = prior.filter((r) => r.state !== to);
    const steps: Array<() => void> = [];
    for (const b of this.slots.values()) {
      const mem = b.memory as KvmGuestMemory;
      for (const r of changed) {
        const [rs, re] = [BigInt(r.first) * PAGE, BigInt(r.end) * PAGE];
        const lo = rs > b.gpa ? rs : b.gpa;
        const hi = re < b.gpa + b.size ? re : b.gpa + b.size;
        if (lo >= hi) continue;
        if (to === 'shared' && (discard || mem.hostMappable)) {
          // The adapter keeps a guest_memfd open while a slot uses it (KvmGuestMemory.close), so a
          // binding that outlived its handle is still discarded; a closed fd has nothing to punch.
          if (mem.fd.closed) continue;
          steps.push(() => mem.fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, b.offset + (lo - b.gpa), hi - lo));
        } else if (to === 'private' && discard) {
          const host = b.hostMemory;
          if (host) steps.push(() => host.madvise(lo - b.gpa, hi - lo, MADV_DONTNEED));
          // A guest_memfd-only slot (host-mappable memory) kept its shared data in the file's own
          // pages: discarding drops them too, so the page starts private from zero as on every
          // one-copy backend (never the bytes it held while shared).
          if (mem.hostMappable && !mem.fd.closed)
            steps.push(() => mem.fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, b.offset + (lo - b.gpa), hi - lo));
        }
      }
    }
    // The attributes ioctl is the conversion: it either applies to the whole range or fails
    // without changing anything. The state map mirrors the kernel right after it.
    this.kvmVm.setMemoryAttributes({ address: gpa, size, attributes: to === 'private' ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n, flags: 0 });
    this.memoryState.set(first, end, to);
    try {
      for (const step of steps) step();
      for (const b of this.slots.values()) {
        const lo = gpa > b.gpa ? gpa : b.gpa;
        const hi = gpa + size < b.gpa + b.size ? gpa + size : b.gpa + b.size;
        if (lo < hi)
          (b.memory as KvmGuestMemory).pageAccess.set(
            Number((b.offset + (lo - b.gpa)) / PAGE),
            Number((b.offset + (hi - b.gpa)) / PAGE),
            to,
          );
      }
    } catch (e) {
      // Discarding failed (an unexpected kernel error: closed fds are skipped above). Put the
      // attributes back, so the conversion did not happen; pages already discarded read zero.
      let restored = true;
      for (const r of prior) {
        try {
          this.kvmVm.setMemoryAttributes({
            address: BigInt(r.first) * PAGE,
            size: BigInt(r.end - r.first) * PAGE,
            attributes: r.state === 'private' ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n,
            flags: 0,
          });
          this.memoryState.set(r.first, r.end, r.state);
        } catch {
          restored = false;
        }
      }
      const ge = GuestMemError.is(e) ? e : undefined;
      throw new GuestMemError({
        code: !ge ? 'EIO' : ge.code === 'SIGBUS' ? 'EIO' : ge.code,
        op: 'convert',
        backend: this.hypervisor.id,
        syscall: ge?.syscall,
        detail: restored
          ? `discarding the old side failed, the range's attributes were restored: ${ge?.message ?? String(e)}`
          : `discarding the old side failed and restoring the attributes failed too: ${ge?.message ?? String(e)}`,
        info: { converted: !restored, discardFailed: true },
        cause: e,
      });
    }
  }

  guestRead(gpa: bigint | number, len: number): Uint8Array {
    this.live('guestRead');
    const ga = this.hypervisor.guestAccess;
    if (!ga) throw gmErr('EOPNOTSUPP', 'guestRead', this.hypervisor.id, 'this driver cannot run guest accesses');
    // A safe-integer number goes through as is (the driver's fast path avoids BigInt arithmetic).
    return ga.guestRead(this.kvmVm, guestAccessGpa(gpa, len, 'guestRead', this.hypervisor.id), len);
  }

  guestWrite(gpa: bigint | number, data: Uint8Array): void {
    this.live('guestWrite');
    const ga = this.hypervisor.guestAccess;
    if (!ga) throw gmErr('EOPNOTSUPP', 'guestWrite', this.hypervisor.id, 'this driver cannot run guest accesses');
    ga.guestWrite(this.kvmVm, guestAccessGpa(gpa, data.length, 'guestWrite', this.hypervisor.id), data);
  }

  /**
   * The slots' `userspace_addr` memory by GPA (see `Vm.sharedView`): the guest_memfd's own mapping
   * (host-mappable, initially shared memory on a default VM) or the anonymous memory the adapter
   * gave the slot. A slot without host memory is a hole (`EFAULT`).
   */
  sharedView(range: GpaRange): HostView {
    this.live('sharedView');
    const parts = [...this.slots.values()].flatMap((b) => {
      const m = b.mapping;
      if (!m || m.unmapped) return [];
      const into = (m as { readInto?: (at: number, dst: Uint8Array, off: number) => void }).readInto;
      return [
        {
          gpa: b.gpa as bigint,
          size: b.size,
          read: (at: number, len: number) => m.read(at, len),
          ...(into ? { readInto: (at: number, dst: Uint8Array, off: number) => into.call(m, at, dst, off) } : {}),
          write: (at: number, d: Uint8Array) => m.write(at, d),
          fill: (at: number, len: number, byte: number) => m.fill(at, len, byte),
          get live() {
            return b.active && !m.unmapped;
          },
        },
      ];
    });
    const view = sharedViewOf(parts, range, this.hypervisor.id);
    // Tracked like every host view, so Hypervisor.close() ends it.
    return this.hypervisor.views.add(view, () => view.unmap());
  }

  /**
   * A vCPU: on native KVM a `KVM_CREATE_VCPU` that runs the image's x86-64 code in long mode; on the
   * simulated kernel one that runs the image's op list through the kernel's guest-access rules.
   * Ids count from 0 per VM.
   */
  createVcpu(): Vcpu {
    this.live('createVcpu');
    const driver = this.hypervisor.vcpuDriver;
    if (!driver) throw gmErr('EOPNOTSUPP', 'createVcpu', this.hypervisor.id, "this driver has no vCPUs (no 'vcpu' capability)");
    const id = this.nextVcpuId;
    const v = driver.createVcpu(this.kvmVm, id, (closed) => this.vcpus.delete(closed));
    this.nextVcpuId++;
    this.vcpus.add(v);
    return v;
  }

  /** Deletes every slot and closes the VM fd. Guest memory objects keep the VM alive until they close (KVM rule). */
  destroy(): void {
    if (this.dead) return;
    for (const v of [...this.vcpus]) v.close();
    for (const b of [...this.slots.values()]) b.unbind();
    this.dead = true;
    this.kvmVm.close();
    this.hypervisor.forgetVm(this);
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
    this.pageAccess = new RangeStateMap<MemoryAccess>(this.initiallyShared ? 'shared' : 'private', Number(this.size / PAGE));
  }

  /**
   * Per file page, whether it may hold private data ('private') or only data the guest or host
   * wrote while it was shared. Used for host-mappable memory, whose slots are guest_memfd-only:
   * a page that was private is scrubbed before it is bound shared (neutral rule: private bytes
   * never become visible by surprise).
   */
  readonly pageAccess: RangeStateMap<MemoryAccess>;

  get id(): number {
    return this.fd.fd;
  }

  /** Closed for the caller; the fd itself stays open while a slot is bound to it (see {@link close}). */
  get closed(): boolean {
    return this.userClosed || this.fd.closed;
  }
  private userClosed = false;

  private assertOpen(op: string): void {
    if (this.closed) throw gmErr('EBADF', op, this.vm.hypervisor.id, `guest_memfd ${this.fd.fd} was closed through this handle`);
  }

  /** EBADF once closed; the neutral range rules (core's `checkFileRange`) before `fallocate`. */
  private fileRange(op: string, offset: bigint | number, len: bigint | number): { offset: bigint; len: bigint } {
    if (this.closed) throw gmErr('EBADF', op, this.vm.hypervisor.id, `memory ${this.id} is closed`, { syscall: 'fallocate' });
    return checkFileRange(offset, len, this.size, op, this.vm.hypervisor.id);
  }

  allocate(offset: bigint | number, len: bigint | number): void {
    const r = this.fileRange('allocate', offset, len);
    this.fd.fallocate(FALLOC_FL_KEEP_SIZE, r.offset, r.len);
    this.#track(r.offset, r.len, true);
  }

  /** Punches the guest_memfd range, and the same pages of the anonymous shared side of its bindings. */
  punchHole(offset: bigint | number, len: bigint | number): void {
    const r = this.fileRange('punchHole', offset, len);
    this.fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r.offset, r.len);
    this.#track(r.offset, r.len, false);
    this.vm.discardShared(this, r.offset, r.len);
  }

  /** Pages allocated through this object (native driver: the kernel offers no count; see `stats`). */
  readonly #allocated = new RangeStateMap<boolean>(false);
  readonly #mapped = new HostMappedCounter();

  #track(offset: bigint, len: bigint, allocated: boolean): void {
    // Called after a successful fallocate, so the range is valid and page-aligned.
    const first = Number(offset / PAGE);
    this.#allocated.set(first, first + Number(len / PAGE), allocated);
  }

  /**
   * On the simulated kernel the counts are exact (the file's own pages and folios). On the native
   * driver `allocatedBytes` is what was fallocated through this object minus what was punched
   * (`accounting: 'tracked'`): a guest_memfd reports `st_blocks = 0` at 6.18, and pages the kernel
   * allocates on a fault are not visible from here.
   */
  stats(): GuestMemoryStats {
    // The simulated kernel counts its backing exactly; the native driver counts what went through this object.
    const exact = this.vm.hypervisor.guestAccess?.usage?.(this.fd);
    return memoryStats(this, this.vm, exact, this.#mapped.bytes, {
      allocatedBytes: BigInt(this.#allocated.count(true, 0, Number(this.size / PAGE))) * PAGE,
    });
  }

  /**
   * Injects a memory failure on the page at byte `offset` (needs 'poison-injection', simulated
   * kernels only): guest accesses then fail with EHWPOISON, host views with SIGBUS, until the page
   * is punched. Not part of the neutral `GuestMemory` interface yet (core's capability names it).
   */
  markPoisoned(offset: bigint | number): void {
    this.assertOpen('markPoisoned');
    const ext = this.vm.hypervisor.guestAccess;
    if (!ext?.markPoisoned) throw gmErr('EOPNOTSUPP', 'markPoisoned', this.vm.hypervisor.id, 'this driver cannot inject memory failures');
    ext.markPoisoned(this.fd, checkPageOffset(offset, this.size, 'markPoisoned', this.vm.hypervisor.id));
  }

  map(opts: { offset?: bigint | number; length?: number } = {}): HostView {
    if (!this.vm.capabilities.has('host-map'))
      throw gmErr('EOPNOTSUPP', 'map', this.vm.hypervisor.id, 'GUEST_MEMFD_FLAG_MMAP is not offered');
    if (this.closed) throw gmErr('EBADF', 'map', this.vm.hypervisor.id, `memory ${this.id} is closed`, { syscall: 'mmap' });
    const { offset, length: asked } = checkMapRange(opts, this.size, this.vm.hypervisor.id);
    // mmap maps whole pages: the view covers them, as on every backend (the memory's size is a
    // page multiple, so the rounded range stays inside it).
    const length = Math.ceil(asked / 4096) * 4096;
    const m = this.fd.mmap({ length, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset });
    const unmapped = this.#mapped.open(length);
    return this.vm.hypervisor.views.add(m, () => {
      m.munmap();
      unmapped();
      this.releaseIfUnused();
    });
  }

  /**
   * Closes the memory for the caller. When nothing else keeps the file alive, the guest_memfd is
   * closed now (its last reference: the kernel unbinds it from its slots). While a slot uses it AND
   * a mapping still pins the file (a host view, or the slot's own mapping), the file would live on
   * anyway, so the adapter keeps the fd until the last of those goes: a conversion must still be
   * able to discard (punch) the private pages — otherwise a page converted to shared would keep
   * its private bytes.
   */
  close(): void {
    if (this.userClosed) return;
    this.userClosed = true;
    this.vm.hypervisor.memories.delete(this);
    this.releaseIfUnused();
  }

  /** @internal Closes the fd once the caller closed the handle and no slot uses a file a mapping pins. */
  releaseIfUnused(): void {
    if (!this.userClosed || this.fd.closed) return;
    const pinned = this.#mapped.bytes > 0n || this.vm.mapsMemory(this);
    if (this.vm.destroyed || !this.vm.usesMemory(this) || !pinned) this.fd.close();
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
    /** The mapping used as the slot's userspace_addr, if any (unmapped with the binding). */
    readonly mapping: KvmMapping | undefined,
    /** The anonymous host memory behind the slot's shared side, when the adapter allocated it. */
    readonly hostMemory: KvmAnonMapping | undefined = undefined,
  ) {}

  /**
   * The host's view of this binding's shared side (`userspace_addr`): offset 0 is `gpa`. Reads of a
   * page the guest holds private return the shared copy only (or zero after a discard), never
   * private data. `undefined` when the slot has no host memory (`userspace_addr` 0).
   */
  sharedView(): HostView | undefined {
    const m = this.mapping;
    if (!m || m.unmapped) return undefined;
    // The binding owns the memory: it is unmapped by unbind(), not by a view.
    return hostView(m, () => {}, this.vm.hypervisor.id);
  }

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
