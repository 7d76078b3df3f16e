/**
 * One backend id per backend: every error a backend raises through the neutral API names that
 * backend (`GuestMemError.backend === Hypervisor.id`), whichever layer found the fault — argument
 * checks in core, the backend's own rules, its uAPI encoder, its driver or kernel, or a host access
 * refused with SIGBUS. The test walks a list of bad calls, one per kind of fault, on a fresh
 * hypervisor. Part of {@link defineConformanceSuite}.
 */
import type { Hypervisor, Vm } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { GuestMemError } from '@guestmem/core';
import type { ConformanceTarget } from './suite.js';

const P = 4096;

/** The bad calls `vm` offers (each must fail), by what they get wrong. */
function badCalls(h: Hypervisor, vm: Vm): Array<[string, () => unknown]> {
  const c = vm.capabilities;
  const m = vm.createGuestMemory({ size: 4 * P });
  const bound = vm.bind({ memory: m, offset: 0, gpa: 0x1000_0000n, size: P, access: 'shared' });
  const closed = vm.createGuestMemory({ size: P });
  closed.close();
  const calls: Array<[string, () => unknown]> = [
    ['createGuestMemory of size 0', () => vm.createGuestMemory({ size: 0 })],
    ['createGuestMemory of a non-page size', () => vm.createGuestMemory({ size: P + 1 })],
    ['createGuestMemory beyond maxGuestMemorySize', () => vm.createGuestMemory({ size: c.maxGuestMemorySize + BigInt(P) })],
    ['allocate past the end', () => m.allocate(4 * P, P)],
    ['allocate of length 0', () => m.allocate(0, 0)],
    ['punchHole past the end (or no punch-hole)', () => m.punchHole(4 * P, P)],
    ['markPoisoned past the end (or no poison-injection)', () => m.markPoisoned(4 * P)],
    ['bind with an unknown access', () => vm.bind({ memory: m, offset: P, gpa: 0x2000_0000n, size: P, access: 'bogus' as 'shared' })],
    ['bind of an unaligned gpa', () => vm.bind({ memory: m, offset: P, gpa: 0x2000_0001n, size: P, access: 'shared' })],
    ['bind past the memory', () => vm.bind({ memory: m, offset: 3 * P, gpa: 0x2000_0000n, size: 2 * P, access: 'shared' })],
    ['bind over a bound range', () => vm.bind({ memory: m, offset: P, gpa: 0x1000_0000n, size: P, access: 'shared' })],
    ['bind of closed memory', () => vm.bind({ memory: closed, offset: 0, gpa: 0x3000_0000n, size: P, access: 'shared' })],
    ['allocate on closed memory', () => closed.allocate(0, P)],
    ['map of closed memory', () => closed.map()],
    ['map of memory made without hostMappable (or no host-map)', () => m.map()],
    [
      'bind of another VM’s memory',
      () => {
        const other = h.createVm();
        try {
          const foreign = other.createGuestMemory({ size: P });
          try {
            return vm.bind({ memory: foreign, offset: 0, gpa: 0x4000_0000n, size: P, access: 'shared' });
          } finally {
            foreign.close();
          }
        } finally {
          other.destroy();
        }
      },
    ],
  ];
  if (!c.has('unbind')) calls.push(['unbind without the capability', () => bound.unbind()]);
  if (c.has('convert-in-place') || c.has('convert-remap')) {
    calls.push(['convert of an unaligned range', () => vm.convert({ gpa: 0x1000_0001n, size: P }, 'private')]);
    calls.push(['convert to an unknown state', () => vm.convert({ gpa: 0x1000_0000n, size: P }, 'bogus' as 'shared')]);
  }
  if (c.has('guest-access')) {
    calls.push(['guestRead of an unbound gpa', () => vm.guestRead(0x7000_0000n, 4)]);
    calls.push(['guestWrite of an unbound gpa', () => vm.guestWrite(0x7000_0000n, new Uint8Array(4))]);
  }
  if (c.has('host-map') && c.has('initially-shared')) {
    const shared = vm.createGuestMemory({ size: 2 * P, hostMappable: true, initiallyShared: true });
    const view = shared.map();
    calls.push(['map at an unaligned offset', () => shared.map({ offset: 1, length: P })]);
    calls.push(['view read past its end', () => view.read(view.length, 1)]);
    calls.push(['view write past its end', () => view.write(view.length - 1, new Uint8Array(2))]);
    const gone = shared.map({ length: P });
    gone.unmap();
    calls.push(['read through an unmapped view', () => gone.read(0, 1)]);
  }
  if (c.has('host-map') && c.has('private-memory')) {
    // Private by default: the host may not read it (map refuses, or the read faults with SIGBUS).
    const priv = vm.createGuestMemory({ size: P, hostMappable: true });
    calls.push(['host read of private memory', () => priv.map().read(0, 1)]);
  }
  return calls;
}

/** The GuestMemError `call` throws; fails naming `what` when it throws nothing or something else. */
function errorOf(what: string, call: () => unknown): GuestMemError {
  try {
    call();
  } catch (e) {
    expect(e, `${what}: ${String(e)}`).toBeInstanceOf(GuestMemError);
    return e as GuestMemError;
  }
  return expect.fail(`${what}: succeeded`);
}

export function defineErrorBackendSuite(target: ConformanceTarget): void {
  const suite = target.skip ? describe.skip : describe;
  suite(`errors name the backend: ${target.name}`, () => {
    it('every bad call fails with a GuestMemError whose backend is Hypervisor.id', () => {
      const h = target.create();
      let vm: Vm | undefined;
      try {
        vm = h.createVm();
        const calls = badCalls(h, vm);
        expect(calls.length).toBeGreaterThanOrEqual(17);
        for (const [what, call] of calls) {
          const e = errorOf(what, call);
          expect(e.backend, `${what}: ${e.message}`).toBe(h.id);
          expect(e.message.startsWith(`${h.id}: `), `${what}: ${e.message}`).toBe(true);
        }
        const v = vm;
        v.destroy();
        const e = errorOf('createGuestMemory after destroy', () => v.createGuestMemory({ size: P }));
        expect(e.backend, `createGuestMemory after destroy: ${e.message}`).toBe(h.id);
      } finally {
        if (vm && !vm.destroyed) vm.destroy();
        h.close();
      }
      // The contract does not say createVm fails after close(); where it does, the error names the backend.
      let late: Vm | undefined;
      try {
        late = h.createVm();
      } catch (e) {
        expect(e, 'createVm after close').toBeInstanceOf(GuestMemError);
        expect((e as GuestMemError).backend, `createVm after close: ${String(e)}`).toBe(h.id);
      }
      late?.destroy();
    });
  });
}
