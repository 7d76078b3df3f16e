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
import {
  GuestMemError,
  type CapabilityName,
  type GuestMemory,
  type HostView,
  type Hypervisor,
  type MemoryAccess,
  type MemoryBinding,
  type Vm,
} from '@guestmem/core';
import { defineErrorBackendSuite } from './error-backend.js';
import { defineStatsSuite } from './stats.js';

/** How a backend plugs into the suite. */
export interface ConformanceTarget {
  /** Shown in test names. */
  name: string;
  /** A fresh hypervisor per test (closed by the suite). */
  create: () => Hypervisor;
  /** When set, the whole suite is skipped with this reason printed (e.g. no /dev/kvm). */
  skip?: string | false;
  /**
   * For backends that can refuse a conversion: a fresh hypervisor whose guest keeps the private
   * pages it touched, so converting them fails (Gunyah: a lent page the guest locked refuses reclaim
   * with EBUSY). The suite checks that a refused conversion changes nothing. Omit it when the backend
   * cannot refuse a conversion (KVM converts attributes in place).
   */
  createRefusing?: () => Hypervisor;
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
  'unbind',
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

/**
 * Unbinds `b` where the backend can ('unbind'); elsewhere checks that `unbind()` fails with
 * EOPNOTSUPP and leaves the binding in place (it goes with the VM).
 */
function unbindOrKeep(vm: Vm, b: MemoryBinding): void {
  if (vm.capabilities.has('unbind')) return b.unbind();
  const before = vm.bindings();
  expect(expectGuestMemError(() => b.unbind()).code).toBe('EOPNOTSUPP');
  expect(b.active).toBe(true);
  expect(vm.bindings()).toEqual(before);
}

export function defineConformanceSuite(target: ConformanceTarget): void {
  const suite = target.skip ? describe.skip : describe;
  if (target.skip) console.warn(`[conformance] ${target.name}: skipped: ${target.skip}`);
  defineStatsSuite(target);
  defineErrorBackendSuite(target);

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
        // Guest memory is a guest-memory file, or else ordinary host memory the host can map.
        expect(caps.has('guest-memory') || caps.has('host-map')).toBe(true);
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
          expect(e.backend).toBe(h.id);
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
        if (vm.capabilities.has('punch-hole')) m.punchHole(4 * P, 4 * P);
        else expect(expectGuestMemError(() => m.punchHole(4 * P, 4 * P)).code).toBe('EOPNOTSUPP');
        expect(expectGuestMemError(() => m.allocate(16 * P, P)).code).toBe('EINVAL');
        expect(expectGuestMemError(() => m.allocate(P, 0)).code).toBe('EINVAL');
        m.close();
      });
    });

    it('host view: zero on first use, writes visible, zero again after punch (invariants 1 and 2)', (ctx) => {
      withVm((_h, vm) => {
        const m = hostMemory(vm, 4 * P);
        if (!m) return ctx.skip('needs host-map and initially-shared memory');
        const v = m.map();
        expect(v.read(0, 4 * P).every((b) => b === 0)).toBe(true);
        v.fill(0, 4 * P, 0xaa);
        expect(v.read(P, 4).every((b) => b === 0xaa)).toBe(true);
        if (vm.capabilities.has('punch-hole')) {
          m.punchHole(0, P);
          expect(v.read(0, P).every((b) => b === 0)).toBe(true);
          expect(v.read(P, P).every((b) => b === 0xaa)).toBe(true);
        }
        v.unmap();
        m.close();
      });
    });

    it("one memory object never shows another one's data", (ctx) => {
      withVm((_h, vm) => {
        const a = hostMemory(vm, 8 * P);
        if (!a) return ctx.skip('needs host-map and initially-shared memory');
        // Released with its data in place (no punch): its memory goes back to the allocator and
        // the next object, likely given the same folios, must read zero (invariant 2, recycle).
        const va = a.map();
        va.fill(0, 8 * P, 0x5c);
        va.unmap();
        a.close();
        const b = hostMemory(vm, 8 * P)!;
        const vb = b.map();
        expect(vb.read(0, 8 * P).every((x) => x === 0)).toBe(true);
        // And a live neighbour's writes never show up either.
        const c = hostMemory(vm, 8 * P)!;
        const vc = c.map();
        vc.fill(0, 8 * P, 0x3c);
        expect(vb.read(0, 8 * P).every((x) => x === 0)).toBe(true);
        vc.unmap();
        c.close();
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
          // Memory created without hostMappable must not give the host a view (KVM's ENODEV).
          expect(expectGuestMemError(() => m.map()).code).toBe('ENODEV');
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
        expect(expectGuestMemError(() => vm.bind({ memory: m, offset: MiB, gpa: 0x1_0008_0000n, size: MiB, access: 'shared' })).code).toBe(
          'EEXIST',
        );
        expect(vm.bindings()).toEqual([b]);
        let view;
        if (shared) {
          view = shared.map({ length: MiB });
          view.fill(0, 64, 0x42);
        }
        if (!vm.capabilities.has('unbind')) {
          unbindOrKeep(vm, b);
          if (view) {
            expect(view.read(0, 64).every((x) => x === 0x42)).toBe(true);
            view.unmap();
          }
          return;
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
        expect(expectGuestMemError(() => vm.bind({ memory: m, offset: 1, gpa: 0, size: P, access: 'shared' })).code).toBe('EINVAL');
        expect(expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 1, size: P, access: 'shared' })).code).toBe('EINVAL');
        expect(expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 0, size: 8 * P, access: 'shared' })).code).toBe('EINVAL');
        expect(vm.bindings()).toEqual([]);
        m.close();
      });
    });

    it('bind rejects a negative or fractional gpa, an unaligned offset and size 0 with EINVAL, changing nothing', () => {
      withVm((_h, vm) => {
        const m = vm.createGuestMemory({ size: 4 * P });
        const other = vm.bind({ memory: m, offset: 3 * P, gpa: 0x3000_0000n, size: P, access: 'shared' });
        const before = vm.bindings();
        const gpa = 0x2000_0000n;
        const bad: Array<[string, Parameters<Vm['bind']>[0]]> = [
          ['negative gpa', { memory: m, offset: 0, gpa: -P, size: P, access: 'shared' }],
          ['fractional gpa', { memory: m, offset: 0, gpa: 0x2000_0000 + 0.5, size: P, access: 'shared' }],
          ['unaligned offset', { memory: m, offset: 512, gpa, size: P, access: 'shared' }],
          ['size 0', { memory: m, offset: 0, gpa, size: 0, access: 'shared' }],
          ['gpa + size past 2^64', { memory: m, offset: 0, gpa: (1n << 64n) - BigInt(P), size: 2 * P, access: 'shared' }],
        ];
        for (const [what, opts] of bad) {
          expect(expectGuestMemError(() => vm.bind(opts)).code, what).toBe('EINVAL');
          expect(vm.bindings(), what).toEqual(before);
        }
        // Nothing of the failed calls is left behind: the same range binds.
        const b = vm.bind({ memory: m, offset: 0, gpa, size: P, access: 'shared' });
        expect(vm.bindings()).toEqual([b, other]);
        unbindOrKeep(vm, b);
        unbindOrKeep(vm, other);
        m.close();
      });
    });

    it('edge (a): a binding or conversion must end below 2^64; one ending exactly at 2^64 is EINVAL and changes nothing', () => {
      withVm((h, vm) => {
        const m = vm.createGuestMemory({ size: 2 * P });
        const top = 1n << 64n;
        for (const [gpa, size] of [
          [top - BigInt(P), P],
          [top - BigInt(2 * P), 2 * P],
        ] as const) {
          const e = expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa, size, access: 'shared' }));
          expect([e.code, e.backend], `bind at 0x${gpa.toString(16)}`).toEqual(['EINVAL', h.id]);
          expect(vm.bindings()).toEqual([]);
        }
        if (vm.capabilities.has('convert-in-place') || vm.capabilities.has('convert-remap')) {
          const gfn = Number((top - BigInt(P)) / 4096n);
          const before = vm.memoryState.get(gfn);
          const e = expectGuestMemError(() => vm.convert({ gpa: top - BigInt(P), size: P }, before === 'shared' ? 'private' : 'shared'));
          expect([e.code, e.backend]).toEqual(['EINVAL', h.id]);
          expect(vm.memoryState.get(gfn)).toBe(before);
        }
        m.close();
      });
    });

    it('edge (e): a fractional, negative, NaN, infinite or out-of-range number is EINVAL showing the value as given, changing nothing', () => {
      withVm((h, vm) => {
        const m = vm.createGuestMemory({ size: 4 * P, hostMappable: vm.capabilities.has('host-map') });
        const other = vm.bind({ memory: m, offset: 3 * P, gpa: 0x3000_0000n, size: P, access: 'shared' });
        const before = vm.bindings().map((b) => [b.gpa, b.size, b.offset]);
        const bad: Array<bigint | number> = [
          -P,
          -1,
          -4096n,
          Number.NaN,
          0.5,
          P + 0.5,
          Number.POSITIVE_INFINITY,
          2 ** 53,
          1n << 64n,
          1n << 80n,
        ];
        const canConvert = vm.capabilities.has('convert-in-place') || vm.capabilities.has('convert-remap');
        const calls: Array<[string, (v: bigint | number) => unknown]> = [
          ['bind gpa', (v) => vm.bind({ memory: m, offset: 0, gpa: v, size: P, access: 'shared' })],
          ['bind offset', (v) => vm.bind({ memory: m, offset: v, gpa: 0x2000_0000n, size: P, access: 'shared' })],
          ['bind size', (v) => vm.bind({ memory: m, offset: 0, gpa: 0x2000_0000n, size: v, access: 'shared' })],
          ['allocate offset', (v) => m.allocate(v, P)],
          ['allocate len', (v) => m.allocate(0, v)],
          ['punchHole offset', (v) => m.punchHole(v, P)],
          ['punchHole len', (v) => m.punchHole(0, v)],
          ['createGuestMemory size', (v) => vm.createGuestMemory({ size: v })],
        ];
        if (canConvert) {
          calls.push(
            ['convert gpa', (v) => vm.convert({ gpa: v, size: P }, 'shared')],
            ['convert size', (v) => vm.convert({ gpa: 0x4000_0000n, size: v }, 'shared')],
          );
        }
        if (vm.capabilities.has('host-map')) calls.push(['map offset', (v) => m.map({ offset: v, length: P })]);
        if (vm.capabilities.has('guest-access')) {
          calls.push(
            ['guestRead gpa', (v) => vm.guestRead(v, 1)],
            ['guestWrite gpa', (v) => vm.guestWrite(v, new Uint8Array(1))],
            ['guestRead len', (v) => vm.guestRead(0x3000_0000n, v as number)],
          );
        }
        for (const [what, call] of calls) {
          for (const v of bad) {
            const e = expectGuestMemError(() => call(v));
            const label = `${what} = ${typeof v === 'bigint' ? `${v}n` : v}`;
            expect(e.code, `${label}: ${e.message}`).toBe('EINVAL');
            expect(e.backend, label).toBe(h.id);
            expect(e.message, label).toContain(String(v));
            expect(e.message, label).not.toContain('18446744073709547520');
            expect(JSON.parse(JSON.stringify(e)), label).toMatchObject({ code: 'EINVAL', backend: h.id });
            expect(
              vm.bindings().map((b) => [b.gpa, b.size, b.offset]),
              label,
            ).toEqual(before);
          }
        }
        if (vm.capabilities.has('host-map')) {
          for (const [offset, length] of [
            [1n << 64n, P],
            [4 * P, P],
            [0, 5 * P],
            [0, 0],
            [0, -P],
            [0, 1.5],
            [0, Number.NaN],
          ] as const) {
            const e = expectGuestMemError(() => m.map({ offset, length }));
            expect([e.code, e.backend], `map at ${offset} length ${length}`).toEqual(['EINVAL', h.id]);
          }
        }
        unbindOrKeep(vm, other);
        m.close();
      });
    });

    it('bind: memory of another VM is EINVAL, closed memory is EBADF, both changing nothing', () => {
      withVm((h, vm) => {
        const vm2 = h.createVm();
        try {
          const foreign = vm2.createGuestMemory({ size: 2 * P });
          expect(
            expectGuestMemError(() => vm.bind({ memory: foreign, offset: 0, gpa: 0x1000_0000n, size: P, access: 'shared' })).code,
          ).toBe('EINVAL');
          expect(vm.bindings()).toEqual([]);
          expect(vm2.bindings()).toEqual([]);
          foreign.close();
          const m = vm.createGuestMemory({ size: 2 * P });
          m.close();
          expect(expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 0x1000_0000n, size: P, access: 'shared' })).code).toBe(
            'EBADF',
          );
          expect(vm.bindings()).toEqual([]);
        } finally {
          vm2.destroy();
        }
      });
    });

    it("bind's default access is 'private' on a VM with private memory, else 'shared'", () => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      for (const conf of confidential ? [false, true] : [false]) {
        withVm(
          (_h, vm) => {
            const m = vm.createGuestMemory({ size: 2 * P });
            const gpa = 0x5000_0000n;
            const gfn = Number(gpa / 4096n);
            const b = vm.bind({ memory: m, offset: 0, gpa, size: 2 * P });
            const expected: MemoryAccess = vm.capabilities.has('private-memory') ? 'private' : 'shared';
            expect(vm.memoryState.get(gfn)).toBe(expected);
            expect(vm.memoryState.get(gfn + 1)).toBe(expected);
            unbindOrKeep(vm, b);
            m.close();
          },
          { confidential: conf },
        );
      }
    });

    it('a binding outlives its memory handle: after memory.close() unbind works, and a new memory binds and unbinds', () => {
      withVm((_h, vm) => {
        const guest = vm.capabilities.has('guest-access');
        const a = vm.createGuestMemory({ size: 4 * P });
        const ga = 0x1000_0000n;
        const ba = vm.bind({ memory: a, offset: 0, gpa: ga, size: 4 * P, access: 'shared' });
        if (guest) vm.guestWrite(ga, new Uint8Array([0xaa]));
        a.close();
        expect(a.closed).toBe(true);
        expect(ba.active).toBe(true);
        expect(vm.bindings()).toEqual([ba]);
        if (!vm.capabilities.has('unbind')) {
          // The binding keeps working after its handle is closed; it goes with the VM.
          unbindOrKeep(vm, ba);
          if (guest) expect(vm.guestRead(ga, 1)).toEqual(new Uint8Array([0xaa]));
          return;
        }
        // A memory created now may get the closed one's id (fd number) back.
        const c = vm.createGuestMemory({ size: 4 * P });
        const gc = 0x2000_0000n;
        const bc = vm.bind({ memory: c, offset: 0, gpa: gc, size: 4 * P, access: 'shared' });
        if (guest) vm.guestWrite(gc, new Uint8Array([0xcc]));
        ba.unbind();
        expect(ba.active).toBe(false);
        expect(bc.active).toBe(true);
        expect(vm.bindings()).toEqual([bc]);
        if (guest) {
          expect(vm.guestRead(gc, 1)).toEqual(new Uint8Array([0xcc]));
          expectGuestMemError(() => vm.guestRead(ga, 1));
        }
        ba.unbind(); // idempotent
        bc.unbind();
        expect(vm.bindings()).toEqual([]);
        c.close();
        // Once every binding is gone, nothing pins the handles: a third memory binds and unbinds.
        const d = vm.createGuestMemory({ size: P });
        vm.bind({ memory: d, offset: 0, gpa: ga, size: P, access: 'shared' }).unbind();
        d.close();
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
          if (vm.capabilities.has('punch-hole')) {
            m.punchHole(P, P);
            expect(vm.guestRead(gpa + BigInt(P), 4)).toEqual(new Uint8Array(4));
          }
          expect(expectGuestMemError(() => vm.guestRead(0x7000_0000n, 4)).code).toBe('EFAULT');
        }
        unbindOrKeep(vm, b);
        m.close();
      });
    });

    it('punchHole frees what the guest sees, whatever backs the shared side (invariant 2)', (ctx) => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      for (const conf of confidential ? [false, true] : [false]) {
        withVm(
          (_h, vm) => {
            if (!vm.capabilities.has('guest-access')) return ctx.skip("needs 'guest-access'");
            if (!vm.capabilities.has('punch-hole')) return ctx.skip("needs 'punch-hole'");
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
          },
          { confidential: conf },
        );
      }
    });

    it('convert: changes the shared/private state with listeners, or fails with EOPNOTSUPP and changes nothing', () => {
      const probe = target.create();
      const caps = probe.capabilities;
      probe.close();
      const confidential = caps.has('private-memory');
      withVm(
        (_h, vm) => {
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
          if (b.active) unbindOrKeep(vm, b);
          m.close();
        },
        { confidential },
      );
    });

    it('convert of unbound GPAs only changes memoryState; a partly bound range converts its bound part', (ctx) => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      withVm(
        (_h, vm) => {
          if (!vm.capabilities.has('convert-in-place') && !vm.capabilities.has('convert-remap'))
            return ctx.skip('needs a conversion capability');
          const gpa = 0xc000_0000n;
          const gfn = Number(gpa / 4096n);
          const to: MemoryAccess = vm.memoryState.get(gfn) === 'shared' ? 'private' : 'shared';
          vm.convert({ gpa, size: 2 * P }, to);
          expect(vm.bindings()).toEqual([]);
          expect(vm.memoryState.get(gfn)).toBe(to);
          expect(vm.memoryState.get(gfn + 1)).toBe(to);
          // Half bound: [gpa+2P, gpa+4P) bound with the other access, [gpa+4P, gpa+6P) not.
          const back: MemoryAccess = to === 'shared' ? 'private' : 'shared';
          const m = vm.createGuestMemory({ size: 2 * P });
          const b = vm.bind({ memory: m, offset: 0, gpa: gpa + BigInt(2 * P), size: 2 * P, access: back });
          vm.convert({ gpa: gpa + BigInt(2 * P), size: 4 * P }, to);
          for (let i = 2; i < 6; i++) expect(vm.memoryState.get(gfn + i)).toBe(to);
          const covered = vm.bindings().reduce((n, x) => n + x.size, 0n);
          expect(covered).toBe(BigInt(2 * P));
          if (vm.capabilities.has('guest-access')) {
            vm.guestWrite(gpa + BigInt(2 * P), new Uint8Array([1]));
            expect(vm.guestRead(gpa + BigInt(2 * P), 1)).toEqual(new Uint8Array([1]));
          }
          for (const x of vm.bindings()) x.unbind();
          expect(b.active).toBe(false);
          m.close();
        },
        { confidential },
      );
    });

    it('converting a middle page of a private binding keeps the data and state of the other pages', (ctx) => {
      const probe = target.create();
      const caps = probe.capabilities;
      probe.close();
      if (!caps.has('private-memory')) return ctx.skip("needs 'private-memory'");
      withVm(
        (_h, vm) => {
          const c = vm.capabilities;
          if (!c.has('private-memory') || !c.has('guest-access') || (!c.has('convert-in-place') && !c.has('convert-remap')))
            return ctx.skip('needs private memory, guest access and conversion');
          const m = vm.createGuestMemory({ size: 4 * P });
          const gpa = 0xd000_0000n;
          const gfn = Number(gpa / 4096n);
          const at = (i: number): bigint => gpa + BigInt(i * P);
          vm.bind({ memory: m, offset: 0, gpa, size: 4 * P, access: 'private' });
          for (let i = 0; i < 4; i++) vm.guestWrite(at(i), new Uint8Array([0x10 + i, 0x20 + i]));
          vm.convert({ gpa: at(1), size: P }, 'shared');
          expect([0, 1, 2, 3].map((i) => vm.memoryState.get(gfn + i))).toEqual(['private', 'shared', 'private', 'private']);
          for (const i of [0, 2, 3]) expect(vm.guestRead(at(i), 2), `page ${i}`).toEqual(new Uint8Array([0x10 + i, 0x20 + i]));
          // The converted page's private data was discarded: the shared page does not show it.
          expect(vm.guestRead(at(1), 2)).toEqual(new Uint8Array(2));
          expect(vm.bindings().reduce((n, x) => n + x.size, 0n)).toBe(BigInt(4 * P));
          // And back: the shared page becomes private again; the others are untouched.
          vm.guestWrite(at(1), new Uint8Array([0x77]));
          vm.convert({ gpa: at(1), size: 2 * P }, 'private');
          expect([0, 1, 2, 3].map((i) => vm.memoryState.get(gfn + i))).toEqual(['private', 'private', 'private', 'private']);
          for (const i of [0, 2, 3]) expect(vm.guestRead(at(i), 2), `page ${i}`).toEqual(new Uint8Array([0x10 + i, 0x20 + i]));
          for (const b of vm.bindings()) b.unbind();
          m.close();
        },
        { confidential: true },
      );
    });

    it('a refused conversion changes nothing (backends that can refuse one)', (ctx) => {
      if (!target.createRefusing) return ctx.skip('the backend offers no refusing configuration');
      const h = target.createRefusing();
      try {
        const vm = h.createVm({ confidential: h.capabilities.has('private-memory') });
        const c = vm.capabilities;
        if (!c.has('private-memory') || !c.has('guest-access') || (!c.has('convert-in-place') && !c.has('convert-remap')))
          return ctx.skip('needs private memory, guest access and conversion');
        const m = vm.createGuestMemory({ size: 4 * P });
        const gpa = 0xe000_0000n;
        const gfn = Number(gpa / 4096n);
        // Two bindings: the guest never touches the first, and holds the pages of the second.
        const b1 = vm.bind({ memory: m, offset: 0, gpa, size: 2 * P, access: 'private' });
        const b2 = vm.bind({ memory: m, offset: 2 * P, gpa: gpa + BigInt(2 * P), size: 2 * P, access: 'private' });
        vm.guestWrite(gpa + BigInt(2 * P), new Uint8Array([0x42]));
        vm.guestWrite(gpa + BigInt(3 * P), new Uint8Array([0x43]));
        const shape = (): unknown => vm.bindings().map((b) => [b.gpa, b.size, b.offset, b.active]);
        const before = shape();
        expectGuestMemError(() => vm.convert({ gpa, size: 4 * P }, 'shared'));
        expect(shape()).toEqual(before);
        expect(b1.active && b2.active).toBe(true);
        for (let i = 0; i < 4; i++) expect(vm.memoryState.get(gfn + i)).toBe('private');
        expect(vm.guestRead(gpa + BigInt(2 * P), 1)).toEqual(new Uint8Array([0x42]));
        expect(vm.guestRead(gpa + BigInt(3 * P), 1)).toEqual(new Uint8Array([0x43]));
        vm.destroy();
        m.close();
      } finally {
        h.close();
      }
    });

    /** Reads every byte of `[at, at+len)` of `view` one by one; each read must fail with a host-access error. */
    function expectNoByteReadable(view: HostView, at: number, len: number, what: string): void {
      for (let i = at; i < at + len; i++) {
        let got: Uint8Array | undefined;
        let err: unknown;
        try {
          got = view.read(i, 1);
        } catch (e) {
          err = e;
        }
        expect(got, `${what}: the host read byte ${i} of a private page`).toBeUndefined();
        expect(err, `${what}: byte ${i}`).toBeInstanceOf(GuestMemError);
        expect(['SIGBUS', 'EFAULT', 'EPERM', 'EACCES'], `${what}: byte ${i}`).toContain((err as GuestMemError).code);
      }
    }

    it('edge (d): memory created without initiallyShared is private: the host reads no byte of it', (ctx) => {
      withVm((_h, vm) => {
        if (!vm.capabilities.has('host-map')) return ctx.skip("needs 'host-map'");
        const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true });
        const view = m.map({ length: 2 * P }); // the capability and hostMappable promise a view
        expectNoByteReadable(view, 0, P, 'unbound, never initially shared');
        expect(expectGuestMemError(() => view.fill(P, P, 0x11)).code).toMatch(/SIGBUS|EFAULT|EPERM|EACCES/);
        view.unmap();
        m.close();
      });
    });

    it('the host never reads private memory: every byte of a private page bound to a guest', (ctx) => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      if (!confidential) return ctx.skip("needs 'private-memory'");
      withVm(
        (_h, vm) => {
          const c = vm.capabilities;
          if (!c.has('host-map') || !c.has('private-memory')) return ctx.skip("needs 'host-map' and 'private-memory' on one VM");
          const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true, initiallyShared: c.has('initially-shared') });
          const gpa = 0x9000_0000n;
          const b = vm.bind({ memory: m, offset: 0, gpa, size: 2 * P, access: 'private' });
          // Page 0 holds guest data (where the guest can run); page 1 is private but never touched.
          if (c.has('guest-access')) vm.guestWrite(gpa, new Uint8Array(P).fill(0x77));
          for (const page of [0, 1]) {
            let view: HostView;
            try {
              view = m.map({ offset: page * P, length: P });
            } catch (e) {
              // Only a page the guest holds may refuse the mapping itself (Gunyah: EBUSY, reclaim refused).
              expect(page, 'an untouched private page must be mappable, then unreadable').toBe(0);
              expect((e as GuestMemError).code).toBe('EBUSY');
              continue;
            }
            expectNoByteReadable(view, 0, P, `private page ${page}`);
            view.unmap();
          }
          unbindOrKeep(vm, b);
          m.close();
        },
        { confidential: true },
      );
    });

    it('edge (b): convert to shared with discard: false never shows the former private bytes; keepContents needs its capability', (ctx) => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      if (!confidential) return ctx.skip("needs 'private-memory'");
      withVm(
        (_h, vm) => {
          const c = vm.capabilities;
          if (!c.has('guest-access') || (!c.has('convert-in-place') && !c.has('convert-remap')))
            return ctx.skip('needs guest access and conversion');
          const mappable = c.has('host-map');
          const m = vm.createGuestMemory({ size: 2 * P, hostMappable: mappable });
          const gpa = 0x6000_0000n;
          const gfn = Number(gpa / 4096n);
          vm.bind({ memory: m, offset: 0, gpa, size: 2 * P, access: 'private' });
          const secret = new Uint8Array(64).fill(0xa5);
          vm.guestWrite(gpa, secret);
          vm.guestWrite(gpa + BigInt(P), secret);
          vm.convert({ gpa, size: P }, 'shared', { discard: false });
          expect(vm.memoryState.get(gfn)).toBe('shared');
          expect(
            vm.guestRead(gpa, 64).some((x) => x === 0xa5),
            'the guest sees former private bytes as shared',
          ).toBe(false);
          if (mappable) {
            try {
              const v = m.map({ offset: 0, length: P });
              try {
                const r = v.read(0, 64);
                expect(
                  r.some((x) => x === 0xa5),
                  'the host sees former private bytes',
                ).toBe(false);
              } finally {
                v.unmap();
              }
            } catch (e) {
              expect(e).toBeInstanceOf(GuestMemError);
            }
          }
          const keep = (): void => vm.convert({ gpa: gpa + BigInt(P), size: P }, 'shared', { keepContents: true });
          if (c.has('convert-keeps-contents')) {
            keep();
            expect(vm.memoryState.get(gfn + 1)).toBe('shared');
            expect(vm.guestRead(gpa + BigInt(P), 64)).toEqual(secret);
            if (mappable) {
              const v = m.map({ offset: P, length: P });
              expect(v.read(0, 64)).toEqual(secret);
              v.unmap();
            }
          } else {
            expect(expectGuestMemError(keep).code).toBe('EOPNOTSUPP');
            expect(vm.memoryState.get(gfn + 1)).toBe('private');
            expect(vm.guestRead(gpa + BigInt(P), 64)).toEqual(secret);
          }
          for (const b of vm.bindings()) b.unbind();
          m.close();
        },
        { confidential: true },
      );
    });

    it('edge (b): rebinding private memory as shared never shows the former private bytes', (ctx) => {
      const probe = target.create();
      const confidential = probe.capabilities.has('private-memory');
      probe.close();
      if (!confidential) return ctx.skip("needs 'private-memory'");
      withVm(
        (_h, vm) => {
          const c = vm.capabilities;
          if (!c.has('guest-access')) return ctx.skip("needs 'guest-access'");
          const m = vm.createGuestMemory({ size: P, hostMappable: c.has('host-map') });
          const gpa = 0x6100_0000n;
          const secret = new Uint8Array(64).fill(0x5e);
          const b1 = vm.bind({ memory: m, offset: 0, gpa, size: P, access: 'private' });
          vm.guestWrite(gpa, secret);
          // Without 'unbind' (ACK) the private binding stays: the same memory bound shared elsewhere
          // must still never show its bytes.
          if (c.has('unbind')) b1.unbind();
          // At a GPA that was never private, so no conversion happens on the way.
          const gpa2 = gpa + 0x10_0000n;
          // A backend may refuse the bind once the guest ran (ACK generation A shares only the regions
          // present at VM start: EBUSY), or the access.
          let b2: MemoryBinding | undefined;
          let seen: Uint8Array | undefined;
          try {
            b2 = vm.bind({ memory: m, offset: 0, gpa: gpa2, size: P, access: 'shared' });
            seen = vm.guestRead(gpa2, 64);
          } catch (e) {
            expect(e).toBeInstanceOf(GuestMemError);
          }
          expect(seen?.some((x) => x === 0x5e) ?? false, 'the guest sees former private bytes through a shared binding').toBe(false);
          if (c.has('host-map')) {
            try {
              const v = m.map({ length: P });
              try {
                expect(
                  v.read(0, 64).some((x) => x === 0x5e),
                  'the host sees former private bytes',
                ).toBe(false);
              } finally {
                v.unmap();
              }
            } catch (e) {
              expect(e).toBeInstanceOf(GuestMemError);
            }
          }
          if (c.has('unbind')) b2?.unbind();
          m.close();
        },
        { confidential: true },
      );
    });

    it('edge (c): a 4 KiB punchHole on huge-page memory never changes bytes outside its range (split, or EINVAL changing nothing)', (ctx) => {
      withVm((_h, vm) => {
        const c = vm.capabilities;
        if (!c.has('huge-pages') || !c.has('host-map') || !c.has('initially-shared'))
          return ctx.skip('needs huge pages and shared host-mappable memory');
        if (!c.has('punch-hole')) return ctx.skip("needs 'punch-hole'");
        const m = vm.createGuestMemory({ size: 2 * MiB, hugePages: true, hostMappable: true, initiallyShared: true });
        const v = m.map();
        v.fill(0, 2 * MiB, 0x33);
        let refused: GuestMemError | undefined;
        try {
          m.punchHole(P, P);
        } catch (e) {
          refused = e as GuestMemError;
        }
        const all = v.read(0, 2 * MiB);
        if (refused) {
          expect(refused.code).toBe('EINVAL');
          expect(
            all.every((x) => x === 0x33),
            'a refused punch changed bytes',
          ).toBe(true);
        } else {
          expect(all.subarray(P, 2 * P).every((x) => x === 0)).toBe(true);
          expect(
            all.subarray(0, P).every((x) => x === 0x33),
            'bytes before the punched page',
          ).toBe(true);
          expect(
            all.subarray(2 * P).every((x) => x === 0x33),
            'bytes after the punched page',
          ).toBe(true);
        }
        // A whole-folio punch is always allowed and zeroes the folio.
        m.punchHole(0, 2 * MiB);
        expect(v.read(0, 2 * MiB).every((x) => x === 0)).toBe(true);
        v.unmap();
        m.close();
      });
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

    it("without 'unbind' or 'punch-hole', those calls fail with EOPNOTSUPP and change nothing", (ctx) => {
      withVm((_h, vm) => {
        const c = vm.capabilities;
        if (c.has('unbind') && c.has('punch-hole')) return ctx.skip('the backend has both');
        const m = hostMemory(vm, 2 * P) ?? vm.createGuestMemory({ size: 2 * P });
        const b = vm.bind({ memory: m, offset: 0, gpa: 0x6000_0000n, size: 2 * P, access: 'shared' });
        if (c.has('guest-access')) vm.guestWrite(0x6000_0000n, new Uint8Array([0x5a]));
        if (!c.has('unbind')) unbindOrKeep(vm, b);
        if (!c.has('punch-hole')) expect(expectGuestMemError(() => m.punchHole(0, P)).code).toBe('EOPNOTSUPP');
        if (c.has('guest-access')) expect(vm.guestRead(0x6000_0000n, 1)).toEqual(new Uint8Array([0x5a]));
        expect(vm.bindings()).toEqual([b]);
        m.close();
      });
    });

    it('hypervisor close() releases every VM, binding, memory object and host view still alive (idempotent)', () => {
      const h = target.create();
      const vm = h.createVm();
      const kept = vm.createGuestMemory({ size: 2 * P });
      const b = vm.bind({ memory: kept, offset: 0, gpa: 0x30_0000n, size: 2 * P, access: 'shared' });
      const spare = vm.createGuestMemory({ size: P });
      const closedEarly = vm.createGuestMemory({ size: P });
      closedEarly.close();
      // Host views of every kind the backend offers: whole memory, a window at an offset, one of
      // memory that is also bound, and one that outlives its memory's close().
      const views: Array<[string, HostView]> = [];
      const viewable = hostMemory(vm, 4 * P);
      if (viewable) {
        const bound = hostMemory(vm, 2 * P)!;
        vm.bind({ memory: bound, offset: 0, gpa: 0x50_0000n, size: 2 * P, access: 'shared' });
        const orphan = hostMemory(vm, 2 * P)!;
        views.push(
          ['whole', viewable.map()],
          ['window', viewable.map({ offset: P, length: 2 * P })],
          ['bound', bound.map()],
          ['orphan', orphan.map()],
        );
        orphan.close();
        for (const [what, v] of views) {
          v.fill(0, P, 0x5a);
          expect(v.read(0, 1), what).toEqual(new Uint8Array([0x5a]));
        }
      }
      h.close();
      expect(vm.destroyed).toBe(true);
      expect(b.active).toBe(false);
      expect(kept.closed).toBe(true);
      expect(spare.closed).toBe(true);
      for (const [what, v] of views) {
        for (const e of [
          expectGuestMemError(() => v.read(0, P)),
          expectGuestMemError(() => v.write(0, new Uint8Array([1]))),
          expectGuestMemError(() => v.fill(P, 1, 1)),
        ]) {
          expect(['EBADF', 'EFAULT'], `${what}: ${e.message}`).toContain(e.code);
        }
        v.unmap(); // still idempotent after close()
      }
      h.close();
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
        expect(expectGuestMemError(() => vm.bind({ memory: m, offset: 0, gpa: 0x20_0000n, size: P, access: 'shared' })).code).toBe('EBADF');
        vm.destroy(); // idempotent
        m.close();
      } finally {
        h.close();
      }
    });
  });
}
