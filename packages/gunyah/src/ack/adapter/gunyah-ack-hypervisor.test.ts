import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { container as root } from 'tsyringe';
import { ArenaFolioAllocator, FOLIO_ALLOCATOR, HYPERVISOR_REGISTRY, registerCore } from '@guestmem/core';
import { GunyahAckHypervisor, registerGunyahAck } from './index.js';
import { gunyahGuestControls } from '../../adapter/guest-controls.js';

const P = 4096;
const G = 0x8000_0000n;

describe('GunyahAckHypervisor (neutral interfaces over the ACK driver)', () => {
  it("id 'gunyah-ack-sim'; no unbind, punch-hole, conversion or guest-memory file; private = lend, shared = share", () => {
    const h = new GunyahAckHypervisor();
    expect(h.id).toBe('gunyah-ack-sim');
    expect(h.capabilities.list()).toEqual(['guest-access', 'host-map', 'huge-pages', 'initially-shared', 'private-memory', 'vcpu']);
    expect(h.capabilities.raw).toMatchObject({ uapi: 'gunyah-ack', generation: 'C' });
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: 4 * P, hostMappable: true });
    vm.bind({ memory: m, offset: 0, gpa: G, size: 2 * P, access: 'private' });
    vm.bind({ memory: m, offset: 2 * P, gpa: G + 0x10_0000n, size: 2 * P, access: 'shared' });
    expect(
      h.host
        .vm(vm.id)
        ?.bindings()
        .map((b) => b.share),
    ).toEqual(['lend', 'share']);
    h.close();
  });

  it('unbind, punchHole and convert fail with EOPNOTSUPP and change nothing; the binding goes with the VM', () => {
    const h = new GunyahAckHypervisor();
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true });
    const b = vm.bind({ memory: m, offset: 0, gpa: G, size: 2 * P, access: 'shared' });
    vm.guestWrite(G, Uint8Array.of(1));
    expect(() => b.unbind()).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP', backend: 'gunyah-ack-sim' }));
    expect(() => m.punchHole(0, P)).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
    expect(() => vm.convert({ gpa: G, size: P }, 'private')).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
    expect(b.active).toBe(true);
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(1));
    vm.destroy();
    expect(b.active).toBe(false);
    m.close();
    h.close();
    expect(h.host.stats()).toMatchObject({ openFds: 0, bindings: 0, parcels: 0, lockedPages: 0, folioBytes: 0n });
  });

  it('reclaim is all-or-nothing at the neutral level (the ioctl is not): EBUSY and nothing reclaimed while the guest holds a lent page', () => {
    const h = new GunyahAckHypervisor();
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true });
    vm.bind({ memory: m, offset: 0, gpa: G, size: 2 * P, access: 'private' });
    vm.guestWrite(G, Uint8Array.of(1));
    vm.guestWrite(G + BigInt(P), Uint8Array.of(2));
    const ctl = gunyahGuestControls(vm)!;
    ctl.relinquish({ gpa: G, size: P });
    const sim = h.host.vm(vm.id)!;
    expect(() => ctl.reclaim({ gpa: G, size: 2 * P })).toThrow(
      expect.objectContaining({ code: 'EBUSY', syscall: 'ioctl(GH_VM_RECLAIM_REGION)' }),
    );
    expect(sim.pageState(Number(G / 4096n))).toBe('PROVIDED_LENT'); // relinquished but not reclaimed
    ctl.relinquish({ gpa: G + BigInt(P), size: P });
    ctl.reclaim({ gpa: G, size: 2 * P });
    expect(sim.pageState(Number(G / 4096n))).toBe('ABSENT');
    h.close();
  });

  it('a closed memory stays mapped while a binding uses its address; the guest keeps working; destroy unmaps it', () => {
    const h = new GunyahAckHypervisor();
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: P });
    vm.bind({ memory: m, offset: 0, gpa: G, size: P, access: 'shared' });
    m.close();
    vm.guestWrite(G, Uint8Array.of(9));
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(9));
    vm.destroy();
    expect(h.process.mm.mappings.length).toBe(0);
    h.close();
  });

  it('RLIMIT_MEMLOCK reaches the neutral API: a guest access past the limit is EFAULT with the PAGE_FAULT exit (-ENOMEM) in info', () => {
    const h = new GunyahAckHypervisor({ memlockLimit: 2 * P });
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: 4 * P });
    vm.bind({ memory: m, offset: 0, gpa: G, size: 4 * P, access: 'private' });
    vm.guestWrite(G, Uint8Array.of(1)); // the adapter's DTB page + this one
    expect(() => vm.guestWrite(G + BigInt(P), Uint8Array.of(1))).toThrow(
      expect.objectContaining({ code: 'EFAULT', info: { exit: expect.objectContaining({ attempt: -12 }) } }),
    );
    h.close();
  });

  it('registerGunyahAck: selectable by id, sharing the container allocator', () => {
    const c = root.createChildContainer();
    const allocator = new ArenaFolioAllocator();
    registerCore(c, { allocator, hypervisor: 'gunyah-ack-sim' });
    registerGunyahAck(c);
    const reg = c.resolve(HYPERVISOR_REGISTRY);
    expect(reg.list().map((p) => p.id)).toContain('gunyah-ack-sim');
    expect(c.resolve(FOLIO_ALLOCATOR)).toBe(allocator);
    const h = reg.select().provider.create() as GunyahAckHypervisor;
    expect(h.id).toBe('gunyah-ack-sim');
    const vm = h.createVm();
    const m = vm.createGuestMemory({ size: P });
    vm.bind({ memory: m, offset: 0, gpa: 0, size: P, access: 'shared' });
    vm.guestWrite(0, Uint8Array.of(1));
    expect(allocator.stats().bytesInUse).toBe(2 * P); // the page + the adapter's DTB page
    h.close();
    expect(allocator.stats().bytesInUse).toBe(0);
  });
});
