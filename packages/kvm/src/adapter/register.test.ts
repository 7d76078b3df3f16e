import 'reflect-metadata';
import { ArenaFolioAllocator, HYPERVISOR, registerCore } from '@guestmem/core';
import { FaultInjectingAllocator } from '@guestmem/core/testing';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { registerKvm } from './register.js';

describe('registerKvm', () => {
  it("the simulated kernel takes its memory from the container's FOLIO_ALLOCATOR (one accounting, shared fault injection)", () => {
    const allocator = new FaultInjectingAllocator(new ArenaFolioAllocator());
    const c = container.createChildContainer();
    registerCore(c, { allocator, hypervisor: 'kvm-sim' });
    registerKvm(c, { driver: 'sim' });
    const h = c.resolve(HYPERVISOR);
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 16 * 4096 });
    mem.allocate(0, 4 * 4096);
    expect(allocator.inner.stats().bytesInUse).toBe(4 * 4096);
    allocator.plan = { failFrom: allocator.attempts + 1 };
    expect(() => mem.allocate(4 * 4096, 4096)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    mem.close();
    vm.destroy();
    h.close();
    expect(allocator.inner.stats().bytesInUse).toBe(0);
  });
});
