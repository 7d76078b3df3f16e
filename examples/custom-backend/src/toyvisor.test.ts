import 'reflect-metadata';
import { HYPERVISOR, registerCore } from '@guestmem/core';
import { defineConformanceSuite, defineGuestConformanceSuite } from '@guestmem/conformance';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { Toyvisor, registerToyvisor } from './toyvisor.js';

defineConformanceSuite({ name: 'toyvisor (examples/custom-backend)', create: () => new Toyvisor() });
defineGuestConformanceSuite({ name: 'toyvisor (examples/custom-backend)', create: () => new Toyvisor() });

describe('toyvisor through DI', () => {
  it('is selected by id and converts in place', () => {
    const c = container.createChildContainer();
    registerCore(c, { hypervisor: 'toyvisor' });
    registerToyvisor(c);
    const vm = c.resolve(HYPERVISOR).createVm();
    const mem = vm.createGuestMemory({ size: 8192, hostMappable: true, initiallyShared: true });
    vm.bind({ memory: mem, offset: 0, gpa: 0x1000, size: 8192, access: 'shared' });
    vm.guestWrite(0x1000, new Uint8Array([9]));
    vm.convert({ gpa: 0x1000, size: 4096 }, 'private');
    expect(() => mem.map().read(0, 1)).toThrow(expect.objectContaining({ code: 'SIGBUS' }));
    expect(vm.guestRead(0x1000, 1)).toEqual(new Uint8Array([0]));
    vm.destroy();
    mem.close();
  });
});
