/**
 * The memory scenarios of Qualcomm's Gunyah test VMM (`vmm/tests/holding_cell/memory.rs`), which
 * state the intended v17 behaviour, replayed on the simulation.
 */
import { describe, expect, it } from 'vitest';
import { GuestMemError } from '@guestmem/core';
import { HoldingCell, KIB, MIB, le64, u64le } from './test-helpers.js';

const LEND_ADDR = 0xa000_0000n;
const SHARE_ADDR = 0x0008_0000n;

describe('Qualcomm test-VMM memory scenarios', () => {
  it('host_provided_lend: host writes, guest reads, then the host cannot read any more', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    hc.hostWrite(mem, 0n, u64le(0xf00dn));
    expect(le64(hc.hostRead(mem, 0n))).toBe(0xf00dn);
    expect(hc.readAddr(LEND_ADDR)).toBe(0xf00dn);
    expect(() => hc.hostRead(mem, 0n)).toThrow(GuestMemError);
  });

  it('host_provided_share / guest_writes_share / guest_share_coherency', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(SHARE_ADDR, 4n * KIB, 'share');
    hc.hostWrite(mem, 0n, u64le(0xf00dn));
    expect(hc.readAddr(SHARE_ADDR)).toBe(0xf00dn);
    expect(le64(hc.hostRead(mem, 0n))).toBe(0xf00dn);
    for (const magic of [0xf00ddeadn, 0xa5a5a5a5n]) {
      expect(hc.writeAddr(SHARE_ADDR, magic).status).toBe('done');
      expect(le64(hc.hostRead(mem, 0n))).toBe(magic);
      expect(hc.readAddr(SHARE_ADDR)).toBe(magic);
      hc.hostWrite(mem, 0n, u64le(magic + 1n));
      expect(hc.readAddr(SHARE_ADDR)).toBe(magic + 1n);
    }
  });

  it('guest_writes_lend: the host cannot read what the guest wrote; the guest still can', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    expect(hc.writeAddr(LEND_ADDR, 0xdeadf00dn).status).toBe('done');
    expect(() => hc.hostRead(mem, 0n)).toThrow(expect.objectContaining({ code: 'EBUSY', syscall: 'mmap' }));
    expect(hc.readAddr(LEND_ADDR)).toBe(0xdeadf00dn);
  });

  it('lend_no_access_after: a host fault on a locked lent page is SIGBUS, and no data leaks', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    expect(hc.writeAddr(LEND_ADDR, 0xf00ddeadn).status).toBe('done');
    expect(() => hc.hostRead(mem, 0n)).toThrow(GuestMemError);
    // A mapping taken before the lock (here: over a different, unlent page first) faults with SIGBUS.
    const hc2 = new HoldingCell();
    const mem2 = hc2.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    const m = mem2.mmap({ offset: 8192, length: 4096 }); // past the binding: no reclaim needed
    m.unmap();
    expect(hc2.writeAddr(LEND_ADDR, 0xf00ddeadn).status).toBe('done');
    let data: Uint8Array | undefined;
    expect(() => (data = hc2.hostRead(mem2, 0n))).toThrow();
    expect(data).toBeUndefined();
  });

  it('lend_no_access_before: a host mapping taken before the guest touches makes the guest access fail', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    const mapping = mem.mmap({ offset: 0, length: 8 });
    expect(mapping.read(0, 8)).toEqual(new Uint8Array(8));
    const r = hc.writeAddr(LEND_ADDR, 0xf00ddeadn);
    expect(r.status).toBe('page-fault');
    if (r.status !== 'page-fault') return;
    expect(r.exit).toMatchObject({ exitReason: 3, physAddr: LEND_ADDR, attempt: -1, resumeAction: 1 });
    // v17 never reads resume_action back: the next RUN re-executes the access, which faults again…
    expect(r.resume()).toMatchObject({ status: 'page-fault', exit: { attempt: -1 } });
    mapping.unmap();
    // …until the mapping is gone and the guest gets the page.
    expect(r.resume().status).toBe('done');
  });

  it('share_punch_hole_10k_iters: shared pages are always reclaimable and read zero after punch', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(SHARE_ADDR, 4n * KIB, 'share');
    const MAGIC = 0xdeadf00dn;
    for (let i = 0n; i < 10_000n; i++) {
      expect(hc.writeAddr(SHARE_ADDR, MAGIC + i).status).toBe('done');
      expect(le64(hc.hostRead(mem, 0n))).toBe(MAGIC + i);
      hc.punch(mem, 0n, 4n * KIB);
      expect(hc.readAddr(SHARE_ADDR)).toBe(0n);
    }
    expect(hc.gh.stats().folioBytes).toBe(4096n * 2n); // the DTB page + the one test page
  });

  it('lend_punch_hole_fails: punching a page the guest locked fails and the guest keeps its data', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    expect(hc.writeAddr(LEND_ADDR, 0xdeadf00dn).status).toBe('done');
    expect(() => hc.punch(mem, 0n, 4n * KIB)).toThrow(
      expect.objectContaining({ code: 'EBUSY', syscall: 'fallocate', backend: 'gunyah-sim' }),
    );
    expect(hc.readAddr(LEND_ADDR)).toBe(0xdeadf00dn);
  });

  it('lend_unlock_no_sanitize: after relinquish the host reads the old data; punch then gives the guest a fresh page', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    expect(hc.writeAddr(LEND_ADDR, 0xf00ddeadn).status).toBe('done');
    hc.cpu.relinquish(LEND_ADDR, 1, { sanitize: false });
    expect(le64(hc.hostRead(mem, 0n))).toBe(0xf00ddeadn);
    hc.punch(mem, 0n, 4n * KIB);
    expect(hc.readAddr(LEND_ADDR)).toBe(0n);
  });

  it('sanitize_page: relinquish with sanitize zeroes the page before the host sees it', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * KIB, 'lend');
    expect(hc.writeAddr(LEND_ADDR, 0xdeadf00dn).status).toBe('done');
    expect(hc.readAddr(LEND_ADDR)).toBe(0xdeadf00dn);
    expect(() => hc.hostRead(mem, 0n)).toThrow();
    hc.cpu.relinquish(LEND_ADDR, 1, { sanitize: true });
    expect(le64(hc.hostRead(mem, 0n))).toBe(0n);
    hc.punch(mem, 0n, 4n * KIB);
    expect(hc.cpu.read(LEND_ADDR, 8).status).toBe('done');
  });

  it('partial_page_reclaim: a 2 MiB lent folio comes back only when all 512 pages are relinquished', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(LEND_ADDR, 4n * MIB, 'lend', true);
    expect(hc.writeAddr(LEND_ADDR, 0xdeadf00dn).status).toBe('done');
    expect(hc.readAddr(LEND_ADDR)).toBe(0xdeadf00dn);
    expect(hc.gh.stats()).toMatchObject({ providedFolios: 2 }); // the DTB page + one 2 MiB folio
    hc.cpu.relinquish(LEND_ADDR, 256);
    expect(() => hc.punch(mem, 0n, 4n * KIB)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    hc.cpu.relinquish(LEND_ADDR, 512);
    hc.punch(mem, 0n, 4n * KIB);
    hc.punch(mem, 4n * KIB, 2n * MIB);
    hc.punch(mem, 0n, 2n * MIB);
    expect(hc.cpu.read(LEND_ADDR, 8).status).toBe('done');
  });

  it('offset_paging: guest writes at a stride show up in a host mapping of a shared binding', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(SHARE_ADDR, 10n * 4n * KIB, 'share');
    hc.vm.start();
    const m = mem.mmap({ offset: 0, length: 10 * 4096 });
    const STRIDE = 0x600n;
    const iters = (10n * 4096n) / STRIDE;
    for (let i = 0n; i < iters; i++) expect(hc.writeAddr(SHARE_ADDR + i * STRIDE, i).status).toBe('done');
    for (let i = 0n; i < iters; i++) expect(m.read(i * STRIDE, 1)[0]).toBe(Number(i & 0xffn));
    m.unmap();
  });
});
