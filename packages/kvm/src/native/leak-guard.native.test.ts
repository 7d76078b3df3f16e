/**
 * The garbage-collection safety net on the real /dev/kvm: VM, guest_memfd, mapping and vCPU handles
 * dropped without close() are released when collected, with one warning; a mapping a live memslot
 * uses is kept until the slot's VM closes.
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LEAK_WARNING_CODE } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openFds } from '../api.js';
import { openKvm } from '../open.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { asNativeVm } from './driver.js';
import { probeNativeKvm } from './probe.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const probe = probeNativeKvm();
if (!probe.available) console.warn(`[leak-guard.native] skipped: ${probe.reason}`);
const maps = (): string[] => readFileSync('/proc/self/maps', 'utf8').split('\n');
const gmemMappings = (): number => maps().filter((l) => l.includes('kvm-gmem')).length;
const isMapped = (address: bigint): boolean =>
  maps().some((l) => {
    const [range] = l.split(' ');
    if (!range) return false;
    const [lo, hi] = range.split('-').map((x) => BigInt(`0x${x}`));
    return lo! <= address && address < hi!;
  });

/** Collects until `done()` or 40 rounds; finalizers and the warning run between rounds. */
async function collect(done: () => boolean): Promise<void> {
  for (let i = 0; i < 40 && !done(); i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One dropped graph: /dev/kvm, a VM with a vCPU, a guest_memfd and a mapping of it. None closed. */
function dropGraph(): void {
  const kvm = openKvm({ driver: 'native' });
  const vm = kvm.createVm(0);
  asNativeVm(vm).createVcpu(0);
  const gmem = vm.createGuestMemfd({ size: 8192, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  const m = gmem.mmap({ length: 8192, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset: 0 });
  m.write(0, Uint8Array.of(1, 2, 3));
}

describe.skipIf(!probe.available)('native leak guard (GC exposed)', () => {
  it('30 dropped VM graphs leave fds and kvm-gmem mappings at the baseline, with one warning naming them', async () => {
    await collect(() => false); // settle earlier tests' garbage
    const fds = openFds().length;
    const gmem = gmemMappings();
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void ((w as { code?: string }).code === LEAK_WARNING_CODE && warnings.push(w));
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 30; i++) dropGraph();
      expect(openFds().length).toBeGreaterThanOrEqual(fds + 30 * 4);
      expect(gmemMappings()).toBeGreaterThanOrEqual(gmem + 30);
      await collect(() => openFds().length === fds && gmemMappings() === gmem && warnings.length > 0);
      expect(openFds().length).toBe(fds);
      expect(gmemMappings()).toBe(gmem);
      expect(warnings.length).toBeGreaterThan(0);
      const text = warnings.map((w) => w.message).join('\n');
      for (const what of ['× kvm VM fd', '× kvm guest_memfd fd', '× kvm guest_memfd mapping', '× kvm vCPU fd', '× kvm /dev/kvm fd'])
        expect(text).toContain(what);
      // One warning per collection, not one per object.
      expect(warnings.length).toBeLessThan(30);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a dropped mapping a live memslot uses stays mapped until the slot is deleted (safe API: the slot holds the mapping)', async () => {
    const kvm = openKvm({ driver: 'native' });
    const vm = kvm.createVm(0);
    const gmem = vm.createGuestMemfd({ size: 4096, flags: 0n });
    let address = 0n;
    (() => {
      const shared = kvm.mmapAnonymous(4096);
      address = shared.address;
      vm.setUserMemoryRegion2({
        slot: 1,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0x10_0000n,
        memorySize: 4096,
        userspace: { mapping: shared, offset: 0 },
        guestMemfdOffset: 0,
        guestMemfd: gmem.fd,
      });
    })();
    await collect(() => false);
    expect(isMapped(address), 'the slot still uses it').toBe(true);
    vm.setUserMemoryRegion2({ slot: 1, flags: 0, guestPhysAddr: 0x10_0000n, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
    await collect(() => !isMapped(address));
    expect(isMapped(address), 'the slot is gone: the collected mapping is unmapped').toBe(false);
    gmem.close();
    vm.close();
    kvm.close();
  });

  it('a dropped mapping a raw-address (unsafe) memslot uses stays mapped until the slot is deleted', async () => {
    const kvm = openKvm({ driver: 'native' });
    const vm = kvm.createVm(0);
    const gmem = vm.createGuestMemfd({ size: 4096, flags: 0n });
    let address = 0n;
    (() => {
      const shared = kvm.mmapAnonymous(4096);
      address = shared.address;
      vm.unsafeSetUserMemoryRegion({
        slot: 1,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0x10_0000n,
        memorySize: 4096,
        userspaceAddr: shared.address,
        guestMemfdOffset: 0,
        guestMemfd: gmem.fd,
      });
    })();
    await collect(() => false);
    expect(isMapped(address), 'the slot still uses it').toBe(true);
    vm.unsafeSetUserMemoryRegion({
      slot: 1,
      flags: 0,
      guestPhysAddr: 0x10_0000n,
      memorySize: 0,
      userspaceAddr: 0,
      guestMemfdOffset: 0,
      guestMemfd: 0,
    });
    expect(isMapped(address), 'the slot is gone: the collected mapping is unmapped').toBe(false);
    gmem.close();
    vm.close();
    kvm.close();
  });
  it('a collected VM handle whose VM a guest_memfd keeps alive does not release its slots: their mapping stays mapped', async () => {
    const kvm = openKvm({ driver: 'native' });
    let address = 0n;
    // The VM handle and the mapping are dropped; the guest_memfd (which pins the VM) is kept.
    const gmem = (() => {
      const vm = kvm.createVm(0);
      const g = vm.createGuestMemfd({ size: 4096, flags: 0n });
      const shared = kvm.mmapAnonymous(4096);
      address = shared.address;
      vm.unsafeSetUserMemoryRegion({
        slot: 1,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0x10_0000n,
        memorySize: 4096,
        userspaceAddr: shared.address,
        guestMemfdOffset: 0,
        guestMemfd: g.fd,
      });
      return g;
    })();
    await collect(() => false);
    expect(isMapped(address), 'the VM lives on through its guest_memfd: its slot still uses the mapping').toBe(true);
    gmem.close();
    kvm.close();
  });
});
