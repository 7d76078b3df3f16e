/**
 * The adversarial programs on the real kernel (/dev/kvm), plus what only a real process shows:
 * after Hypervisor.close() the fds and `kvm-gmem` mappings are back at their baseline, whatever
 * failed on the way; and the simulated kernel answers every 64-bit edge like the real one.
 */
import { readFileSync } from 'node:fs';
import type { Hypervisor } from '@guestmem/core';
import { openFds, openKvmHypervisor, probeNativeKvm } from '@guestmem/kvm';
import { describe, expect, it } from 'vitest';
import { checkError, defineAdversarialSuite, defineErrorAttacks, defineLifetimeAttacks } from './adversarial-suite.js';

const probe = probeNativeKvm();
const skip: string | false = probe.available ? false : probe.reason;
if (skip) console.warn(`[adversarial.native] skipped: ${skip}`);
const target = { name: 'kvm (native /dev/kvm)', create: () => openKvmHypervisor({ driver: 'native' }), skip };
defineAdversarialSuite(target);
defineLifetimeAttacks(target);
defineErrorAttacks(target);

const P = 4096;
const fds = (): number[] => openFds();
const gmemMappings = (): number =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('kvm-gmem')).length;

/** Runs `fn`, swallowing the GuestMemError it may throw (checked for shape). */
function tryIt(h: Hypervisor, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    checkError(h, e);
  }
}

describe.skipIf(!!skip)('adversarial on /dev/kvm: leaks and sim agreement', () => {
  it('Hypervisor.close() leaks nothing: fds and kvm-gmem mappings return to baseline after failed and successful calls', () => {
    const fds0 = fds();
    const maps0 = gmemMappings();
    for (let round = 0; round < 3; round++) {
      const h = openKvmHypervisor({ driver: 'native' });
      const vm = h.createVm();
      const a = vm.createGuestMemory({ size: 8 * P, hostMappable: true, initiallyShared: true });
      const b = vm.createGuestMemory({ size: 4 * P, hostMappable: true, initiallyShared: true });
      vm.bind({ memory: a, offset: 0, gpa: 0x10_0000, size: 4 * P, access: 'shared' });
      tryIt(h, () => vm.bind({ memory: a, offset: 4 * P, gpa: 0x10_1000, size: 4 * P, access: 'shared' })); // overlap
      tryIt(h, () => vm.bind({ memory: a, offset: 4 * P, gpa: 1n << 52n, size: 4 * P, access: 'shared' })); // past the largest gfn
      tryIt(h, () => vm.bind({ memory: b, offset: 0, gpa: (1n << 64n) - 4096n, size: P, access: 'shared' }));
      const views = [a.map(), a.map({ offset: P, length: P }), b.map()];
      tryIt(h, () => views[0]?.read(8 * P, 1));
      views[1]?.unmap();
      b.close();
      const vm2 = h.createVm();
      const c = vm2.createGuestMemory({ size: P, hostMappable: true, initiallyShared: true });
      vm2.bind({ memory: c, offset: 0, gpa: 0, size: P, access: 'shared' });
      c.map().fill(0, P, 1);
      vm2.destroy();
      expect(gmemMappings()).toBeGreaterThan(maps0);
      h.close();
      expect(fds(), `round ${round}`).toEqual(fds0);
      expect(gmemMappings(), `round ${round}`).toBe(maps0);
    }
  });

  it('64-bit edges: the simulated kernel accepts and refuses exactly the bindings the real one does', () => {
    const answer = (h: Hypervisor, gpa: bigint, size: number): string => {
      const vm = h.createVm();
      const mem = vm.createGuestMemory({ size: 4 * P });
      try {
        vm.bind({ memory: mem, offset: 0, gpa, size, access: 'shared' });
        return 'ok';
      } catch (e) {
        return checkError(h, e).code;
      } finally {
        vm.destroy();
        mem.close();
      }
    };
    const edges: Array<[bigint, number]> = [
      [(1n << 52n) - 4096n, P],
      [(1n << 52n) - 8192n, 2 * P],
      [(1n << 52n) - 4096n, 2 * P],
      [1n << 52n, P],
      [(1n << 52n) + 4096n, P],
      [1n << 63n, P],
      [(1n << 64n) - 8192n, P],
      [(1n << 64n) - 4096n, P],
      [(1n << 48n) - 4096n, P],
    ];
    const native = openKvmHypervisor({ driver: 'native' });
    const sim = openKvmHypervisor({ driver: 'sim', swProtectedVm: false });
    try {
      for (const [gpa, size] of edges)
        expect(answer(sim, gpa, size), `bind at 0x${gpa.toString(16)} +${size}`).toBe(answer(native, gpa, size));
    } finally {
      native.close();
      sim.close();
    }
  });
});
