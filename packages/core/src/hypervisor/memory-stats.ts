/**
 * Memory introspection, like QEMU's `query-memdev`: what a guest-memory object holds
 * ({@link GuestMemoryStats}, from `GuestMemory.stats()`) and what a VM's memory looks like as a
 * whole ({@link VmMemoryReport}, from `Vm.memoryReport()`). Plain data, JSON-serialisable once
 * bigints are converted; the helpers below let an adapter build both from what it already tracks.
 */
import type { GuestMemFile } from '../file/guest-mem-file.js';
import type { ReadonlyRangeStateMap } from '../state/range-state-map.js';
import type { GuestMemory, MemoryAccess, MemoryBinding, Vm } from './interfaces.js';

const PAGE = 4096n;

/** One binding of a memory object, as {@link GuestMemoryStats.boundRanges} lists it. */
export interface BoundRange {
  readonly gpa: bigint;
  readonly size: bigint;
  /** Byte offset of the range in the memory object. */
  readonly offset: bigint;
  readonly readOnly: boolean;
}

/** A snapshot of one guest-memory object. */
export interface GuestMemoryStats {
  readonly id: number;
  /** Size in bytes. */
  readonly size: bigint;
  /**
   * Bytes with backing pages in the memory object (fallocate, or pages faulted in by a host or
   * guest access), minus what punch-hole released. See {@link accounting} for how exact it is.
   */
  readonly allocatedBytes: bigint;
  /** Bytes of that backing resident in host RAM (equal to `allocatedBytes` where no swap exists). */
  readonly residentBytes: bigint;
  /** Total length of the host views open on it right now. */
  readonly hostMappedBytes: bigint;
  /** Its active bindings, by GPA. */
  readonly boundRanges: readonly BoundRange[];
  /** Bound guest pages whose VM state is private. */
  readonly privatePages: bigint;
  /** Bound guest pages whose VM state is shared. */
  readonly sharedPages: bigint;
  /** 2 MiB folios among its backing (0 where the backend uses 4 KiB pages only). */
  readonly hugeFolios: number;
  /**
   * - `'exact'`: counted from the backing itself (simulated backends, in-process files);
   * - `'tracked'`: counted from the calls made through this object (explicit allocate/punch-hole);
   *   pages the kernel allocated on a fault are not seen. The native KVM driver reports this: a
   *   guest_memfd's `st_blocks` is always 0 at Linux 6.18, so the kernel offers no count.
   */
  readonly accounting: 'exact' | 'tracked';
}

/** A snapshot of a VM's memory: every memory object it created that is still open, with totals. */
export interface VmMemoryReport {
  readonly vmId: number;
  /** The backend id (`Hypervisor.id`). */
  readonly backend: string;
  readonly memories: readonly GuestMemoryStats[];
  readonly totals: {
    readonly size: bigint;
    readonly allocatedBytes: bigint;
    readonly residentBytes: bigint;
    readonly hostMappedBytes: bigint;
    readonly boundBytes: bigint;
    readonly privatePages: bigint;
    readonly sharedPages: bigint;
    readonly hugeFolios: number;
  };
}

/** Pages present and 2 MiB folios of a core {@link GuestMemFile}. */
export function fileUsage(file: GuestMemFile<unknown>): { allocatedBytes: bigint; hugeFolios: number } {
  let huge = 0;
  file.forEachFolio(0, Number(file.size / PAGE), (_index, _folio, order) => {
    if (order === 9) huge++;
  });
  return { allocatedBytes: BigInt(file.pagesPresent) * PAGE, hugeFolios: huge };
}

/** The bindings of `memory` among `bindings`, as {@link BoundRange}s by GPA. */
export function boundRangesOf(memory: GuestMemory, bindings: readonly MemoryBinding[]): BoundRange[] {
  return bindings
    .filter((b) => b.active && b.memory === memory)
    .map((b) => ({ gpa: BigInt(b.gpa), size: b.size, offset: BigInt(b.offset), readOnly: b.readOnly }))
    .sort((a, b) => (a.gpa < b.gpa ? -1 : a.gpa > b.gpa ? 1 : 0));
}

/** Private and shared pages of `ranges` in a VM's state map (keyed by guest frame number). */
export function accessPages(
  state: ReadonlyRangeStateMap<MemoryAccess>,
  ranges: readonly BoundRange[],
): { privatePages: bigint; sharedPages: bigint } {
  let priv = 0n;
  let shared = 0n;
  for (const r of ranges) {
    const first = Number(r.gpa / PAGE);
    const end = Number((r.gpa + r.size) / PAGE);
    const p = BigInt(state.count('private', first, end));
    priv += p;
    shared += BigInt(end - first) - p;
  }
  return { privatePages: priv, sharedPages: shared };
}

/**
 * {@link GuestMemoryStats} of `memory` from what an adapter knows: its backing usage (`undefined`
 * when the backend cannot count it: then `tracked` is used and the accounting is `'tracked'`), its
 * live host-view bytes, and its VM's bindings and shared/private state.
 */
export function memoryStats(
  memory: GuestMemory,
  vm: Vm,
  usage: { allocatedBytes: bigint; hugeFolios: number } | undefined,
  hostMappedBytes: bigint,
  tracked: { allocatedBytes: bigint } = { allocatedBytes: 0n },
): GuestMemoryStats {
  const boundRanges = boundRangesOf(memory, vm.bindings());
  const allocatedBytes = usage?.allocatedBytes ?? tracked.allocatedBytes;
  return {
    id: memory.id,
    size: memory.size,
    allocatedBytes,
    residentBytes: allocatedBytes,
    hostMappedBytes,
    boundRanges,
    ...accessPages(vm.memoryState, boundRanges),
    hugeFolios: usage?.hugeFolios ?? 0,
    accounting: usage ? 'exact' : 'tracked',
  };
}

/** Sums the stats of a VM's open memory objects into a {@link VmMemoryReport}. */
export function memoryReport(vm: Vm, memories: Iterable<GuestMemory>): VmMemoryReport {
  const stats = [...memories].filter((m) => !m.closed).map((m) => m.stats());
  const sum = (f: (s: GuestMemoryStats) => bigint): bigint => stats.reduce((a, s) => a + f(s), 0n);
  return {
    vmId: vm.id,
    backend: vm.hypervisor.id,
    memories: stats,
    totals: {
      size: sum((s) => s.size),
      allocatedBytes: sum((s) => s.allocatedBytes),
      residentBytes: sum((s) => s.residentBytes),
      hostMappedBytes: sum((s) => s.hostMappedBytes),
      boundBytes: sum((s) => s.boundRanges.reduce((a, r) => a + r.size, 0n)),
      privatePages: sum((s) => s.privatePages),
      sharedPages: sum((s) => s.sharedPages),
      hugeFolios: stats.reduce((a, s) => a + s.hugeFolios, 0),
    },
  };
}

/**
 * Counts the bytes of live host views: `open(len)` when a view is created returns the function its
 * `unmap` calls (idempotent).
 */
export class HostMappedCounter {
  #bytes = 0n;
  get bytes(): bigint {
    return this.#bytes;
  }
  open(length: number | bigint): () => void {
    const len = BigInt(length);
    this.#bytes += len;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.#bytes -= len;
    };
  }
}
