import { describe, expect, it, vi } from 'vitest';
import { GuestMemError, HostAccessFault } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { HostMapping } from '../mapping/host-mapping.js';
import { FaultInjectingAllocator } from '../testing/fault-injecting-allocator.js';
import { GuestMemFile } from './guest-mem-file.js';
import type { GuestMemOps } from './types.js';

const P = 4096;
const ops = (extra: Partial<GuestMemOps<string>> = {}): GuestMemOps<string> => ({ backend: 'test', ...extra });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuestMemError) return e.code;
    throw e;
  }
  return undefined;
}

describe('GuestMemFile.create', () => {
  it('rejects size 0, unaligned and oversized files with EINVAL naming the value', () => {
    for (const size of [0, -4096, 1, 4095, 4097]) {
      expect(codeOf(() => GuestMemFile.create(size, 0, ops()))).toBe('EINVAL');
    }
    expect(codeOf(() => GuestMemFile.create(1n << 63n, 0, ops()))).toBe('EINVAL');
    expect(() => GuestMemFile.create(4095, 0, ops())).toThrow(/size 4095/);
    const f = GuestMemFile.create((1n << 63n) - 4096n, 0, ops());
    expect(f.pages).toBe(2 ** 51 - 1);
    expect(f.pagesPresent).toBe(0);
  });

  it('carries the backend and op in errors', () => {
    try {
      GuestMemFile.create(1, 0, ops());
    } catch (e) {
      expect(e).toMatchObject({ code: 'EINVAL', errno: 22, op: 'create', backend: 'test' });
    }
  });
});

describe('GuestMemFile allocate / punch / read', () => {
  it('allocates without zeroing and every page reads zero on first use', () => {
    const alloc = new ArenaFolioAllocator({ arenaMiB: 2 });
    // Dirty the arena: allocate, write, free.
    const dirty = GuestMemFile.create(16 * P, 0, ops(), { allocator: alloc });
    dirty.fill(0, 16 * P, 0xee);
    dirty.release();
    const f = GuestMemFile.create(16 * P, 0, ops(), { allocator: alloc });
    f.allocate(0, 16 * P);
    expect(f.pagesPresent).toBe(16);
    expect(f.isUptodate(0)).toBe(false);
    expect(f.read(0, 16 * P).every((b) => b === 0)).toBe(true);
    expect(f.isUptodate(0)).toBe(true);
  });

  it('checks ranges: EINVAL for len 0, unaligned, past EOF; punch beyond EOF is fine', () => {
    const f = GuestMemFile.create(4 * P, 0, ops());
    expect(codeOf(() => f.allocate(0, 0))).toBe('EINVAL');
    expect(codeOf(() => f.allocate(1, P))).toBe('EINVAL');
    expect(codeOf(() => f.allocate(4 * P, P))).toBe('EINVAL');
    expect(codeOf(() => f.allocate(3 * P, 2 * P))).toBe('EINVAL');
    expect(f.pagesPresent).toBe(0);
    f.allocate(0, 4 * P);
    f.punchHole(2 * P, 100 * P);
    expect(f.pagesPresent).toBe(2);
  });

  it('EINTR from an aborted signal keeps pages allocated before it', () => {
    const f = GuestMemFile.create(8 * P, 0, ops());
    const ac = new AbortController();
    ac.abort();
    let err: GuestMemError | undefined;
    try {
      f.allocate(0, 8 * P, { signal: ac.signal });
    } catch (e) {
      err = e as GuestMemError;
    }
    expect(err?.code).toBe('EINTR');
    expect(err?.info.stoppedAt).toBe(0);
    expect(f.pagesPresent).toBe(0);
  });

  it('ENOMEM mid-allocation reports where it stopped and keeps earlier pages', () => {
    const alloc = new FaultInjectingAllocator(new ArenaFolioAllocator(), { failAt: 4 });
    const f = GuestMemFile.create(8 * P, 0, ops(), { allocator: alloc });
    let err: GuestMemError | undefined;
    try {
      f.allocate(0, 8 * P);
    } catch (e) {
      err = e as GuestMemError;
    }
    expect(err?.code).toBe('ENOMEM');
    expect(err?.info.stoppedAt).toBe(3);
    expect([0, 1, 2, 3, 4].map((i) => f.isPresent(i))).toEqual([true, true, true, false, false]);
    f.allocate(0, 8 * P);
    expect(f.pagesPresent).toBe(8);
  });

  it('punch calls mayReclaim, then invalidateBegin/End around the removal; a refusal changes nothing', () => {
    const calls: string[] = [];
    let refuse = true;
    const f = GuestMemFile.create(
      8 * P,
      0,
      ops({
        mayReclaim: (_f, r) => (refuse ? new GuestMemError({ code: 'EBUSY', op: 'punch', backend: 'test', detail: `${r.first}` }) : null),
        invalidateBegin: (file, r, why) => calls.push(`begin ${r.first}-${r.end} ${why} present=${file.pagesPresent}`),
        invalidateEnd: (file, r, why) => calls.push(`end ${r.first}-${r.end} ${why} present=${file.pagesPresent}`),
      }),
    );
    f.write(P, new Uint8Array([1, 2, 3]));
    expect(codeOf(() => f.punchHole(0, 2 * P))).toBe('EBUSY');
    expect(f.read(P, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(calls).toEqual([]);
    refuse = false;
    f.punchHole(0, 2 * P);
    expect(calls).toEqual(['begin 0-2 punch present=1', 'end 0-2 punch present=0']);
    expect(f.read(P, 3)).toEqual(new Uint8Array([0, 0, 0]));
  });

  it('huge folios: order-9 allocation, partial punch zeroes the part and keeps the folio', () => {
    const f = GuestMemFile.create(1024 * P, 0, ops());
    f.allocate(0, 1024 * P, { order: 9 });
    expect(f.folioOrder(0)).toBe(9);
    expect(f.folioOrder(600)).toBe(9);
    f.fill(0, 1024 * P, 0x5a);
    f.punchHole(10 * P, 5 * P);
    expect(f.folioOrder(12)).toBe(9);
    expect(f.read(10 * P, 5 * P).every((b) => b === 0)).toBe(true);
    expect(f.read(9 * P, P).every((b) => b === 0x5a)).toBe(true);
    expect(f.read(15 * P, P).every((b) => b === 0x5a)).toBe(true);
    f.punchHole(512 * P, 512 * P);
    expect(f.folioOrder(512)).toBe(-1);
    expect(f.allocator.stats().folios.order9).toBe(1);
  });

  it('markPoisoned: getFolio gives EHWPOISON, host access SIGBUS; punch clears it', () => {
    const f = GuestMemFile.create(4 * P, 0, ops());
    const m = new HostMapping(f, { length: 4 * P });
    f.markPoisoned(1);
    expect(codeOf(() => f.getFolio(1))).toBe('EHWPOISON');
    expect(() => m.read(P, 1)).toThrow(HostAccessFault);
    expect(m.read(0, 1)).toEqual(new Uint8Array([0]));
    f.punchHole(P, P);
    expect(m.read(P, 1)).toEqual(new Uint8Array([0]));
    m.unmap();
    f.release();
    expect(f.allocator.stats().quarantinedBytes).toBe(P);
  });
});

describe('GuestMemFile bindings and lifetime', () => {
  it('detects overlap with the backend-chosen errno and keeps adjacent ranges', () => {
    const f = GuestMemFile.create(16 * P, 0, ops());
    f.bind(0, 4, 'a');
    f.bind(4, 8, 'b');
    expect(codeOf(() => f.bind(3, 5, 'c', { overlapCode: 'EEXIST' }))).toBe('EEXIST');
    expect(codeOf(() => f.bind(7, 9, 'c'))).toBe('EINVAL');
    expect(codeOf(() => f.bind(8, 17, 'c'))).toBe('EINVAL');
    expect(f.bindingsIn(0, 16).map((b) => b.owner)).toEqual(['a', 'b']);
    expect(f.bindingAt(5)?.owner).toBe('b');
    f.unbind('a');
    f.bind(0, 2, 'c');
    f.resizeBinding('b', 6, 8);
    expect(f.allBindings.map((b) => [b.owner, b.first, b.end])).toEqual([
      ['c', 0, 2],
      ['b', 6, 8],
    ]);
  });

  it('allowPastEof: bindings past EOF are indexed, overlap-checked and invalidated by punch and release', () => {
    const seen: string[] = [];
    const f = GuestMemFile.create(
      4 * P,
      0,
      ops({
        invalidateBegin: (file, r, why) =>
          seen.push(
            `${why} ${r.first}-${r.end} ${file
              .bindingsIn(r.first, r.end)
              .map((b) => b.owner)
              .join(',')}`,
          ),
      }),
    );
    expect(codeOf(() => f.bind(2, 10, 'q'))).toBe('EINVAL');
    f.bind(2, 10, 'q', { allowPastEof: true });
    expect(codeOf(() => f.bind(8, 12, 'r', { allowPastEof: true }))).toBe('EINVAL');
    f.punchHole(6 * P, 2 * P); // wholly past EOF: nothing to free, the binding is still invalidated
    f.punchHole(20 * P, P); // past EOF and past every binding: nothing at all
    f.release();
    expect(seen).toEqual(['punch 6-8 q', 'release 0-10 q']);
  });

  it('the last release frees everything even when a backend hook throws, then rethrows', () => {
    const alloc = new ArenaFolioAllocator();
    const released = vi.fn();
    const f = GuestMemFile.create(
      4 * P,
      0,
      ops({
        invalidateBegin: () => {
          throw new Error('hook failed');
        },
        release: released,
      }),
      { allocator: alloc },
    );
    f.bind(0, 2, 'slot');
    f.allocate(0, 4 * P);
    expect(() => f.release()).toThrow('hook failed');
    expect(f.released).toBe(true);
    expect(f.allBindings).toEqual([]);
    expect(alloc.stats().bytesInUse).toBe(0);
    expect(released).toHaveBeenCalledOnce();
  });

  it('the last release drops bindings, frees memory and calls hooks in order', () => {
    const order: string[] = [];
    const alloc = new ArenaFolioAllocator();
    const f = GuestMemFile.create(
      8 * P,
      0,
      ops({
        invalidateBegin: (_f, r, why) => order.push(`begin ${r.first}-${r.end} ${why}`),
        bindingDropped: (_f, owner) => order.push(`drop ${owner}`),
        invalidateEnd: (_f, _r, why) => order.push(`end ${why}`),
        release: (file) => order.push(`release bytes=${file.allocator.stats().bytesInUse}`),
      }),
      { allocator: alloc },
    );
    f.bind(0, 2, 'slot1');
    f.allocate(0, 8 * P);
    f.acquire();
    expect(f.release()).toBe(false);
    expect(order).toEqual([]);
    expect(f.release()).toBe(true);
    expect(order).toEqual(['begin 0-8 release', 'drop slot1', 'end release', 'release bytes=0']);
    expect(codeOf(() => f.allocate(0, P))).toBe('EBADF');
    expect(codeOf(() => f.acquire())).toBe('EBADF');
  });
});

describe('HostMapping', () => {
  it('holds a file reference, faults through the file, and reads zero after punch', () => {
    const release = vi.fn();
    const f = GuestMemFile.create(4 * P, 0, ops({ release }));
    const m = new HostMapping(f, { length: 4 * P });
    f.release(); // the fd goes away; the mapping keeps the file alive
    expect(release).not.toHaveBeenCalled();
    m.fill(0, 4 * P, 0xaa);
    f.punchHole(0, P);
    expect(m.read(0, P).every((b) => b === 0)).toBe(true);
    expect(m.read(P, P).every((b) => b === 0xaa)).toBe(true);
    m.unmap();
    expect(release).toHaveBeenCalledOnce();
  });

  it('past EOF gives SIGBUS; a write running into EOF keeps the bytes before it', () => {
    const f = GuestMemFile.create(2 * P, 0, ops());
    const m = new HostMapping(f, { length: 4 * P });
    let err: unknown;
    try {
      m.fill(0, 4 * P, 0xaa);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostAccessFault);
    expect((err as HostAccessFault).code).toBe('SIGBUS');
    expect((err as HostAccessFault).offset).toBe(BigInt(2 * P));
    expect(m.read(0, 2 * P).every((b) => b === 0xaa)).toBe(true);
    expect(() => m.read(2 * P, 1)).toThrow(HostAccessFault);
    m.unmap();
    f.release();
  });

  it('asks the backend per page and refuses private pages without touching them', () => {
    const f = GuestMemFile.create(2 * P, 0, ops({ hostAccess: (_f, i) => (i === 1 ? 'sigbus' : 'allow') }));
    const m = new HostMapping(f, { length: 2 * P });
    expect(() => m.read(P, 1)).toThrow(HostAccessFault);
    expect(f.isPresent(1)).toBe(false);
    expect(m.read(0, 1)).toEqual(new Uint8Array([0]));
    m.unmap();
    f.release();
  });

  it('EFAULT outside the mapping, on a read-only write, and after unmap', () => {
    const f = GuestMemFile.create(P, 0, ops());
    const m = new HostMapping(f, { length: P, prot: { read: true, write: false } });
    expect(codeOf(() => m.read(P, 1))).toBe('EFAULT');
    expect(codeOf(() => m.write(0, new Uint8Array(1)))).toBe('EFAULT');
    expect(m.write(0, new Uint8Array(0))).toBeUndefined(); // touches nothing, like a 0-byte memcpy
    m.unmap();
    expect(codeOf(() => m.read(0, 1))).toBe('EFAULT');
    f.release();
  });
});

describe('edge cases (review findings)', () => {
  it('host and file accesses work at byte offsets beyond 2^53 (bigint offsets)', () => {
    const f = GuestMemFile.create(1n << 60n, 0, ops());
    const m = new HostMapping(f, { offset: (1n << 53n) - 4096n, length: 8192 });
    m.write(4090, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    expect(m.read(4090, 10)).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    expect(f.read((1n << 53n) + 1n, 2)).toEqual(new Uint8Array([8, 9]));
    expect(codeOf(() => f.read((1n << 60n) - 1n, 2))).toBe('EINVAL');
    m.unmap();
    f.release();
  });

  it('bad numbers are GuestMemError EINVAL, never RangeError, and change nothing', () => {
    const f = GuestMemFile.create(4 * P, 0, ops());
    expect(codeOf(() => f.allocate(0.5, P))).toBe('EINVAL');
    expect(codeOf(() => f.punchHole(2 ** 53, P))).toBe('EINVAL');
    expect(codeOf(() => f.read(0, -1))).toBe('EINVAL');
    expect(codeOf(() => new HostMapping(f, { offset: 0.5, length: P }))).toBe('EINVAL');
    expect(codeOf(() => GuestMemFile.create(1.5, 0, ops()))).toBe('EINVAL');
    const m = new HostMapping(f, { length: P });
    expect(codeOf(() => m.read(0, -1))).toBe('EFAULT');
    expect(f.pagesPresent).toBe(0);
    m.unmap();
    f.release();
    expect(codeOf(() => new HostMapping(f, { length: P }))).toBe('EBADF');
  });

  it('page queries ignore non-indices instead of answering for another page', () => {
    const f = GuestMemFile.create(128 * P, 0, ops());
    f.allocate(63 * P, P);
    expect([f.isPresent(63), f.isPresent(-1), f.isPresent(63.5), f.isPresent(NaN)]).toEqual([true, false, false, false]);
    expect(f.pageIndex.erase(-1)).toBe(-1);
    expect(f.pageIndex.getMark(-1, 0)).toBe(false);
    expect(f.pageIndex.setMark(62.5, 0)).toBe(false);
    expect(f.isPresent(63)).toBe(true);
    f.release();
  });

  it('poison is per folio: a 2 MiB folio is poisoned whole, and any punch into it drops and quarantines it', () => {
    const f = GuestMemFile.create(1024 * P, 0, ops());
    f.allocate(0, 1024 * P, { order: 9 });
    f.fill(0, 512 * P, 0x77);
    f.markPoisoned(5);
    f.markPoisoned(5); // idempotent
    expect(f.isPoisoned(100)).toBe(true);
    expect(codeOf(() => f.getFolio(300))).toBe('EHWPOISON');
    f.punchHole(5 * P, P);
    expect(f.isPoisoned(5)).toBe(false);
    expect(f.isPresent(100)).toBe(false);
    expect(f.read(100 * P, 4)).toEqual(new Uint8Array(4));
    expect(f.allocator.stats().quarantinedBytes).toBe(2 * 1024 * 1024);
    expect(codeOf(() => f.markPoisoned(5000))).toBe('EINVAL');
    f.release();
  });

  it('a failing prepare hook leaves no folio behind', () => {
    const f = GuestMemFile.create(
      4 * P,
      0,
      ops({
        prepare: () => {
          throw new GuestMemError({ code: 'EIO', op: 'prepare', backend: 'test' });
        },
      }),
    );
    expect(codeOf(() => f.getFolio(1))).toBe('EIO');
    expect(f.isPresent(1)).toBe(false);
    expect(f.allocator.stats().bytesInUse).toBe(0);
    f.release();
  });
});
