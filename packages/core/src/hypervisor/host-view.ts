import { gmErr, HostAccessFault } from '../errors/guest-mem-error.js';
import type { ReadonlyRangeStateMap } from '../state/range-state-map.js';
import type { MemoryAccess } from './interfaces.js';

const PAGE = 4096n;
import type { HostView } from './interfaces.js';
import { showArg } from './validate.js';

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
 *
 * The accessor arguments follow the neutral number rule here, once for every backend, before the
 * source sees them: `at`/`len` that are not safe non-negative integers, a `fill` byte outside
 * 0..255 and `data` that is not a `Uint8Array` are `EINVAL`; a range past the view's end is
 * `EFAULT` (the access would leave the mapping); any access after `unmap()` is `EFAULT`. Errors
 * name `backend` (the hypervisor's id) and the op `host read` / `host write`.
 */
export function hostView(source: HostViewSource, unmap: () => void, backend = 'core'): HostView {
  const length = Number(source.length);
  let ended = false;
  const notIndex = (op: string, what: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw gmErr('EINVAL', op, backend, `${what} ${showArg(v)} is not an integer >= 0`, { info: { [what]: v } });
    }
  };
  const check = (op: string, at: unknown, len: unknown): void => {
    if (ended) throw gmErr('EFAULT', op, backend, 'the view was unmapped');
    notIndex(op, 'at', at);
    notIndex(op, 'len', len);
    if ((at as number) + (len as number) > length) {
      throw gmErr('EFAULT', op, backend, `[${at as number}, +${len as number}) is outside the ${length}-byte view`, {
        info: { at, len, length },
      });
    }
  };
  return {
    length,
    read: (at, len) => {
      check('host read', at, len);
      return source.read(at, len);
    },
    readInto: (at, dst, dstOffset = 0) => {
      if (!(dst instanceof Uint8Array)) throw gmErr('EINVAL', 'host read', backend, 'dst must be a Uint8Array');
      if (typeof dstOffset !== 'number' || !Number.isSafeInteger(dstOffset) || dstOffset < 0 || dstOffset > dst.length) {
        throw gmErr('EINVAL', 'host read', backend, `dstOffset ${showArg(dstOffset)} is outside the ${dst.length}-byte buffer`, {
          info: { dstOffset },
        });
      }
      check('host read', at, dst.length - dstOffset);
      if (source.readInto) source.readInto(at, dst, dstOffset);
      else dst.set(source.read(at, dst.length - dstOffset), dstOffset);
    },
    write: (at, data) => {
      if (!(data instanceof Uint8Array)) throw gmErr('EINVAL', 'host write', backend, 'data must be a Uint8Array');
      check('host write', at, data.length);
      source.write(at, data);
    },
    fill: (at, len, byte) => {
      check('host write', at, len);
      if (typeof byte !== 'number' || !Number.isInteger(byte) || byte < 0 || byte > 255) {
        throw gmErr('EINVAL', 'host write', backend, `fill byte ${showArg(byte)} is not an integer in 0..255`, { info: { byte } });
      }
      source.fill(at, len, byte);
    },
    unmap: () => {
      ended = true;
      unmap();
    },
  };
}

/**
 * The host views one hypervisor handed out, so {@link Hypervisor.close} can end every one of them
 * (including views of memory the caller already closed). A view leaves the set when it is unmapped.
 */
export class HostViewSet {
  private readonly live = new Set<() => void>();

  /** @param backend the hypervisor's id, named by the views' errors (see {@link hostView}). */
  constructor(readonly backend = 'core') {}

  /** A view of `source` whose `unmap` runs `release` once and forgets the view. */
  add(source: HostViewSource, release: () => void): HostView {
    let done = false;
    const view = hostView(
      source,
      () => {
        if (done) return;
        done = true;
        this.live.delete(view.unmap);
        release();
      },
      this.backend,
    );
    // The set ends views through their own unmap(), so an access after unmapAll() is EFAULT like
    // after unmap() (ending only the source let a view's accessors reach a released mapping).
    this.live.add(view.unmap);
    return view;
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

/**
 * The neutral rule "the host never reads private memory" for a backend that tracks each page's
 * access itself: `SIGBUS` ({@link HostAccessFault}) at the first private page of bytes
 * `[at, at+len)` of a view at byte `offset` of a memory whose page states are `pages`. Arguments a
 * view refuses on its own (non-integers, negative, empty) pass through unchecked.
 */
export function refusePrivatePages(
  pages: ReadonlyRangeStateMap<MemoryAccess>,
  op: string,
  backend: string,
  offset: bigint,
  at: number,
  len: number,
): void {
  if (!Number.isSafeInteger(at) || !Number.isSafeInteger(len) || at < 0 || len <= 0) return;
  const first = Number((offset + BigInt(at)) / PAGE);
  const end = Math.min(pages.limit, Number((offset + BigInt(at) + BigInt(len) + PAGE - 1n) / PAGE));
  if (first >= end || pages.isUniform(first, end, 'shared')) return;
  const run = pages.runs(first, end).find((r) => r.state === 'private')!;
  throw new HostAccessFault({
    op: `host ${op}`,
    backend,
    offset: BigInt(Math.max(run.first, first)) * PAGE,
    detail: 'the page is private to the guest',
  });
}
