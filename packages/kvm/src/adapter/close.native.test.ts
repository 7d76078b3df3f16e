/**
 * Hypervisor.close() on the real kernel leaves nothing behind: no fd it opened, no guest_memfd
 * mapping (`anon_inode:[kvm-gmem]` in /proc/self/maps), no anonymous slot memory.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openFds } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';
import { openKvmHypervisor } from './register.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[close.native] skipped: ${probe.reason}`);
const gmemMappings = (): number =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('kvm-gmem')).length;
const P = 4096;

describe.skipIf(!probe.available)('KvmHypervisor.close() on /dev/kvm', () => {
  it('unmaps every host view and closes every fd it made; a view read afterwards fails with EFAULT', () => {
    const fds = openFds();
    const maps = gmemMappings();
    const h = openKvmHypervisor({ driver: 'native' });
    const vm = h.createVm();
    const a = vm.createGuestMemory({ size: 4 * P, hostMappable: true, initiallyShared: true });
    const b = vm.createGuestMemory({ size: 2 * P, hostMappable: true, initiallyShared: true });
    vm.bind({ memory: a, offset: 0, gpa: 0x10_0000n, size: 4 * P, access: 'shared' });
    const views = [a.map(), a.map({ offset: P, length: P }), b.map()];
    b.close(); // its view keeps the guest_memfd alive until close() below
    views[0]!.fill(0, P, 7);
    expect(gmemMappings()).toBeGreaterThanOrEqual(maps + 4); // three views and the slot's shared side
    expect(openFds().length).toBeGreaterThan(fds.length);
    h.close();
    expect(gmemMappings()).toBe(maps);
    expect(openFds()).toEqual(fds);
    for (const v of views) expect(() => v.read(0, 1)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
  });
});
