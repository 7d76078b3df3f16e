import { describe, expect, it, vi } from 'vitest';
import { GuestMemError } from '../errors/guest-mem-error.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { GuestMemFile, MAX_FILE_SIZE } from './guest-mem-file.js';
import type { GuestMemOps } from './types.js';

const ops = (extra: Partial<GuestMemOps<string>> = {}): GuestMemOps<string> => ({ backend: 'test', ...extra });
const P = 4096;

describe('GuestMemFile.setSize (truncate_setsize)', () => {
  it('grows with holes and shrinks by freeing every page past the new end, which reads zero after growing back', () => {
    const allocator = new ArenaFolioAllocator();
    const f = GuestMemFile.create(4 * P, 0, ops(), { allocator });
    f.write(0, Uint8Array.of(1));
    f.write(3 * P, Uint8Array.of(3));
    f.setSize(16 * P);
    expect(f).toMatchObject({ size: 16n * 4096n, pages: 16 });
    expect(f.read(3 * P, 1)).toEqual(Uint8Array.of(3));
    f.setSize(2 * P);
    expect(f.pages).toBe(2);
    expect(allocator.stats().bytesInUse).toBe(P);
    expect(() => f.read(3 * P, 1)).toThrow(GuestMemError);
    f.setSize(4 * P);
    expect(f.read(3 * P, 1)).toEqual(Uint8Array.of(0));
    expect(f.read(0, 1)).toEqual(Uint8Array.of(1));
  });

  it('a huge folio across the new end keeps its memory and has the part past it zeroed', () => {
    const allocator = new ArenaFolioAllocator();
    const f = GuestMemFile.create(512 * P, 0, ops(), { allocator, defaultOrder: 9 });
    f.write(P, Uint8Array.of(7));
    f.write(300 * P, Uint8Array.of(8));
    f.setSize(256 * P);
    expect(allocator.stats().bytesInUse).toBe(512 * P);
    f.setSize(512 * P);
    expect(f.read(P, 1)).toEqual(Uint8Array.of(7));
    expect(f.read(300 * P, 1)).toEqual(Uint8Array.of(0));
  });

  it('tells the backend which pages a shrink drops; bad sizes are EINVAL and change nothing', () => {
    const invalidateBegin = vi.fn();
    const invalidateEnd = vi.fn();
    const f = GuestMemFile.create(8 * P, 0, ops({ invalidateBegin, invalidateEnd }));
    f.setSize(16 * P);
    expect(invalidateBegin).not.toHaveBeenCalled();
    f.setSize(4 * P);
    expect(invalidateBegin).toHaveBeenCalledWith(f, { first: 4, end: 16 }, 'punch');
    expect(invalidateEnd).toHaveBeenCalledWith(f, { first: 4, end: 16 }, 'punch');
    for (const bad of [0, -P, P + 1, MAX_FILE_SIZE + BigInt(P)]) {
      expect(() => f.setSize(bad)).toThrow(expect.objectContaining({ code: 'EINVAL', op: 'setSize' }));
    }
    expect(f.size).toBe(4n * 4096n);
    f.release();
    expect(() => f.setSize(P)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});
