/**
 * `Vm.convert` is all-or-nothing on KVM: the attribute ioctl is atomic, a closed guest_memfd has
 * nothing to discard, and a failing discard puts the attributes back.
 */
import { gmErr, type GuestMemory, type MemoryAccess, type Vm } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KvmBinding, KvmGuestMemory, KvmVmAdapter } from './kvm-hypervisor.js';
import { openKvmHypervisor } from './register.js';

const P = 4096n;
const BASE = 0x100_0000n;
const PAGES = 9; // room for the largest layout (3 bindings of 3 pages)

function observe(vm: Vm): unknown {
  const bindings = vm.bindings().map((b) => [b.gpa, b.size, b.offset, b.active]);
  const states = Array.from({ length: PAGES + 2 }, (_, i) => vm.memoryState.get(Number(BASE / P) - 1 + i));
  const guest = Array.from({ length: PAGES }, (_, i) => {
    try {
      return Array.from(vm.guestRead(BASE + BigInt(i) * P, 2));
    } catch (e) {
      return (e as { code: string }).code;
    }
  });
  const host = vm.bindings().map((b) => {
    const v = (b as KvmBinding).sharedView();
    return v ? Array.from({ length: Number(b.size / P) }, (_, i) => Array.from(v.read(i * 4096, 2))) : null;
  });
  return { bindings, states, guest, host };
}

/** Fails the `failAt`-th (1-based) uAPI step of a conversion: the attribute ioctl, a punch, a madvise. */
function inject(vm: KvmVmAdapter, failAt: number): () => number {
  let n = 0;
  const hit = (op: string): void => {
    if (++n === failAt) throw gmErr('EIO', op, 'kvm-sim', `injected at step ${n}`);
  };
  const kvmVm = vm.kvmVm as { setMemoryAttributes: (a: never) => void };
  const attrs = kvmVm.setMemoryAttributes.bind(kvmVm);
  kvmVm.setMemoryAttributes = (a) => (hit('setMemoryAttributes'), attrs(a));
  for (const b of vm.bindings() as KvmBinding[]) {
    const fd = (b.memory as KvmGuestMemory).fd as { fallocate: (...a: never[]) => void };
    if (!Object.hasOwn(fd, 'fallocate')) {
      const f = fd.fallocate.bind(fd);
      fd.fallocate = (...a) => (hit('fallocate'), f(...a));
    }
    const host = b.hostMemory as { madvise: (...a: never[]) => void } | undefined;
    if (host) {
      const m = host.madvise.bind(host);
      host.madvise = (...a) => (hit('madvise'), m(...a));
    }
  }
  return () => n;
}

function world(layout: Array<[number, MemoryAccess]>): { vm: KvmVmAdapter; close: () => void; mem: GuestMemory } {
  const h = openKvmHypervisor({ driver: 'sim' });
  const vm = h.createVm({ confidential: true }) as KvmVmAdapter;
  const mem = vm.createGuestMemory({ size: BigInt(PAGES) * P });
  let page = 0;
  for (const [n, access] of layout) {
    vm.bind({ memory: mem, offset: BigInt(page) * P, gpa: BASE + BigInt(page) * P, size: BigInt(n) * P, access });
    page += n;
  }
  for (let i = 0; i < page; i++) vm.guestWrite(BASE + BigInt(i) * P, Uint8Array.of(0x40 + i, 0x80 + i));
  return { vm, mem, close: () => h.close() };
}

describe('KVM convert is all-or-nothing', () => {
  it('property: a failure at the attribute ioctl or the first discard step leaves bindings, memoryState, guest and host reads as before', () => {
    const access = fc.constantFrom<MemoryAccess>('private', 'shared');
    const layout = fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), access), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(
        layout,
        fc.integer({ min: -1, max: PAGES }),
        fc.integer({ min: 1, max: PAGES + 1 }),
        access,
        fc.boolean(),
        fc.constantFrom(1, 2),
        (lay, first, n, to, discard, failAt) => {
          const { vm, close } = world(lay);
          try {
            const before = observe(vm);
            const steps = inject(vm, failAt);
            let failed = false;
            try {
              vm.convert({ gpa: BASE + BigInt(first) * P, size: BigInt(n) * P }, to, { discard });
            } catch (e) {
              expect((e as { code: string }).code).toBe('EIO');
              failed = true;
            }
            if (!failed) {
              expect(steps()).toBeLessThan(failAt);
              return;
            }
            expect(observe(vm)).toEqual(before);
          } finally {
            close();
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('a conversion over memory whose handle was closed succeeds: nothing is left to discard (the slot does not pin the file)', () => {
    for (const hostMappable of [false, true]) {
      const h = openKvmHypervisor({ driver: 'sim' });
      const vm = h.createVm({ confidential: true });
      const mem = vm.createGuestMemory({ size: 2n * P, hostMappable: hostMappable && vm.capabilities.has('host-map') });
      vm.bind({ memory: mem, offset: 0, gpa: BASE, size: 2n * P, access: 'private' });
      vm.guestWrite(BASE, Uint8Array.of(0xa5));
      mem.close();
      vm.convert({ gpa: BASE, size: P }, 'shared');
      expect(vm.memoryState.get(Number(BASE / P))).toBe('shared');
      h.close();
    }
  });
});
