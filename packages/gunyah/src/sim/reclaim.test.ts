/**
 * Reclaim is folio by folio (v17 20/35 `gunyah_vm_reclaim_range` walks every provided folio and
 * returns the last error; 24/35 punches through `invalidate_inode_pages2_range`, which keeps going
 * after a folio it cannot release and reports -EBUSY at the end): a refused call may still have
 * reclaimed — and, for a punch, dropped — the folios it could.
 */
import { describe, expect, it } from 'vitest';
import { MAP_FLAGS_V17 as F } from '../uapi/index.js';
import { GunyahHypervisor } from '../adapter/gunyah-hypervisor.js';
import type { SimGuestMem } from './guest-mem.js';
import { HoldingCell, LEND_RW, le64, u64le } from './test-helpers.js';

describe('reclaim folio by folio', () => {
  it('a punch over a locked lent page and a free page drops the free one and fails with EBUSY naming the kept folio', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(0xa000_0000n, 2n * 4096n, 'lend') as SimGuestMem;
    hc.hostWrite(mem, 4096n, u64le(0x77n)); // page 1: host data, never given to the guest
    expect(hc.writeAddr(0xa000_0000n, 0x55n).status).toBe('done'); // page 0: lent and locked
    expect(() => hc.punch(mem, 0n, 2n * 4096n)).toThrow(
      expect.objectContaining({ code: 'EBUSY', syscall: 'fallocate', info: expect.objectContaining({ head: 0 }) }),
    );
    expect(le64(hc.hostRead(mem, 4096n))).toBe(0n); // dropped although the call failed
    expect(hc.readAddr(0xa000_0000n)).toBe(0x55n); // the locked folio kept its data
  });

  it('UNMAP that meets a locked folio fails and keeps the binding, but the unlocked folios before it came back', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(0xa000_0000n, 2n * 4096n, 'lend') as SimGuestMem;
    expect(hc.writeAddr(0xa000_0000n, 1n).status).toBe('done');
    expect(hc.writeAddr(0xa000_1000n, 2n).status).toBe('done');
    hc.cpu.relinquish(0xa000_0000n, 1); // page 0 unlocked, page 1 still locked
    const before = hc.gh.stats().providedFolios;
    expect(() =>
      hc.vm.mapMem({ guestAddr: 0xa000_0000n, flags: LEND_RW | F.GUNYAH_MEM_UNMAP, guestMemFd: mem.fd, offset: 0, size: 8192 }),
    ).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(hc.vm.bindings().find((b) => b.guestMemFd === mem.fd)).toMatchObject({ size: 8192n });
    expect(hc.gh.stats().providedFolios).toBe(before - 1);
    expect(mem.pageState(0)).toBe('HOST');
    expect(mem.pageState(1)).toBe('LENT_LOCKED');
    expect(le64(hc.hostRead(mem, 0n))).toBe(1n); // reclaimed, not zeroed
    expect(hc.readAddr(0xa000_1000n)).toBe(2n);
  });

  it('the neutral punchHole stays all-or-nothing: it checks the whole range before the uAPI punch', () => {
    const h = new GunyahHypervisor({ guestCooperates: false });
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: 8192, hostMappable: true, initiallyShared: true });
    const v = m.map({ offset: 4096, length: 4096 });
    v.write(0, Uint8Array.of(9));
    v.unmap();
    vm.bind({ memory: m, offset: 0, gpa: 0x10000, size: 4096, access: 'private' });
    vm.guestWrite(0x10000, Uint8Array.of(1));
    expect(() => m.punchHole(0, 8192)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    const w = m.map({ offset: 4096, length: 4096 });
    expect(w.read(0, 1)).toEqual(Uint8Array.of(9)); // untouched
    w.unmap();
  });
});
