import { describe, expect, it } from 'vitest';
import { GuestMemError } from '../errors/guest-mem-error.js';
import { FaultInjectingAllocator } from '../testing/fault-injecting-allocator.js';
import { ArenaFolioAllocator } from './folio-allocator.js';

describe('ArenaFolioAllocator', () => {
  it('accounts bytes in use and peak, order 0 and 9', () => {
    const a = new ArenaFolioAllocator({ arenaMiB: 4 });
    const f0 = a.alloc(0);
    const f9 = a.alloc(9);
    expect(a.orderOf(f0)).toBe(0);
    expect(a.orderOf(f9)).toBe(9);
    expect(f9 % 512).toBe(0);
    expect(a.stats().bytesInUse).toBe(4096 + 2 * 1024 * 1024);
    a.free(f9);
    a.free(f0);
    expect(a.stats().bytesInUse).toBe(0);
    expect(a.stats().peakBytes).toBe(4096 + 2 * 1024 * 1024);
    expect(a.stats().folios).toEqual({ order0: 0, order9: 0 });
  });

  it('fails with ENOMEM past the limit and changes nothing', () => {
    const a = new ArenaFolioAllocator({ limitBytes: 8192 });
    a.alloc(0);
    a.alloc(0);
    let err: unknown;
    try {
      a.alloc(0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuestMemError);
    expect((err as GuestMemError).code).toBe('ENOMEM');
    expect((err as GuestMemError).errno).toBe(12);
    expect(a.tryAlloc(0)).toBe(-1);
    expect(a.stats().bytesInUse).toBe(8192);
  });

  it('never shows a recycled folio with its old contents: a new folio must be prepared (zeroed)', () => {
    const a = new ArenaFolioAllocator({ arenaMiB: 2 });
    const f = a.alloc(0);
    a.prepare(f);
    a.view(f).fill(0xab);
    a.free(f);
    const g = a.alloc(0);
    expect(g).toBe(f); // same memory, recycled
    expect(a.isUptodate(g)).toBe(false);
    expect(() => a.view(g)).toThrow(/not uptodate/);
    a.prepare(g);
    expect(a.view(g).every((b) => b === 0)).toBe(true);
  });

  it('freeMany returns runs, huge and poisoned folios exactly like free, and still rejects double frees', () => {
    const a = new ArenaFolioAllocator({ arenaMiB: 8 });
    const small = Array.from({ length: 700 }, () => a.alloc(0)); // spans two chunks
    const huge = a.alloc(9);
    a.setPoisoned(small[3]!);
    const all = Int32Array.from([...small, huge]);
    a.freeMany(all, all.length);
    const s = a.stats();
    expect(s.bytesInUse).toBe(0);
    expect(s.folios).toEqual({ order0: 0, order9: 0 });
    expect(s.quarantinedBytes).toBe(4096);
    expect(() => a.freeMany(Int32Array.of(small[0]!), 1)).toThrow(/double free/);
    // Everything but the quarantined page can be handed out again.
    const again = new Set(Array.from({ length: 1023 }, () => a.alloc(0)));
    expect(again.has(small[3]!)).toBe(false);
  });

  it('allocMany hands out distinct unprepared folios up to the limit and accounts them like alloc', () => {
    const a = new ArenaFolioAllocator({ arenaMiB: 2, limitBytes: 1000 * 4096 });
    const one = a.alloc(0);
    const out = new Int32Array(2000);
    expect(a.allocMany(out, 2000)).toBe(999);
    const all = new Set([one, ...out.subarray(0, 999)]);
    expect(all.size).toBe(1000);
    expect([...all].every((f) => a.orderOf(f) === 0 && !a.isUptodate(f))).toBe(true);
    expect(a.stats().bytesInUse).toBe(1000 * 4096);
    expect(a.allocMany(out, 1)).toBe(0);
    a.freeMany(out, 999);
    a.free(one);
    expect(a.stats().bytesInUse).toBe(0);
    expect(a.stats().allocations).toBe(1000);
  });

  it('rejects double free', () => {
    const a = new ArenaFolioAllocator();
    const f = a.alloc(0);
    a.free(f);
    expect(() => a.free(f)).toThrow(/double free/);
  });

  it('quarantines poisoned folios forever', () => {
    const a = new ArenaFolioAllocator({ arenaMiB: 2 });
    const f = a.alloc(0);
    a.setPoisoned(f);
    a.free(f);
    expect(a.stats().quarantinedBytes).toBe(4096);
    expect(a.stats().bytesInUse).toBe(0);
    const seen = new Set<number>();
    for (let i = 0; i < 511; i++) seen.add(a.alloc(0));
    expect(seen.has(f)).toBe(false);
  });

  it('gives split chunks back to the huge pool when all their pages are free', () => {
    const a = new ArenaFolioAllocator({ arenaMiB: 2, limitBytes: 2 * 1024 * 1024 });
    const pages = Array.from({ length: 512 }, () => a.alloc(0));
    expect(a.tryAlloc(9)).toBe(-1);
    for (const p of pages) a.free(p);
    const h = a.alloc(9);
    expect(a.orderOf(h)).toBe(9);
    expect(a.stats().arenaBytes).toBe(2 * 1024 * 1024);
  });
});

describe('FaultInjectingAllocator', () => {
  it('fails the Nth allocation once', () => {
    const a = new FaultInjectingAllocator(new ArenaFolioAllocator(), { failAt: 2 });
    expect(a.tryAlloc(0)).toBeGreaterThanOrEqual(0);
    expect(a.tryAlloc(0)).toBe(-1);
    expect(a.tryAlloc(0)).toBeGreaterThanOrEqual(0);
    expect(a.injected).toBe(1);
  });

  it('fails by predicate, with a standard ENOMEM from alloc()', () => {
    const a = new FaultInjectingAllocator(new ArenaFolioAllocator(), { predicate: (_n, order) => order === 9 });
    expect(a.tryAlloc(0)).toBeGreaterThanOrEqual(0);
    expect(() => a.alloc(9)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
  });
});
