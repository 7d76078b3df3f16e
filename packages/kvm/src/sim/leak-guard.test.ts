/**
 * The GC safety net of the simulated kernel itself (`leak-guard.ts`): VM, guest_memfd, vCPU and
 * mapping handles dropped without close()/munmap() on a kernel that stays open are released when
 * collected — fd table, VMs, guest_memfd files, address space and folio allocator back at the
 * baseline — with one warning per collection; memory a live slot uses is never released.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LEAK_WARNING_CODE } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { type SimKvm, openSimKvm } from './kvm.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const P = 4096;

async function collect(done: () => boolean): Promise<void> {
  for (let i = 0; i < 40 && !done(); i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** What must come back: open fds, live VMs, guest_memfd files, mappings and folio bytes. */
const footprint = (kvm: SimKvm) => {
  const s = kvm.stats();
  return { fds: kvm.openFds(), vms: s.vms, guestMemfds: s.guestMemfds, mappings: s.mappings, bytes: s.memory.bytesInUse };
};

/** One dropped graph: a VM with a vCPU, a guest_memfd bound to a slot whose userspace memory is an anonymous mapping, a mapping of the guest_memfd. None closed. */
function dropGraph(kvm: SimKvm): void {
  const vm = kvm.createVm(0);
  vm.createVcpu(0);
  const gmem = vm.createGuestMemfd({ size: 4 * P, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  const view = gmem.mmap({ length: 4 * P, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
  view.write(P, Uint8Array.of(1, 2, 3));
  const anon = kvm.mmapAnonymous(2 * P);
  anon.write(0, Uint8Array.of(4));
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: 0x10_0000n,
    memorySize: 2 * P,
    userspace: { mapping: anon },
    guestMemfdOffset: 0,
    guestMemfd: gmem.fd,
  });
  vm.guestWrite(0x10_0000n, Uint8Array.of(5));
}

function onLeakWarnings(): { messages: string[]; stop: () => void } {
  const messages: string[] = [];
  const on = (w: Error): void => void ((w as { code?: string }).code === LEAK_WARNING_CODE && messages.push(w.message));
  process.on('warning', on);
  return { messages, stop: () => void process.off('warning', on) };
}

describe('kvm-sim kernel leak guard (GC exposed)', () => {
  it('30 dropped VM graphs leave the fd table, VMs, files, mappings and allocator at the baseline, with a warning per collection (not per object) naming them', async () => {
    const kvm = openSimKvm();
    await collect(() => false);
    const base = footprint(kvm);
    const w = onLeakWarnings();
    try {
      for (let i = 0; i < 30; i++) dropGraph(kvm);
      const grown = footprint(kvm);
      expect(grown.fds.length).toBe(base.fds.length + 30 * 3);
      expect([grown.vms, grown.guestMemfds, grown.mappings]).toEqual([base.vms + 30, base.guestMemfds + 30, base.mappings + 60]);
      expect(grown.bytes).toBeGreaterThanOrEqual(base.bytes + 30 * 3 * P);
      await collect(() => JSON.stringify(footprint(kvm)) === JSON.stringify(base) && w.messages.length > 0);
      expect(footprint(kvm)).toEqual(base);
      const text = w.messages.join('\n');
      for (const what of [
        '× kvm-sim VM fd',
        '× kvm-sim guest_memfd fd',
        '× kvm-sim vCPU fd',
        '× kvm-sim guest_memfd mapping',
        '× kvm-sim anonymous mapping',
      ]) {
        expect(text).toContain(what);
      }
      expect(w.messages.length).toBeLessThan(30);
    } finally {
      w.stop();
      kvm.close();
    }
  });

  it('a reachable handle keeps its fd number open; a dropped mapping a live slot uses keeps its memory until the slot is deleted', async () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm(0);
    const gmem = vm.createGuestMemfd({ size: 4 * P, flags: 0 });
    (() => {
      const anon = kvm.mmapAnonymous(P);
      anon.write(0, Uint8Array.of(42));
      vm.setUserMemoryRegion2({
        slot: 1,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0x10_0000n,
        memorySize: P,
        userspace: { mapping: anon },
        guestMemfdOffset: 0,
        guestMemfd: gmem.fd,
      });
    })();
    const mappings = kvm.stats().mappings;
    await collect(() => false);
    expect(kvm.openFds()).toContain(gmem.fd);
    expect(kvm.stats().mappings).toBe(mappings);
    expect(vm.guestRead(0x10_0000n, 1)).toEqual(Uint8Array.of(42));
    // The fd still names the same file: a second slot binds it.
    vm.setUserMemoryRegion2({
      slot: 2,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: 0x20_0000n,
      memorySize: P,
      guestMemfdOffset: P,
      guestMemfd: gmem.fd,
    });
    vm.setUserMemoryRegion2({ slot: 1, flags: 0, guestPhysAddr: 0x10_0000n, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
    await collect(() => kvm.stats().mappings === mappings - 1);
    expect(kvm.stats().mappings).toBe(mappings - 1);
    gmem.close();
    vm.close();
    kvm.close();
  });

  it('a dropped mapping a raw-address slot points into keeps its range reserved (never reused under the slot) until the slot is deleted', async () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm(0);
    let address = 0n;
    (() => {
      const anon = kvm.mmapAnonymous(P);
      address = anon.address;
      vm.unsafeSetUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0x10_0000n, memorySize: P, userspaceAddr: anon.address });
    })();
    const bytes = kvm.stats().memory.bytesInUse;
    await collect(() => false);
    // Collected: the guest faults there, and no new mapping takes the address.
    expect(() => vm.guestRead(0x10_0000n, 1)).toThrow(expect.objectContaining({ code: 'EFAULT', backend: 'kvm-sim' }));
    const again = kvm.mmapAnonymous(P);
    expect(again.address).not.toBe(address);
    expect(kvm.stats().memory.bytesInUse).toBeLessThanOrEqual(bytes);
    const mappings = kvm.stats().mappings;
    vm.unsafeSetUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0x10_0000n, memorySize: 0, userspaceAddr: 0 });
    expect(kvm.stats().mappings).toBe(mappings - 1);
    again.munmap();
    vm.close();
    kvm.close();
  });
});
