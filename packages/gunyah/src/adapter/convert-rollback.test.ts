/**
 * `Vm.convert` is all-or-nothing on Gunyah: a conversion is several GUNYAH_VM_MAP_MEM calls
 * (UNMAP + MAP per binding), and a failure at any one of them rolls back to the exact prior
 * bindings, states and data.
 */
import { gmErr, type GuestMemory, type MemoryAccess, type MemoryBinding, type Vm } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

const P = 4096n;
const BASE = 0x100_0000n;
const PAGES = 12;

interface SimHook {
  sim: { mapMem(args: { flags: number }): void };
}

/** Counts MAP_MEM calls of `vm`; the `failAt`-th (1-based) fails with `code` before reaching the uAPI. */
function injectAt(vm: Vm, failAt: number, code: 'ENOMEM' | 'EBUSY' = 'ENOMEM'): { calls: () => number } {
  const sim = (vm as unknown as SimHook).sim;
  const real = sim.mapMem.bind(sim);
  let n = 0;
  sim.mapMem = (args) => {
    if (++n === failAt) throw gmErr(code, 'mapMem', 'gunyah-sim', `injected at MAP_MEM call ${n}`, { syscall: 'ioctl(GUNYAH_VM_MAP_MEM)' });
    real(args);
  };
  return { calls: () => n };
}

/** Everything a VMM can observe: bindings, memoryState, guest reads, host reads. */
function observe(vm: Vm, mem: GuestMemory): unknown {
  const bindings = vm.bindings().map((b) => [b.gpa, b.size, b.offset, b.active, b.readOnly]);
  const states = Array.from({ length: PAGES + 2 }, (_, i) => vm.memoryState.get(Number(BASE / P) - 1 + i));
  const guest = Array.from({ length: PAGES }, (_, i) => {
    try {
      return Array.from(vm.guestRead(BASE + BigInt(i) * P, 2));
    } catch (e) {
      return (e as { code: string }).code;
    }
  });
  // One view per page: v17 refuses to map a range holding a page the guest locked (EBUSY).
  const host = Array.from({ length: PAGES }, (_, i) => {
    try {
      const v = mem.map({ offset: BigInt(i) * P, length: 4096 });
      try {
        return Array.from(v.read(0, 2));
      } finally {
        v.unmap();
      }
    } catch (e) {
      return (e as { code: string }).code;
    }
  });
  return { bindings, states, guest, host };
}

/** A VM with bindings of `layout` (page runs with their access) over one memory; every page written by the guest. */
function world(layout: Array<[number, MemoryAccess]>): { h: GunyahHypervisor; vm: Vm; mem: GuestMemory; bs: MemoryBinding[] } {
  const h = new GunyahHypervisor();
  const vm = h.createVm();
  const mem = vm.createGuestMemory({ size: BigInt(PAGES) * P, hostMappable: true });
  const bs: MemoryBinding[] = [];
  let page = 0;
  for (const [n, access] of layout) {
    bs.push(vm.bind({ memory: mem, offset: BigInt(page) * P, gpa: BASE + BigInt(page) * P, size: BigInt(n) * P, access }));
    page += n;
  }
  for (let i = 0; i < page; i++) vm.guestWrite(BASE + BigInt(i) * P, Uint8Array.of(0x40 + i, 0x80 + i));
  return { h, vm, mem, bs };
}

describe('Gunyah convert is all-or-nothing', () => {
  it('ENOMEM at the second MAP (range over two bindings): both bindings stay active and usable, data and states unchanged', () => {
    const { h, vm, mem, bs } = world([
      [2, 'private'],
      [2, 'private'],
    ]);
    const before = observe(vm, mem);
    // Fail the second *add* with the simulated kernel's own injected ENOMEM (binding allocation).
    const sim = (vm as unknown as SimHook).sim;
    const real = sim.mapMem.bind(sim);
    let adds = 0;
    sim.mapMem = (args) => {
      const unmap = (args.flags & h.device.layout.GUNYAH_MEM_UNMAP) !== 0;
      if (!unmap && ++adds === 2) h.device.injectFault('binding-alloc');
      real(args);
    };
    expect(() => vm.convert({ gpa: BASE, size: 4n * P }, 'shared')).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    sim.mapMem = real;
    expect(observe(vm, mem)).toEqual(before);
    expect(bs.every((b) => b.active)).toBe(true);
    for (const b of bs) b.unbind(); // the uAPI still has exactly these bindings
    expect(vm.bindings()).toEqual([]);
    h.close();
  });

  it('property: a failure injected at any MAP_MEM step of a random conversion leaves bindings, memoryState, guest and host reads as before', () => {
    const access = fc.constantFrom<MemoryAccess>('private', 'shared');
    const layout = fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), access), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(
        layout,
        fc.integer({ min: -1, max: PAGES }),
        fc.integer({ min: 1, max: PAGES + 1 }),
        access,
        fc.boolean(),
        fc.constantFrom<'ENOMEM' | 'EBUSY'>('ENOMEM', 'EBUSY'),
        (lay, first, n, to, discard, code) => {
          const gpa = BASE + BigInt(first) * P;
          const size = BigInt(n) * P;
          for (let k = 1; ; k++) {
            const { h, vm, mem } = world(lay);
            try {
              const before = observe(vm, mem);
              const hook = injectAt(vm, k, code);
              let failed = false;
              try {
                vm.convert({ gpa, size }, to, { discard });
              } catch (e) {
                expect((e as { code: string }).code).toBe(code);
                failed = true;
              }
              if (!failed) {
                expect(hook.calls()).toBeLessThan(k); // every step ran: the conversion is done
                return;
              }
              (vm as unknown as SimHook).sim.mapMem = Object.getPrototypeOf((vm as unknown as SimHook).sim).mapMem.bind(
                (vm as unknown as SimHook).sim,
              );
              expect(observe(vm, mem)).toEqual(before);
              for (const b of vm.bindings()) b.unbind();
            } finally {
              h.close();
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
