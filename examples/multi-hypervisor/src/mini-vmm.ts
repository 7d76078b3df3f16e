/**
 * MiniVmm: the memory side of a VMM, written once against guestmem's neutral API and run unchanged
 * on KVM (real or simulated) and simulated Gunyah. It shows the three things VMM authors keep
 * re-building (rust-vmm/vm-memory#315, cloud-hypervisor#8167 and #8501, kata-containers#13066):
 *
 * 1. a RAM region that owns its guest-memory object (no stray fds),
 * 2. per-page shared/private state with listeners — here an "IOMMU" that keeps exactly the shared
 *    pages DMA-mapped, as Cloud Hypervisor did for SEV-SNP + VFIO (#8501),
 * 3. freeing memory on balloon inflate and on conversion (punch-hole).
 *
 * Every backend difference is a capability query, never a backend id check.
 */
import { GuestMemError, RangeStateMap, type GuestMemory, type Hypervisor, type MemoryBinding, type Vm } from '@guestmem/core';

const PAGE = 4096n;

/** What the VMM reports. */
export interface MiniVmmStats {
  backend: string;
  /** Guest frames the IOMMU currently maps for device DMA (the shared ones). */
  dmaMappedPages: number;
  /** Guest frames given back by the balloon. */
  balloonedPages: number;
}

export class MiniVmm {
  readonly vm: Vm;
  readonly ram: GuestMemory;
  readonly binding: MemoryBinding;
  /** The "IOMMU": DMA-mapped guest frames, maintained only from state-change events. */
  readonly iommu = new RangeStateMap<'mapped' | 'unmapped'>('unmapped');
  private readonly ballooned = new RangeStateMap<boolean>(false);
  private readonly log: (s: string) => void;

  constructor(
    readonly hypervisor: Hypervisor,
    readonly ramBase: bigint,
    readonly ramSize: bigint,
    log: (s: string) => void = () => {},
  ) {
    this.log = log;
    const caps = hypervisor.capabilities;
    // A confidential VM where the backend has private memory; a plain one otherwise.
    this.vm = hypervisor.createVm({ confidential: caps.has('private-memory') });
    const mappable = this.vm.capabilities.has('host-map') && this.vm.capabilities.has('initially-shared');
    this.ram = this.vm.createGuestMemory({ size: ramSize, hostMappable: mappable, initiallyShared: mappable });
    // The IOMMU follows the VM's shared/private state: shared frames are DMA-mappable.
    this.vm.memoryState.onChange((c) => {
      const first = Math.max(c.first, this.gfn(ramBase));
      const end = Math.min(c.end, this.gfn(ramBase + ramSize));
      if (first < end) this.iommu.set(first, end, c.to === 'shared' ? 'mapped' : 'unmapped');
    });
    this.binding = this.vm.bind({ memory: this.ram, offset: 0, gpa: ramBase, size: ramSize, access: 'shared' });
    // Whatever is shared at boot is DMA-mappable (no event fires for the initial state).
    for (const r of this.vm.memoryState.runs(this.gfn(ramBase), this.gfn(ramBase + ramSize))) {
      if (r.state === 'shared') this.iommu.set(r.first, r.end, 'mapped');
    }
    log(`booted on ${hypervisor.id}: ${ramSize / 1024n / 1024n} MiB RAM at 0x${ramBase.toString(16)}`);
  }

  /** Loads an image at `gpa` the way this backend allows: through a host view, else as the guest. */
  load(gpa: bigint, image: Uint8Array): void {
    const off = Number(gpa - this.ramBase);
    if (this.ram.hostMappable && this.vm.memoryState.isUniform(this.gfn(gpa), this.gfn(gpa + BigInt(image.length) + PAGE - 1n), 'shared')) {
      const view = this.ram.map({ offset: BigInt(off) - (BigInt(off) % PAGE), length: image.length + (off % 4096) });
      try {
        view.write(off % 4096, image);
      } finally {
        view.unmap();
      }
    } else {
      this.vm.guestWrite(gpa, image);
    }
  }

  /** What the guest sees at `gpa`, where the backend can say (else undefined). */
  peek(gpa: bigint, len: number): Uint8Array | undefined {
    if (this.vm.capabilities.has('guest-access')) return this.vm.guestRead(gpa, len);
    if (!this.ram.hostMappable) return undefined;
    const off = Number(gpa - this.ramBase);
    const view = this.ram.map({ offset: BigInt(off - (off % 4096)), length: len + (off % 4096) });
    try {
      return view.read(off % 4096, len);
    } finally {
      view.unmap();
    }
  }

  /** Balloon inflate: the guest gives `[gpa, gpa+size)` back; its memory is freed at once. */
  inflate(gpa: bigint, size: bigint): void {
    this.ram.punchHole(gpa - this.ramBase, size);
    this.ballooned.set(this.gfn(gpa), this.gfn(gpa + size), true);
    this.log(`balloon inflate ${size / 1024n} KiB at 0x${gpa.toString(16)}`);
  }

  /** Balloon deflate: the pages come back to the guest (and read zero). */
  deflate(gpa: bigint, size: bigint): void {
    this.ballooned.set(this.gfn(gpa), this.gfn(gpa + size), false);
    this.log(`balloon deflate ${size / 1024n} KiB at 0x${gpa.toString(16)}`);
  }

  /**
   * The guest asks to make `[gpa, gpa+size)` private (or shared). Returns false, changing nothing,
   * when this backend cannot convert.
   */
  convert(gpa: bigint, size: bigint, to: 'private' | 'shared'): boolean {
    try {
      this.vm.convert({ gpa, size }, to);
    } catch (e) {
      if (e instanceof GuestMemError && e.code === 'EOPNOTSUPP') return false;
      throw e;
    }
    this.log(`converted ${size / 1024n} KiB at 0x${gpa.toString(16)} to ${to}`);
    return true;
  }

  stats(): MiniVmmStats {
    const lo = this.gfn(this.ramBase);
    const hi = this.gfn(this.ramBase + this.ramSize);
    return {
      backend: this.hypervisor.id,
      dmaMappedPages: this.iommu.count('mapped', lo, hi),
      balloonedPages: this.ballooned.count(true, lo, hi),
    };
  }

  /** Tears everything down: the VM, then the RAM object (its fd). */
  shutdown(): void {
    this.vm.destroy();
    this.ram.close();
    this.log('shut down');
  }

  private gfn(gpa: bigint): number {
    return Number(gpa / PAGE);
  }
}
