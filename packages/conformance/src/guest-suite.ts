/**
 * The neutral guest contract, the same on every backend: `Vm.sharedView` by guest address and
 * `Vm.createVcpu` running a `GuestProgram`. Call {@link defineGuestConformanceSuite} from a
 * backend's test file.
 */
import { GuestMemError, GuestProgram, buildGuestImage, loadGuest, runGuest, type Hypervisor, type Vm } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import type { ConformanceTarget } from './suite.js';

const P = 4096;
const A = 0x10_0000n; // two bindings back to back from 1 MiB
const B = A + 16n * BigInt(P);

function withVm<T>(target: ConformanceTarget, fn: (vm: Vm, h: Hypervisor) => T): T {
  const h = target.create();
  try {
    return fn(h.createVm(), h);
  } finally {
    h.close();
  }
}

function twoBindings(vm: Vm): void {
  const mappable = vm.capabilities.has('host-map') && vm.capabilities.has('initially-shared');
  for (const gpa of [A, B]) {
    const mem = vm.createGuestMemory({ size: 16 * P, hostMappable: mappable, initiallyShared: mappable });
    vm.bind({ memory: mem, offset: 0, gpa, size: 16 * P, access: 'shared' });
  }
  const img = vm.createGuestMemory({ size: 1 << 20, hostMappable: mappable, initiallyShared: mappable });
  vm.bind({ memory: img, offset: 0, gpa: 0, size: 1 << 20, access: 'shared' });
}

const code = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    if (!GuestMemError.is(e)) throw e;
    return e.code;
  }
};

export function defineGuestConformanceSuite(target: ConformanceTarget): void {
  const skip = typeof target.skip === 'string' ? target.skip : undefined;
  if (skip) console.warn(`[guest contract] ${target.name} skipped: ${skip}`);
  describe.skipIf(!!skip)(`guest contract: ${target.name}`, () => {
    it("capability 'vcpu' is present and createVcpu gives a vCPU (else EOPNOTSUPP)", () => {
      withVm(target, (vm) => {
        if (!vm.capabilities.has('vcpu')) {
          expect(code(() => vm.createVcpu())).toBe('EOPNOTSUPP');
          return;
        }
        const v = vm.createVcpu();
        expect(v.closed).toBe(false);
        v.close();
        v.close();
        expect(v.closed).toBe(true);
        expect(code(() => v.run())).toBe('EBADF');
      });
    });

    it('sharedView: offset 0 is the GPA, one view spans two bindings, the guest sees what the host wrote and the host what the guest wrote', () => {
      withVm(target, (vm) => {
        twoBindings(vm);
        const view = vm.sharedView({ gpa: B - 8n, size: 16 });
        expect(view.length).toBe(16);
        expect(view.read(0, 16)).toEqual(new Uint8Array(16));
        view.write(
          0,
          Uint8Array.from({ length: 16 }, (_, i) => i + 1),
        );
        view.unmap();
        const vcpu = vm.createVcpu();
        const p = new GuestProgram()
          .checksum(B - 8n, 16, 0x10)
          .store(A + 100n, Uint8Array.of(9, 8, 7))
          .hlt();
        loadGuest(vm, vcpu, buildGuestImage(p));
        const r = runGuest(vm, vcpu);
        expect(r.exits[0]).toMatchObject({ kind: 'io', port: 0x10, data: Uint8Array.of(136, 0, 0, 0) });
        expect(r.stoppedBy).toBe('hlt');
        expect(vm.sharedView({ gpa: A + 99n, size: 5 }).read(0, 5)).toEqual(Uint8Array.of(0, 9, 8, 7, 0));
      });
    });

    it('sharedView: bad ranges are EINVAL, a hole is EFAULT, a view ends with unmap() and with its binding', () => {
      withVm(target, (vm) => {
        twoBindings(vm);
        expect(code(() => vm.sharedView({ gpa: A, size: 0 }))).toBe('EINVAL');
        expect(code(() => vm.sharedView({ gpa: -1, size: 1 }))).toBe('EINVAL');
        expect(code(() => vm.sharedView({ gpa: 0.5, size: 1 }))).toBe('EINVAL');
        expect(code(() => vm.sharedView({ gpa: (1n << 64n) - 1n, size: 2 }))).toBe('EINVAL');
        expect(code(() => vm.sharedView({ gpa: B + 16n * BigInt(P) - 1n, size: 2 }))).toBe('EFAULT');
        expect(code(() => vm.sharedView({ gpa: 0x4000_0000, size: 1 }))).toBe('EFAULT');
        const v = vm.sharedView({ gpa: A, size: P });
        expect(code(() => v.read(P - 1, 2))).toBe('EFAULT'); // past the view's end (neutral host-view rule)
        expect(code(() => v.read(-1, 1))).toBe('EINVAL');
        v.unmap();
        expect(code(() => v.read(0, 1))).toBe('EFAULT');
        // Ending with the binding needs a backend that can remove one (not ACK: no 'unbind').
        if (!vm.capabilities.has('unbind')) return;
        const w = vm.sharedView({ gpa: B, size: P });
        vm.bindings()
          .find((b) => b.gpa === B)!
          .unbind();
        expect(code(() => w.read(0, 1))).toBe('EFAULT');
      });
    });

    it('Hypervisor.close() ends every shared view still mapped', () => {
      const h = target.create();
      const vm = h.createVm();
      twoBindings(vm);
      const v = vm.sharedView({ gpa: A, size: 2 * P });
      v.write(0, Uint8Array.of(1));
      h.close();
      expect(code(() => v.read(0, 1))).toBe('EFAULT');
      expect(() => v.unmap()).not.toThrow();
    });

    it('retryMmio: re-executes an MMIO access once memory is bound there where the backend offers it, else EOPNOTSUPP and the access completes as MMIO', () => {
      withVm(target, (vm) => {
        twoBindings(vm);
        const far = 0x4000_0000n; // nothing bound here yet
        const vcpu = vm.createVcpu();
        loadGuest(vm, vcpu, buildGuestImage(new GuestProgram().store(far, Uint8Array.of(0x5a)).loadReport(far, 1, 0x11).hlt()));
        const first = vcpu.run();
        expect(first).toMatchObject({ kind: 'mmio', gpa: far, write: true });
        if (!vcpu.retriesMmio) {
          expect(code(() => vcpu.retryMmio())).toBe('EOPNOTSUPP');
          return;
        }
        const mappable = vm.capabilities.has('host-map') && vm.capabilities.has('initially-shared');
        const mem = vm.createGuestMemory({ size: P, hostMappable: mappable, initiallyShared: mappable });
        vm.bind({ memory: mem, offset: 0, gpa: far, size: P, access: 'shared' });
        vcpu.retryMmio();
        // The store was re-executed into the new memory, and the load reads it back.
        expect(vcpu.run()).toMatchObject({ kind: 'io', port: 0x11, data: Uint8Array.of(0x5a) });
        expect(vm.sharedView({ gpa: far, size: 1 }).read(0, 1)).toEqual(Uint8Array.of(0x5a));
      });
    });

    it('private memory is never readable through sharedView: the guest writes private data, the host sees zero or is refused', () => {
      const h = target.create();
      try {
        if (!h.capabilities.has('private-memory')) return;
        const vm = h.createVm({ confidential: true });
        if (!vm.capabilities.has('private-memory') || !vm.capabilities.has('guest-access')) return;
        const mem = vm.createGuestMemory({ size: 4 * P });
        vm.bind({ memory: mem, offset: 0, gpa: A, size: 4 * P, access: 'private' });
        vm.guestWrite(A, new Uint8Array(4 * P).fill(0xee));
        let seen: Uint8Array | undefined;
        const c = code(() => (seen = vm.sharedView({ gpa: A, size: 4 * P }).read(0, 4 * P)));
        if (c === undefined) expect(seen!.includes(0xee)).toBe(false);
        else expect(['EACCES', 'EFAULT', 'SIGBUS']).toContain(c);
      } finally {
        h.close();
      }
    });

    it('destroying the VM closes its vCPUs', () => {
      withVm(target, (vm) => {
        const v = vm.createVcpu();
        vm.destroy();
        expect(v.closed).toBe(true);
        expect(code(() => vm.createVcpu())).toBe('EBADF');
      });
    });
  });
}
