/**
 * The adapters keep `guardedTarget(handle)` for their hot paths and hand the raw VM object to
 * vCPUs. The GC safety net must still close a dropped VM exactly when the neutral VM is
 * unreachable: never while something that reaches it (here: only a vCPU) is alive, and once the
 * last such reference is dropped. v17 and ACK adapters. (GC exposed through v8 flags.)
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ArenaFolioAllocator, GuestProgram, LEAK_WARNING_CODE, buildGuestImage, loadGuest, type Vcpu } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { GunyahAckHypervisor } from '../ack/adapter/index.js';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(rounds: number, done: () => boolean = () => false): Promise<void> {
  for (let i = 0; i < rounds && !done(); i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

const P = 4096;
const G = 0x8000_0000;

for (const kind of ['v17', 'ack'] as const) {
  describe(`${kind} guarded handles and the GC safety net`, () => {
    const make = (allocator: ArenaFolioAllocator) => {
      const h = kind === 'v17' ? new GunyahHypervisor({ allocator }) : new GunyahAckHypervisor({ allocator });
      const vm = h.createVm({ confidential: true });
      const img = vm.createGuestMemory({ size: 1 << 20, hostMappable: true, initiallyShared: true });
      vm.bind({ memory: img, offset: 0, gpa: 0, size: 1 << 20, access: 'shared' });
      const m = vm.createGuestMemory({ size: 8 * P, hostMappable: true, initiallyShared: true });
      vm.bind({ memory: m, offset: 0, gpa: G, size: 8 * P, access: 'shared' });
      const p = new GuestProgram()
        .store(G, Uint8Array.of(1, 2, 3))
        .loadReport(G + 1, 1, 0x20)
        .touch(G, 8 * P, 'write', 9)
        .loadReport(G + 4 * P, 1, 0x20)
        .hlt();
      const vcpu = vm.createVcpu();
      loadGuest(vm, vcpu, buildGuestImage(p));
      return vcpu;
    };

    it('a vCPU alone keeps the VM open through GC; dropping it closes the VM', async () => {
      const allocator = new ArenaFolioAllocator();
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void ((w as { code?: string }).code === LEAK_WARNING_CODE && warnings.push(w.message));
      process.on('warning', onWarning);
      try {
        let vcpu: Vcpu | undefined = make(allocator);
        const bytes = allocator.stats().bytesInUse;
        expect(bytes).toBeGreaterThan(0);
        await collect(15);
        expect(warnings).toEqual([]);
        // the VM still runs the program
        const exits: string[] = [];
        for (let i = 0; i < 20; i++) {
          const e = vcpu.run();
          exits.push(e.kind === 'io' ? `io:${[...e.data]}` : e.kind);
          if (e.kind === 'hlt' || e.kind === 'internal-error' || e.kind === 'shutdown') break;
        }
        expect(exits.filter((x) => x.startsWith('io') || x === 'hlt')).toEqual(['io:2', 'io:9', 'hlt']);
        vcpu = undefined;
        // (ACK user memory lives until munmap by design — see sim/leak-guard.ts — so for the ACK the
        // sign of the VM's close is its warning, not the allocator going back to 0.)
        const vmClosed = () => warnings.some((w) => /VM fd/.test(w));
        await collect(40, () => vmClosed() && (kind === 'ack' || allocator.stats().bytesInUse === 0));
        expect(vmClosed()).toBe(true);
        if (kind === 'v17') expect(allocator.stats().bytesInUse).toBe(0);
      } finally {
        process.off('warning', onWarning);
      }
    });
  });
}
