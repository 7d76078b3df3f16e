/**
 * ACK provided folios that cover the same gfns, at the raw uAPI level: a huge folio whose range
 * starts at the same gfn as an earlier 4 KiB folio of another binding (same head gfn). Regression
 * from the outside review: the later folio once replaced the earlier in the VM's table, so lookups
 * answered the later one and the earlier folio's pin (and memlock charge) outlived the VM.
 */
import { describe, expect, it } from 'vitest';
import { AckCell, P, RWX } from './test-helpers.js';
import type { AckVm } from './vm.js';

const G = 0x800_0000n;

describe('ACK provided folios with the same head gfn', () => {
  it('the earlier 4 KiB folio keeps answering for its gfn', () => {
    const cell = new AckCell({ generation: 'C' });
    const vm = cell.vm as AckVm;
    const m1 = cell.add(G, 256n * P, 'share', { flags: RWX });
    const m2 = cell.host.current.mmap({ size: 1024n * P, hugePages: true });
    vm.setUserMemRegion({ label: 99, flags: RWX, guestPhysAddr: G + 256n * P, memorySize: 256n * P, userspaceAddr: m2.address + 256n * P });
    m1.memory.write(0n, Uint8Array.of(0x11));
    m2.memory.write(0n, Uint8Array.of(0x88));
    const cpu = cell.cpu;
    const rd = (page: number) => [...(cpu.read(G + BigInt(page) * P, 1) as { data: Uint8Array }).data];
    expect(rd(0)).toEqual([0x11]); // binding 1's 4 KiB folio, head gfn G
    rd(256); // binding 2: page 256 of a 2 MiB folio → head gfn G as well
    const provided = (vm as unknown as { provided: Map<number, { nr: number }> }).provided;
    const got = { page0: rd(0), tracked: [...provided.values()].map((pf) => pf.nr).sort((a, b) => a - b), pins: m1.memory.pinsAt(0) };
    vm.close();
    // "keep the first"; both folios tracked (plus the DTB's); VM teardown unpins binding 1's folio
    expect({ ...got, pinsAfterClose: m1.memory.pinsAt(0) }).toEqual({ page0: [0x11], tracked: [1, 1, 512], pins: 1, pinsAfterClose: 0 });
  });
});

describe('control (no overlapping folio)', () => {
  it('VM teardown unpins the 4 KiB folio', () => {
    const cell = new AckCell({ generation: 'C' });
    const vm = cell.vm as AckVm;
    const m1 = cell.add(G, 256n * P, 'share', { flags: RWX });
    m1.memory.write(0n, Uint8Array.of(0x11));
    const cpu = cell.cpu;
    expect([...(cpu.read(G, 1) as { data: Uint8Array }).data]).toEqual([0x11]);
    expect(m1.memory.pinsAt(0)).toBe(1);
    vm.close();
    expect(m1.memory.pinsAt(0)).toBe(0);
  });
});
