/**
 * The backend-neutral conformance suite: one test body per behaviour of the neutral API, run by
 * every backend package through a factory (crosvm's closure pattern, Fluid's test drivers).
 * A new backend is done when it passes.
 *
 * Usage, in a backend's test file:
 * ```ts
 * import { defineConformanceSuite } from '@guestmem/conformance';
 * defineConformanceSuite({ name: 'my-backend', create: () => new MyHypervisor() });
 * ```
 * Behaviours that need a capability run only when `capabilities.has(...)` says so; when it says
 * no, the suite checks that the method fails with `EOPNOTSUPP` instead.
 */
import { describe, expect, it } from 'vitest';
import { GuestMemError, type CapabilityName, type GuestMemory, type Hypervisor, type MemoryAccess, type Vm } from '@guestmem/core';

/** How a backend plugs into the suite. */
export interface ConformanceTarget {
  /** Shown in test names. */
  name: string;
  /** A fresh hypervisor per test (closed by the suite). */
  create: () => Hypervisor;
  /** When set, the whole suite is skipped with this reason printed (e.g. no /dev/kvm). */
  skip?: string | false;
}

const P = 4096;
const MiB = 1024 * 1024;
const ALL_CAPS: CapabilityName[] = [
  'guest-memory',
  'host-map',
  'initially-shared',
  'private-memory',
  'convert-in-place',
  'convert-remap',
  'huge-pages',
  'punch-hole',
  'guest-access',
  'poison-injection',
];

/** Runs `fn` and returns the GuestMemError it throws (fails the test when it throws nothing or something else). */
export function expectGuestMemError(fn: () => unknown): GuestMemError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected a GuestMemError').toBeInstanceOf(GuestMemError);
  return thrown as GuestMemError;
}

export function defineConformanceSuite(target: ConformanceTarget): void {
  const suite = target.skip ? describe.skip : describe;
  if (target.skip) console.warn(`[conformance] ${target.name}: skipped: ${target.skip}`);

  suite(`conformance: ${target.name}`, () => {
    /** Runs `body` with a fresh hypervisor and VM, always cleaning up. */
    function withVm(body: (h: Hypervisor, vm: Vm) => void, opts?: { confidential?: boolean }): void {
      const h = target.create();
      let vm: Vm | undefined;
      try {
        vm = h.createVm(opts);
        body(h, vm);
      } finally {
        if (vm && !vm.destroyed) vm.destroy();
        h.close();
      }
    }
    /** Memory the host can map and that starts shared, when the backend offers that. */
    function hostMemory(vm: Vm, size: number): GuestMemory | undefined {
      const c = vm.capabilities;
      if (!c.has('host-map') || !c.has('initially-shared')) return undefined;
      return vm.createGuestMemory({ size, hostMappable: true, initiallyShared: true });
    }

    it('describes itself with an explicit capability query', () => {
      const h = target.create();
      try {
        const caps = h.capabilities;
        expect(caps.backend).toBe(h.id);
        expect(caps.has('guest-memory')).toBe(true);
        for (const c of ALL_CAPS) expect(caps.has(c)).toBe(caps.list().includes(c));
        expect(caps.pageSizes).toContain(4096);
        expect(caps.maxGuestMemorySize).toBeGreaterThan(0n);
      } finally {
        h.close();
      }
    });

    it('creates guest memory of the asked size and rejects bad sizes with EINVAL, changing nothing', () => {
      withVm((h, vm) => {
        const m = vm.createGuestMemory({ size: 4 * P });
        expect(m.size).toBe(BigInt(4 * P));
        expect(m.closed).toBe(false);
        for (const size of [0, 1, P + 1]) {
          const e = expectGuestMemError(() => vm.createGuestMemory({ size }));
          expect(e.code).toBe('EINVAL');
          expect(e.backend.startsWith(h.id.split('-')[0]!)).toBe(true);
        }
        m.close();
        expect(m.closed).toBe(true);
        m.close(); // idempotent
      });
    });

    it('allocates and punches inside the memory; out-of-range allocation fails with EINVAL', () => {
      withVm((_h, vm) => {
        const m = vm.createGuestMemory({ size: 16 * P });
        m.allocate(0, 16 * P);
        m.punchHole(4 * P, 4 * P);
        expect(expectGuestMemError(() => m.allocate(16 * P, P)).code).toBe('EINVAL');
        expect(expectGuestMemError(() => m.allocate(P, 0)).code).toBe('EINVAL');
        m.close();
      });
    });

    it('host view: zero on first use, writes visible, zero again after punch (invariants 1 and 2)', () => {
      withVm((_h, vm) => {
        const m = hostMemory(vm, 4 * P);
        if (!m) return;
        const v = m.map();
        expect(v.read(0, 4 * P).every((b) => b === 0)).toBe(true);
        v.fill(0, 4 * P, 0xaa);
        expect(v.read(P, 4).every((b) => b === 0xaa)).toBe(true);
        m.punchHole(0, P);
        expect(v.read(0, P).every((b) => b === 0)).toBe(true);
        expect(v.read(P, P).every((b) => b === 0xaa)).toBe(true);
        v.unmap();
        m.close();
      });
    });

    it('one memory object never shows another one\'s data', () => {
      withVm((_h, vm) => {
        const a = hostMemory(vm, 8 * P);
        if (!a) return;
        const va = a.map();
        va.fill(0, 8 * P, 0x5c);
        a.punchHole(0, 8 * P);
        va.unmap();
        a.close();
        const b = hostMemory(vm, 8 * P)!;
        const vb = b.map();
        expect(vb.read(0, 8 * P).every((x) => x === 0)).toBe(true);
        vb.unmap();
        b.close();
      });
    });

    it('host-map is refused with EOPNOTSUPP-or-kernel-errno when the capability or the memory does not allow it', () => {
      withVm((_h, vm) => {
        const m = vm.createGuestMemory({ size: 4 * P });
        if (!vm.capabilities.has('host-map')) {
          expect(expectGuestMemError(() => m.map()).code).toBe('EOPNOTSUPP');
        } else {
          // Memory created without hostMappable must not give the host a view.
          expectGuestMemError(() => m.map());
        }
        m.close();
      });
    });

    it('binds memory at a guest physical range; an overlapping bind fails and changes nothing; unbind keeps data', () => {
      withVm((_h, vm) => {
        const shared = hostMemory(vm, 2 * MiB);
        const m = shared ?? vm.createGuestMemory({ size: 2 * MiB });
        const b = vm.bind({ memory: m, offset: 0, gpa: 0x1_0000_0000n, size: MiB, access: 'shared' });
        expect(b.active).toBe(true);
        expect(b.gpa).toBe(0x1_0000_0000n);
        expect(vm.bindings()).toEqual([b]);
        expectGuestMemError(() => vm.bind({ memory: m, offset: MiB, gpa: 0x1_0008_0000n, size: MiB, access: 'shared' }));
        expect(vm.bindings()).toEqual([b]);
        let view;
        if (shared) {
          view = shared.map({ length: MiB });
          view.fill(0, 64, 0x42);
        }
        b.unbind();
        expect(b.active).toBe(false);
        expect(vm.bindings()).toEqual([]);
        const again = vm.bind({ memory: m, offset: 0, gpa: 0x2_0000_0000n, size: MiB, access: 'shared' });
        if (view) {
          expect(view.read(0, 64).every((x) => x === 0x42)).toBe(true);
          view.unmap();
        }
        again.unbind();
        m.close();
      });
    });

    it('bind rejects unaligned and out-of-range requests with a GuestMemError', () => {
      withVm((_h, vm) => {
        const m = vm.createGuestMemory({ size: 4 * P });
        expectGuestMemError(() => vm.bind({ memory: m, offset: 1, gpa: 0, size: P, access: 'shared' }));
        expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 1, size: P, access: 'shared' }));
        expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 0, size: 8 * P, access: 'shared' }));
        expect(vm.bindings()).toEqual([]);
        m.close();
      });
    });

    it('guest access: zero on first use, guest writes persist, punched pages read zero; without the capability EOPNOTSUPP', () => {
      withVm((_h, vm) => {
        const m = hostMemory(vm, 4 * P) ?? vm.createGuestMemory({ size: 4 * P });
        const gpa = 0x4000_0000n;
        const b = vm.bind({ memory: m, offset: 0, gpa, size: 4 * P, access: 'shared' });
        if (!vm.capabilities.has('guest-access')) {
          expect(expectGuestMemError(() => vm.guestRead(gpa, 4)).code).toBe('EOPNOTSUPP');
          expect(expectGuestMemError(() => vm.guestWrite(gpa, new Uint8Array(4))).code).toBe('EOPNOTSUPP');
        } else {
          expect(vm.guestRead(gpa, 4 * P).every((x) => x === 0)).toBe(true);
          vm.guestWrite(gpa + BigInt(P), new Uint8Array([1, 2, 3, 4]));
          expect(vm.guestRead(gpa + BigInt(P), 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
          m.punchHole(P, P);
          expect(vm.guestRead(gpa + BigInt(P), 4)).toEqual(new Uint8Array(4));
          expectGuestMemError(() => vm.guestRead(0x7000_0000n, 4));
        }
        b.unbind();
        m.close();
      });
    });

    it('punchHole frees what the guest sees, whatever backs the shared side (invariant 2)', () => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      for (const conf of confidential ? [false, true] : [false]) {
        withVm((_h, vm) => {
          if (!vm.capabilities.has('guest-access')) return;
          // Memory the host cannot map: the shared side may live elsewhere (KVM: host memory at
          // userspace_addr), and punching the memory object must free that too.
          const m = vm.createGuestMemory({ size: 4 * P });
          const gpa = 0xb000_0000n;
          const b = vm.bind({ memory: m, offset: 0, gpa, size: 4 * P, access: 'shared' });
          vm.guestWrite(gpa + BigInt(P), new Uint8Array([5, 6, 7, 8]));
          expect(vm.guestRead(gpa + BigInt(P), 4)).toEqual(new Uint8Array([5, 6, 7, 8]));
          m.punchHole(P, P);
          expect(vm.guestRead(gpa + BigInt(P), 4)).toEqual(new Uint8Array(4));
          b.unbind();
          m.close();
        }, { confidential: conf });
      }
    });

    it('convert: changes the shared/private state with listeners, or fails with EOPNOTSUPP and changes nothing', () => {
      const probe = target.create();
      const caps = probe.capabilities;
      probe.close();
      const confidential = caps.has('private-memory');
      withVm((_h, vm) => {
        const m = vm.createGuestMemory({ size: 4 * P });
        const gpa = 0x8000_0000n;
        const b = vm.bind({ memory: m, offset: 0, gpa, size: 4 * P, access: 'shared' });
        const events: Array<{ first: number; end: number; to: MemoryAccess }> = [];
        const off = vm.memoryState.onChange((c) => events.push({ first: c.first, end: c.end, to: c.to }));
        const gfn = Number(gpa / 4096n);
        const before = vm.memoryState.get(gfn);
        const canConvert = vm.capabilities.has('convert-in-place') || vm.capabilities.has('convert-remap');
        const to: MemoryAccess = before === 'shared' ? 'private' : 'shared';
        if (!canConvert) {
          expect(expectGuestMemError(() => vm.convert({ gpa, size: P }, to)).code).toBe('EOPNOTSUPP');
          expect(vm.memoryState.get(gfn)).toBe(before);
          expect(events).toEqual([]);
        } else {
          vm.convert({ gpa, size: P }, to);
          expect(vm.memoryState.get(gfn)).toBe(to);
          expect(vm.memoryState.get(gfn + 1)).toBe(before);
          expect(events).toEqual([{ first: gfn, end: gfn + 1, to }]);
        }
        off();
        if (b.active) b.unbind();
        m.close();
      }, { confidential });
    });

    it('the host never reads private memory', () => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      withVm((_h, vm) => {
        if (!vm.capabilities.has('host-map')) return;
        const refused = (m: GuestMemory, length: number): void => {
          let view;
          try {
            view = m.map({ length });
          } catch (e) {
            expect(e).toBeInstanceOf(GuestMemError);
            return;
          }
          try {
            const err = expectGuestMemError(() => view.read(0, 1));
            expect(['SIGBUS', 'EPERM', 'EACCES', 'EFAULT']).toContain(err.code);
          } finally {
            view.unmap();
          }
        };
        if (vm.capabilities.has('private-memory') && (vm.capabilities.has('convert-in-place') || vm.capabilities.has('convert-remap'))) {
          // Private by binding: bind private (guest touches it where it can), then the host tries.
          const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true, initiallyShared: vm.capabilities.has('initially-shared') });
          const b = vm.bind({ memory: m, offset: 0, gpa: 0x9000_0000n, size: 2 * P, access: 'private' });
          if (vm.capabilities.has('guest-access')) vm.guestWrite(0x9000_0000n, new Uint8Array([7, 7, 7]));
          refused(m, P);
          b.unbind();
          m.close();
        } else {
          // Private by creation: memory that is not initially shared belongs to the guest.
          const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true });
          refused(m, 2 * P);
          m.close();
        }
      }, { confidential });
    });

    it('poison injection: host SIGBUS, guest EHWPOISON, cleared by punch; EOPNOTSUPP without the capability', () => {
      withVm((_h, vm) => {
        const shared = hostMemory(vm, 4 * P);
        const m = shared ?? vm.createGuestMemory({ size: 4 * P });
        if (!vm.capabilities.has('poison-injection')) {
          expect(expectGuestMemError(() => m.markPoisoned(P)).code).toBe('EOPNOTSUPP');
          m.close();
          return;
        }
        const gpa = 0xa000_0000n;
        const b = vm.bind({ memory: m, offset: 0, gpa, size: 4 * P, access: 'shared' });
        m.markPoisoned(P);
        if (shared) {
          const v = shared.map();
          expect(expectGuestMemError(() => v.read(P, 1)).code).toBe('SIGBUS');
          expect(v.read(0, 1)).toEqual(new Uint8Array(1));
          v.unmap();
        }
        if (vm.capabilities.has('guest-access') && shared) {
          expect(expectGuestMemError(() => vm.guestRead(gpa + BigInt(P), 1)).code).toMatch(/EHWPOISON|SIGBUS/);
        }
        m.punchHole(P, P);
        if (shared) {
          const v = shared.map();
          expect(v.read(P, 4)).toEqual(new Uint8Array(4));
          v.unmap();
        }
        b.unbind();
        m.close();
      });
    });

    it('capability-gated options fail with EOPNOTSUPP when the capability is absent', () => {
      withVm((_h, vm) => {
        if (!vm.capabilities.has('huge-pages')) {
          expect(expectGuestMemError(() => vm.createGuestMemory({ size: 2 * MiB, hugePages: true })).code).toBe('EOPNOTSUPP');
        }
        if (!vm.capabilities.has('initially-shared')) {
          expect(expectGuestMemError(() => vm.createGuestMemory({ size: P, initiallyShared: true })).code).toBe('EOPNOTSUPP');
        }
      });
    });

    it('destroy unbinds everything and later calls fail', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const m = vm.createGuestMemory({ size: 2 * P });
        const b = vm.bind({ memory: m, offset: 0, gpa: 0x10_0000n, size: 2 * P, access: 'shared' });
        vm.destroy();
        expect(vm.destroyed).toBe(true);
        expect(b.active).toBe(false);
        expect(vm.bindings()).toEqual([]);
        expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 0x20_0000n, size: P, access: 'shared' }));
        vm.destroy(); // idempotent
        m.close();
      } finally {
        h.close();
      }
    });
  });
}
