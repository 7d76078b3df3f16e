/**
 * The GC safety net on the simulated Gunyah: a dropped gunyah-sim graph gives its folios back to a
 * shared allocator when collected, with one warning.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ArenaFolioAllocator, LEAK_WARNING_CODE } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(done: () => boolean): Promise<void> {
  for (let i = 0; i < 40 && !done(); i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('gunyah-sim leak guard (GC exposed)', () => {
  it('30 dropped VM graphs give every folio back to the shared allocator, with a warning', async () => {
    const allocator = new ArenaFolioAllocator();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void ((w as { code?: string }).code === LEAK_WARNING_CODE && warnings.push(w.message));
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 30; i++) {
        (() => {
          const h = new GunyahHypervisor({ allocator });
          const vm = h.createVm({ confidential: true });
          const m = vm.createGuestMemory({ size: 4 * 4096 });
          vm.bind({ memory: m, offset: 0, gpa: 0x10_0000n, size: 4 * 4096, access: 'private' });
          vm.guestWrite(0x10_0000n, Uint8Array.of(1, 2, 3));
          m.allocate(0, 4 * 4096);
        })();
      }
      expect(allocator.stats().bytesInUse).toBeGreaterThanOrEqual(30 * 4 * 4096);
      await collect(() => allocator.stats().bytesInUse === 0 && warnings.length > 0);
      expect(allocator.stats().bytesInUse).toBe(0);
      // The dropped file is named either as its fd (the driver's safety net) or as its file (core's), whichever finalizer ran first.
      expect(warnings.join('\n')).toMatch(/gunyah-sim guest-memory (file|fd)/);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('memory a live binding uses is never released: the VM is reachable, so is its memory', async () => {
    const allocator = new ArenaFolioAllocator();
    const h = new GunyahHypervisor({ allocator });
    const vm = h.createVm({ confidential: true });
    (() => {
      const m = vm.createGuestMemory({ size: 4096 });
      vm.bind({ memory: m, offset: 0, gpa: 0x20_0000n, size: 4096, access: 'private' });
    })();
    vm.guestWrite(0x20_0000n, Uint8Array.of(9));
    await collect(() => false);
    expect(vm.guestRead(0x20_0000n, 1)).toEqual(Uint8Array.of(9));
    h.close();
    expect(allocator.stats().bytesInUse).toBe(0);
  });
});
