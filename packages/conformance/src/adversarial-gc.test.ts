/**
 * The GC safety net under attack (GC exposed): objects are released at collection only when
 * nothing reachable uses them. A host view kept after every other handle was dropped must keep
 * showing its memory's bytes (or fail with a GuestMemError), never bytes of memory allocated later
 * from the same folios.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ArenaFolioAllocator, type FolioAllocator, GuestMemError, type HostView, type Hypervisor } from '@guestmem/core';
import { GunyahAckHypervisor, GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import { describe, expect, it } from 'vitest';
import { Toyvisor } from '../../../examples/custom-backend/src/toyvisor.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const P = 4096;

async function collect(rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

const targets: Array<[string, (allocator: FolioAllocator) => Hypervisor]> = [
  ['kvm-sim', (allocator) => openKvmHypervisor({ driver: 'sim', allocator })],
  ['kvm-sim (swProtectedVm: false)', (allocator) => openKvmHypervisor({ driver: 'sim', swProtectedVm: false, allocator })],
  ['gunyah-sim', (allocator) => new GunyahHypervisor({ allocator })],
  ['gunyah-ack-sim', (allocator) => new GunyahAckHypervisor({ allocator })],
  ['toyvisor', (allocator) => new Toyvisor(allocator)],
];

describe.each(targets)('adversarial GC: %s', (_name, create) => {
  it('a view that outlives every other handle never shows bytes of memory allocated later from the same folios', async () => {
    const allocator = new ArenaFolioAllocator();
    const onWarning = (): void => {};
    process.on('warning', onWarning);
    try {
      const views: HostView[] = [];
      for (let i = 0; i < 8; i++) {
        (() => {
          const h = create(allocator);
          const vm = h.createVm();
          const m = vm.createGuestMemory({ size: 4 * P, hostMappable: true, initiallyShared: true });
          const v = m.map();
          v.fill(0, 4 * P, 0x11);
          views.push(v);
        })();
      }
      await collect(20);
      // Someone else now uses the allocator: any folio given back is reused for 0x42 bytes.
      const h2 = create(allocator);
      const vm2 = h2.createVm();
      const fresh = [];
      for (let i = 0; i < 8; i++) {
        const m = vm2.createGuestMemory({ size: 4 * P, hostMappable: true, initiallyShared: true });
        m.map().fill(0, 4 * P, 0x42);
        fresh.push(m);
      }
      const failed: string[] = [];
      for (const v of views) {
        let bytes: Uint8Array | undefined;
        try {
          bytes = v.read(0, 4 * P);
        } catch (e) {
          expect(e).toBeInstanceOf(GuestMemError);
          failed.push((e as GuestMemError).message);
        }
        if (bytes)
          expect(
            bytes.some((x) => x === 0x42),
            "another memory's bytes through an old view",
          ).toBe(false);
        if (bytes)
          expect(
            bytes.every((x) => x === 0x11),
            'the view lost its own bytes',
          ).toBe(true);
      }
      h2.close();
      // A reachable view pins its memory ("memory lives on while bindings or views pin it").
      expect(failed, 'reads through a reachable view failed after GC').toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
