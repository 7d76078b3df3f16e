/**
 * The KVM adapter on a confidential VM of the simulated kernel: capabilities per level, where the
 * shared side of a slot lives, what `convert` discards in each direction, listeners, bind's
 * `access`, poison injection, and the registry's sim provider.
 */
import {
  GuestMemError,
  HostAccessFault,
  HYPERVISOR_REGISTRY,
  registerCore,
  type HypervisorRegistry,
  type StateChange,
  type MemoryAccess,
} from '@guestmem/core';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { openKvm } from '../open.js';
import type { SimKvm } from '../sim/kvm.js';
import type { SimKvmVm } from '../sim/vm.js';
import { KvmHypervisor, type KvmBinding, type KvmGuestMemory, type KvmVmAdapter } from './kvm-hypervisor.js';
import { openKvmHypervisor, registerKvm } from './register.js';

const P = 4096;
const GPA = 0x1_0000_0000n;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuestMemError) return e.code;
    throw e;
  }
  return 'ok';
}

function cocoVm(pages = 4) {
  const h = openKvmHypervisor({ driver: 'sim' });
  const vm = h.createVm({ confidential: true }) as KvmVmAdapter;
  const mem = vm.createGuestMemory({ size: pages * P }) as KvmGuestMemory;
  const b = vm.bind({ memory: mem, offset: 0, gpa: GPA, size: pages * P, access: 'shared' }) as KvmBinding;
  const host = b.sharedView()!;
  const sim = vm.kvmVm as SimKvmVm;
  return { h, vm, mem, b, host, sim, kvm: h.kvm as SimKvm };
}

describe('KvmHypervisor on the simulated kernel with SW_PROTECTED', () => {
  it('capabilities: the hypervisor and a confidential VM convert in place; a default VM of the same kernel has no private memory', () => {
    const h = openKvmHypervisor({ driver: 'sim' });
    for (const c of ['private-memory', 'convert-in-place', 'guest-access', 'poison-injection', 'initially-shared'] as const)
      expect(h.capabilities.has(c)).toBe(true);
    const coco = h.createVm({ confidential: true });
    expect((coco as KvmVmAdapter).kvmVm.type).toBe(1);
    expect(['private-memory', 'convert-in-place', 'guest-access', 'host-map'].every((c) => coco.capabilities.has(c as never))).toBe(true);
    // No INIT_SHARED for a VM with private memory.
    expect(coco.capabilities.has('initially-shared')).toBe(false);
    expect(code(() => coco.createGuestMemory({ size: P, initiallyShared: true }))).toBe('EOPNOTSUPP');
    const plain = h.createVm();
    expect([plain.capabilities.has('private-memory'), plain.capabilities.has('convert-in-place')]).toEqual([false, false]);
    expect(code(() => plain.convert({ gpa: 0, size: P }, 'private'))).toBe('EOPNOTSUPP');
    h.close();
    // Built like the probe machine: no confidential VMs at all.
    const probe = openKvmHypervisor({ driver: 'sim', swProtectedVm: false });
    expect(probe.capabilities.has('private-memory')).toBe(false);
    expect(code(() => probe.createVm({ confidential: true }))).toBe('EOPNOTSUPP');
    probe.close();
  });

  it("a binding's shared side is anonymous host memory at userspace_addr; private pages come from the guest_memfd", () => {
    const { h, vm, host, sim } = cocoVm();
    vm.guestWrite(GPA, new Uint8Array([1, 2, 3]));
    expect(host.read(0, 3)).toEqual(new Uint8Array([1, 2, 3]));
    vm.convert({ gpa: GPA, size: P }, 'private', { discard: false });
    expect(sim.isPrivate(GPA)).toBe(true);
    expect(vm.guestRead(GPA, 3)).toEqual(new Uint8Array(3));
    vm.guestWrite(GPA, new Uint8Array([0x99]));
    expect(host.read(0, 3)).toEqual(new Uint8Array([1, 2, 3]));
    h.close();
  });

  it('convert with discard (default): to private drops the shared copy (MADV_DONTNEED), to shared punches the private copy', () => {
    const { h, vm, mem, host, kvm } = cocoVm();
    vm.guestWrite(GPA, new Uint8Array(P).fill(0x11));
    vm.convert({ gpa: GPA, size: P }, 'private');
    expect(host.read(0, P).every((x) => x === 0)).toBe(true);
    vm.guestWrite(GPA, new Uint8Array(P).fill(0x22));
    const file = (mem.fd as unknown as { file: { core: { pagesPresent: number } } }).file.core;
    expect(file.pagesPresent).toBe(1);
    vm.convert({ gpa: GPA, size: P }, 'shared');
    expect(file.pagesPresent).toBe(0);
    vm.convert({ gpa: GPA, size: P }, 'private');
    expect(vm.guestRead(GPA, P).every((x) => x === 0)).toBe(true);
    // Closing the hypervisor closes the memory object too (the guest_memfd pins its VM, so the VM
    // only goes away with it): nothing is left in the kernel.
    h.close();
    expect(mem.closed).toBe(true);
    expect(kvm.stats()).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0, memory: { bytesInUse: 0 } });
  });

  it('convert without discard keeps both copies: a round trip finds the old data on each side', () => {
    const { h, vm } = cocoVm();
    vm.guestWrite(GPA, new Uint8Array([0x11]));
    vm.convert({ gpa: GPA, size: P }, 'private', { discard: false });
    vm.guestWrite(GPA, new Uint8Array([0x22]));
    vm.convert({ gpa: GPA, size: P }, 'shared', { discard: false });
    expect(vm.guestRead(GPA, 1)[0]).toBe(0x11);
    vm.convert({ gpa: GPA, size: P }, 'private', { discard: false });
    expect(vm.guestRead(GPA, 1)[0]).toBe(0x22);
    h.close();
  });

  it('listeners fire once per changed run, never for a no-op conversion; kernel errors change nothing', () => {
    const { h, vm } = cocoVm(8);
    const gfn = Number(GPA / BigInt(P));
    const events: Array<StateChange<MemoryAccess>> = [];
    vm.memoryState.onChange((c) => events.push(c));
    vm.convert({ gpa: GPA + BigInt(2 * P), size: 2 * P }, 'private');
    vm.convert({ gpa: GPA, size: 8 * P }, 'private');
    vm.convert({ gpa: GPA, size: 8 * P }, 'private');
    vm.convert({ gpa: GPA + BigInt(P), size: P }, 'shared');
    expect(events.map((e) => [e.first - gfn, e.end - gfn, e.to])).toEqual([
      [2, 4, 'private'],
      [0, 2, 'private'],
      [4, 8, 'private'],
      [1, 2, 'shared'],
    ]);
    expect(code(() => vm.convert({ gpa: GPA + 1n, size: P }, 'shared'))).toBe('EINVAL');
    expect(code(() => vm.convert({ gpa: GPA, size: 0 }, 'shared'))).toBe('EINVAL');
    expect(events).toHaveLength(4);
    h.close();
  });

  it('bind defaults to private on a confidential VM, applies the requested access, and rolls back when the bind fails', () => {
    const h = openKvmHypervisor({ driver: 'sim' });
    const vm = h.createVm({ confidential: true });
    const mem = vm.createGuestMemory({ size: 4 * P });
    const b = vm.bind({ memory: mem, offset: 0, gpa: GPA, size: 2 * P });
    expect(vm.memoryState.runs(Number(GPA / 4096n), Number(GPA / 4096n) + 2)).toEqual([
      { first: Number(GPA / 4096n), end: Number(GPA / 4096n) + 2, state: 'private' },
    ]);
    b.unbind();
    // Attributes outlive the slot; an explicit shared bind converts the range back.
    const s = vm.bind({ memory: mem, offset: 0, gpa: GPA, size: 2 * P, access: 'shared' });
    expect(vm.memoryState.get(Number(GPA / 4096n))).toBe('shared');
    expect(code(() => vm.bind({ memory: mem, offset: 0, gpa: GPA + BigInt(P), size: P }))).toBe('EEXIST');
    expect(vm.bindings()).toEqual([s]);
    expect((h.kvm as SimKvm).stats().mappings).toBe(1);
    h.close();
  });

  it('poison injection: guest access EHWPOISON, the page can be punched back to health', () => {
    const { h, vm, mem } = cocoVm();
    vm.convert({ gpa: GPA, size: P }, 'private');
    mem.markPoisoned(0);
    expect(code(() => vm.guestRead(GPA, 1))).toBe('EHWPOISON');
    mem.punchHole(0, P);
    expect(vm.guestRead(GPA, 1)[0]).toBe(0);
    h.close();
  });

  it('poison on host-mappable, initially-shared memory of a default VM: host view SIGBUS', () => {
    const h = openKvmHypervisor({ driver: 'sim' });
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 2 * P, hostMappable: true, initiallyShared: true }) as KvmGuestMemory;
    const view = mem.map();
    mem.markPoisoned(P);
    expect(() => view.read(P, 1)).toThrow(HostAccessFault);
    view.unmap();
    h.close();
  });

  it("registerKvm's sim provider hands out a SW_PROTECTED-capable kvm-sim with guest access", () => {
    const c = container.createChildContainer();
    registerCore(c);
    registerKvm(c, { driver: 'sim' });
    const reg = c.resolve<HypervisorRegistry>(HYPERVISOR_REGISTRY);
    const h = reg.open('kvm-sim');
    try {
      expect(h.id).toBe('kvm-sim');
      for (const cap of ['guest-access', 'private-memory', 'convert-in-place', 'poison-injection'] as const)
        expect(h.capabilities.has(cap)).toBe(true);
      const vm = h.createVm({ confidential: true });
      const mem = vm.createGuestMemory({ size: P });
      vm.bind({ memory: mem, offset: 0, gpa: 0, size: P, access: 'shared' });
      vm.guestWrite(0, new Uint8Array([5]));
      expect(vm.guestRead(0, 1)[0]).toBe(5);
    } finally {
      h.close();
    }
  });
});
