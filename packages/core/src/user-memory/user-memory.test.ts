import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestMemError, HostAccessFault } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { UserAddressSpace } from './address-space.js';
import { LockedMemoryAccount } from './memlock.js';
import { UserMemory, type UserPagePin } from './user-memory.js';

const P = 4096;
const MiB = 1024 * 1024;
const RUNS = Number(process.env.FC_RUNS ?? 300);

describe('UserMemory', () => {
  it('rejects sizes that are 0, unaligned or not exact integers with EINVAL', () => {
    for (const size of [0, 1, P + 1, 0.5, -P]) {
      expect(() => UserMemory.create({ size })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
    expect(UserMemory.create({ size: 2 * P }).pages).toBe(2);
  });

  it('a page reads zero on first use, host writes persist, discard makes the range read zero again', () => {
    const allocator = new ArenaFolioAllocator();
    const m = UserMemory.create({ size: 4 * P, allocator });
    expect(m.read(0, 4 * P).every((b) => b === 0)).toBe(true);
    m.fill(P - 2, 4, 0xab); // crosses a page boundary
    expect(m.read(P - 2, 4)).toEqual(Uint8Array.of(0xab, 0xab, 0xab, 0xab));
    m.discard(0, P);
    expect(m.read(P - 2, 4)).toEqual(Uint8Array.of(0, 0, 0xab, 0xab));
    expect(() => m.discard(P, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => m.read(4 * P - 1, 2)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    m.release();
    expect(allocator.stats().bytesInUse).toBe(0);
    expect(() => m.read(0, 1)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('swap-backed for anonymous and shmem memory, not for a regular file', () => {
    expect(UserMemory.create({ size: P }).swapBacked).toBe(true);
    expect(UserMemory.create({ size: P, kind: 'shmem' }).swapBacked).toBe(true);
    expect(UserMemory.create({ size: P, kind: 'file' }).swapBacked).toBe(false);
  });

  it('huge pages: a fault in an aligned, empty, inside block takes a 2 MiB folio; otherwise 4 KiB', () => {
    const m = UserMemory.create({ size: 3 * MiB, hugePages: true });
    const f = m.fault(200);
    expect(f).toMatchObject({ order: 9, head: 0 });
    expect(m.pagesPresent).toBe(512);
    expect(m.fault(300).folio).toBe(f.folio); // same folio
    expect(m.fault(513).order).toBe(0); // the block [512, 1024) sticks out past 3 MiB (768 pages)
  });

  it('a host-access hook refusing a page throws SIGBUS before touching it; earlier pages keep their bytes', () => {
    const refused = new Set<number>([1]);
    const m = UserMemory.create({ size: 2 * P, ops: { backend: 'test', hostAccess: (_m, i) => (refused.has(i) ? 'sigbus' : 'allow') } });
    const e = (() => {
      try {
        m.fill(P - 1, 2, 7);
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(HostAccessFault);
    expect((e as GuestMemError).backend).toBe('test');
    refused.clear();
    expect(m.read(P - 1, 2)).toEqual(Uint8Array.of(7, 0));
  });

  it('a pin holds the folio through discard and release: the pinner keeps the old data, the mapping reads zero', () => {
    const allocator = new ArenaFolioAllocator();
    const m = UserMemory.create({ size: 2 * P, allocator });
    m.write(P, Uint8Array.of(1, 2, 3));
    const pin = m.pin(1);
    expect(m.pinsAt(1)).toBe(1);
    m.discard(P, P);
    expect(m.read(P, 3)).toEqual(Uint8Array.of(0, 0, 0)); // the host's page is new
    expect(pin.read(0, 3)).toEqual(Uint8Array.of(1, 2, 3)); // the pinner's is the old one
    expect(m.detachedFolios).toBe(1);
    pin.write(0, Uint8Array.of(9));
    expect(m.read(P, 1)).toEqual(Uint8Array.of(0)); // never coherent again
    m.release();
    expect(allocator.stats().bytesInUse).toBe(P); // only the pinned folio is alive
    pin.unpin();
    pin.unpin(); // idempotent
    expect(allocator.stats().bytesInUse).toBe(0);
    expect(() => pin.read(0, 1)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
  });

  it('property: only pinned folios outlive their memory, and every folio returns to the allocator after the last unpin', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ k: fc.constant('pin' as const), i: fc.integer({ min: 0, max: 7 }) }),
            fc.record({ k: fc.constant('unpin' as const), n: fc.nat() }),
            fc.record({ k: fc.constant('discard' as const), i: fc.integer({ min: 0, max: 7 }), n: fc.integer({ min: 1, max: 8 }) }),
            fc.record({ k: fc.constant('write' as const), i: fc.integer({ min: 0, max: 7 }), b: fc.integer({ min: 1, max: 255 }) }),
          ),
          { maxLength: 40 },
        ),
        (ops) => {
          const allocator = new ArenaFolioAllocator();
          const m = UserMemory.create({ size: 8 * P, allocator });
          const pins: UserPagePin[] = [];
          const expectHost = new Uint8Array(8);
          for (const op of ops) {
            if (op.k === 'pin') pins.push(m.pin(op.i));
            else if (op.k === 'unpin' && pins.length) pins.splice(op.n % pins.length, 1)[0]!.unpin();
            else if (op.k === 'discard') {
              const n = Math.min(op.n, 8 - op.i);
              m.discard(op.i * P, n * P);
              expectHost.fill(0, op.i, op.i + n);
            } else if (op.k === 'write') {
              m.write(op.i * P, Uint8Array.of(op.b));
              expectHost[op.i] = op.b;
            }
          }
          for (let i = 0; i < 8; i++) expect(m.read(i * P, 1)[0]).toBe(expectHost[i]);
          m.release();
          const live = new Set(pins.map((p) => p.folio.folio)).size;
          expect(allocator.stats().bytesInUse).toBe(live * P);
          for (const p of pins) p.unpin();
          expect(allocator.stats().bytesInUse).toBe(0);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('UserAddressSpace', () => {
  it('maps memories at distinct page-aligned addresses (2 MiB-aligned for huge pages) and resolves them', () => {
    const mm = new UserAddressSpace();
    const a = UserMemory.create({ size: 3 * P });
    const b = UserMemory.create({ size: 2 * MiB, hugePages: true });
    const aa = mm.map(a);
    const ba = mm.map(b);
    expect(aa % BigInt(P)).toBe(0n);
    expect(ba % BigInt(2 * MiB)).toBe(0n);
    expect(ba + b.size <= aa || aa + a.size <= ba).toBe(true);
    expect(mm.resolve(aa + 4097n)).toEqual({ memory: a, offset: 4097n });
    expect(mm.resolve(aa + a.size)?.memory).not.toBe(a);
    expect(() => mm.map(a, aa)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(a.refs).toBe(2);
    mm.unmap(aa);
    expect(a.refs).toBe(1);
    expect(mm.resolve(aa)).toBeUndefined();
  });

  it('pinUserPages stops at the first unmapped page (a short pin)', () => {
    const mm = new UserAddressSpace();
    const a = UserMemory.create({ size: 2 * P });
    const at = mm.map(a);
    const pins = mm.pinUserPages(at, 3);
    expect(pins.length).toBe(2);
    expect(a.pinsAt(0) + a.pinsAt(1)).toBe(2);
    for (const p of pins) p.unpin();
    expect(mm.pinUserPages(at - BigInt(P), 2)).toEqual([]);
  });

  it('two address spaces have different identities', () => {
    expect(new UserAddressSpace().id).not.toBe(new UserAddressSpace().id);
  });
});

describe('LockedMemoryAccount (account_locked_vm)', () => {
  it('charging past RLIMIT_MEMLOCK is ENOMEM and charges nothing; CAP_IPC_LOCK bypasses it; unlimited never fails', () => {
    const acct = new LockedMemoryAccount(4 * P);
    acct.charge(3, 'pin', 'test');
    expect(() => acct.charge(2, 'pin', 'test')).toThrow(expect.objectContaining({ code: 'ENOMEM', errno: 12 }));
    expect(acct.lockedPages).toBe(3);
    acct.charge(1, 'pin', 'test');
    acct.uncharge(4);
    expect(acct.lockedPages).toBe(0);
    const cap = new LockedMemoryAccount(P, true);
    cap.charge(100, 'pin', 'test');
    expect(cap.lockedPages).toBe(100);
    const unl = new LockedMemoryAccount(Infinity);
    unl.charge(2 ** 40, 'pin', 'test');
    expect(unl.limitPages).toBe(Infinity);
  });
});
