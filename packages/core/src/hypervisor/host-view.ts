import type { HostView } from './interfaces.js';

/** Anything with the host-view accessors: core's `HostMapping`, a KVM or Gunyah mapping. */
export interface HostViewSource {
  readonly length: number | bigint;
  read(at: number, len: number): Uint8Array;
  /** Optional copy into a caller's buffer; without it {@link hostView} reads and copies. */
  readInto?(at: number, dst: Uint8Array, dstOffset?: number): void;
  write(at: number, data: Uint8Array): void;
  fill(at: number, len: number, byte: number): void;
}

/**
 * Wraps a backend mapping as the neutral {@link HostView}, with `unmap` doing what the adapter
 * decides (unmap the mapping, or nothing when something else owns it). Adapters use this instead
 * of writing the same forwarding object each.
 */
export function hostView(source: HostViewSource, unmap: () => void): HostView {
  return {
    length: Number(source.length),
    read: (at, len) => source.read(at, len),
    readInto: source.readInto
      ? (at, dst, off = 0) => source.readInto!(at, dst, off)
      : (at, dst, off = 0) => dst.set(source.read(at, dst.length - off), off),
    write: (at, data) => source.write(at, data),
    fill: (at, len, byte) => source.fill(at, len, byte),
    unmap,
  };
}

/**
 * The host views one hypervisor handed out, so {@link Hypervisor.close} can end every one of them
 * (including views of memory the caller already closed). A view leaves the set when it is unmapped.
 */
export class HostViewSet {
  private readonly live = new Set<() => void>();

  /** A view of `source` whose `unmap` runs `release` once and forgets the view. */
  add(source: HostViewSource, release: () => void): HostView {
    let done = false;
    const end = (): void => {
      if (done) return;
      done = true;
      this.live.delete(end);
      release();
    };
    this.live.add(end);
    return hostView(source, end);
  }

  /** Views not yet unmapped. */
  get size(): number {
    return this.live.size;
  }

  /** Unmaps every view still live (each at most once); the first failure is thrown after all ran. */
  unmapAll(): void {
    let first: unknown;
    for (const end of [...this.live]) {
      try {
        end();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}
