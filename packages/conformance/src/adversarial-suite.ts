/**
 * Adversarial programs against the documented promises of the neutral API (interfaces.ts,
 * validate.ts, docs/architecture.md). Each test is named after the promise it attacks and runs on
 * every backend that has the capabilities it needs; where a backend lacks one, the test checks the
 * `EOPNOTSUPP` answer instead. Run by `adversarial.test.ts` (simulated backends, toyvisor) and
 * `adversarial.native.test.ts` (/dev/kvm).
 */
import { describe, expect, it } from 'vitest';
import { GuestMemError, type GuestMemory, type Hypervisor, type Vm } from '@guestmem/core';

/** A backend under attack. */
export interface AdversarialTarget {
  name: string;
  /** A fresh hypervisor per test (closed by the suite). */
  create: () => Hypervisor;
  /** When set, the suite is skipped with this reason. */
  skip?: string | false;
}

const P = 4096;
const TWO64 = 1n << 64n;

/** Every field a caller relies on, on every error: the error itself when it is one. */
export function checkError(h: Hypervisor, e: unknown): GuestMemError {
  expect(e, `expected a GuestMemError, got ${String(e)}`).toBeInstanceOf(GuestMemError);
  const g = e as GuestMemError;
  expect(typeof g.code).toBe('string');
  expect(typeof g.errno).toBe('number');
  if (g.code !== 'SIGBUS') expect(g.errno).toBeGreaterThan(0);
  expect(typeof g.op).toBe('string');
  expect(g.op.length).toBeGreaterThan(0);
  expect(g.backend, `backend of "${g.message}"`).toBe(h.id);
  expect(g.syscall === undefined || typeof g.syscall === 'string').toBe(true);
  const json = JSON.parse(JSON.stringify(g));
  expect(json.code).toBe(g.code);
  expect(json.backend).toBe(g.backend);
  return g;
}

/** Runs `fn`, which must throw a well-formed GuestMemError of this hypervisor; returns it. */
export function attack(h: Hypervisor, fn: () => unknown): GuestMemError {
  let thrown: unknown;
  let threw = false;
  try {
    fn();
  } catch (e) {
    thrown = e;
    threw = true;
  }
  expect(threw, 'expected the call to fail').toBe(true);
  return checkError(h, thrown);
}

/** A readable snapshot of what a VM shows: bindings, state runs, and the bytes given. */
function snapshot(vm: Vm, reads: Array<() => Uint8Array | string>): unknown {
  return {
    bindings: vm.bindings().map((b) => ({ gpa: b.gpa, size: b.size, offset: b.offset, active: b.active, memory: b.memory.id })),
    state: vm.memoryState.runs(0, 2 ** 52).filter((r) => r.state !== 'shared'),
    reads: reads.map((r) => {
      try {
        return Array.from(r() as Uint8Array).join(',');
      } catch (e) {
        return GuestMemError.is(e) ? `error ${e.code}` : `throw ${String(e)}`;
      }
    }),
  };
}

function hostMemory(vm: Vm, size: number): GuestMemory | undefined {
  const c = vm.capabilities;
  if (!c.has('host-map') || !c.has('initially-shared')) return undefined;
  return vm.createGuestMemory({ size, hostMappable: true, initiallyShared: true });
}

const BAD_NUMBERS: ReadonlyArray<unknown> = [
  -4096,
  -4096n,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  1.5,
  2 ** 53,
  2 ** 64,
  TWO64 * 4n,
  '4096',
  null,
];

export function defineAdversarialSuite(target: AdversarialTarget): void {
  const suite = target.skip ? describe.skip : describe;
  suite(`adversarial: ${target.name}`, () => {
    function withVm(body: (h: Hypervisor, vm: Vm) => void, opts?: { confidential?: boolean }): void {
      const h = target.create();
      try {
        body(h, h.createVm(opts));
      } finally {
        h.close();
      }
    }

    it('numbers rule: every bad number of every method is EINVAL, well-formed, showing the value as given, changing nothing', () => {
      withVm((h, vm) => {
        const mem = vm.createGuestMemory({ size: 4 * P, hostMappable: vm.capabilities.has('host-map') });
        const b = vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: P, access: 'shared' });
        const before = snapshot(vm, []);
        const calls: Array<[string, (v: never) => unknown]> = [
          ['createGuestMemory size', (v) => vm.createGuestMemory({ size: v })],
          ['allocate offset', (v) => mem.allocate(v, P)],
          ['allocate len', (v) => mem.allocate(0, v)],
          ['punchHole offset', (v) => mem.punchHole(v, P)],
          ['punchHole len', (v) => mem.punchHole(0, v)],
          ['bind gpa', (v) => vm.bind({ memory: mem, offset: P, gpa: v, size: P, access: 'shared' })],
          ['bind offset', (v) => vm.bind({ memory: mem, offset: v, gpa: 0x40000, size: P, access: 'shared' })],
          ['bind size', (v) => vm.bind({ memory: mem, offset: P, gpa: 0x40000, size: v, access: 'shared' })],
          ['convert gpa', (v) => vm.convert({ gpa: v, size: P }, 'shared')],
          ['convert size', (v) => vm.convert({ gpa: 0x10000, size: v }, 'shared')],
        ];
        if (vm.capabilities.has('host-map')) {
          calls.push(['map offset', (v) => mem.map({ offset: v, length: P })], ['map length', (v) => mem.map({ offset: 0, length: v })]);
        }
        if (vm.capabilities.has('guest-access')) {
          calls.push(
            ['guestRead gpa', (v) => vm.guestRead(v, 1)],
            ['guestRead len', (v) => vm.guestRead(0x10000, v)],
            ['guestWrite gpa', (v) => vm.guestWrite(v, new Uint8Array(1))],
          );
        }
        if (vm.capabilities.has('poison-injection')) calls.push(['markPoisoned offset', (v) => mem.markPoisoned(v)]);
        for (const [what, call] of calls) {
          for (const v of BAD_NUMBERS) {
            // 2^64 as a number is inside no range; a bigint past 2^64 neither.
            if (what.startsWith('map length') && typeof v === 'bigint') continue; // length is a number
            if (what.startsWith('map offset') && v === null) continue; // an optional argument: null is "not given"
            let e: GuestMemError;
            try {
              e = attack(h, () => call(v as never));
            } catch (x) {
              throw new Error(`${what} ${String(v)}: ${(x as Error).message}`);
            }
            // Bad input is EINVAL before any capability is consulted: the same call, one answer everywhere.
            expect([what, String(v), e.code], e.message).toEqual([what, String(v), 'EINVAL']);
            if (
              e.code === 'EINVAL' &&
              (typeof v === 'number' || typeof v === 'bigint') &&
              !(typeof v === 'number' && Math.abs(v) >= 2 ** 53)
            ) {
              const shown = typeof v === 'bigint' ? `${v}n` : String(v);
              expect(e.message, `${what} ${String(v)}`).toContain(shown);
            }
          }
        }
        // With every option a backend may lack, a bad size is still EINVAL (numbers before capabilities).
        for (const v of BAD_NUMBERS) {
          const e = attack(h, () => vm.createGuestMemory({ size: v as never, hugePages: true, hostMappable: true, initiallyShared: true }));
          expect([String(v), e.code], e.message).toEqual([String(v), 'EINVAL']);
        }
        expect(snapshot(vm, [])).toEqual(before);
        expect(b.active).toBe(true);
      });
    });

    it('64-bit edges: a binding ending exactly at 2^64 is EINVAL; the last page below it binds or is refused with EINVAL; nothing wraps', () => {
      withVm((h, vm) => {
        const mem = vm.createGuestMemory({ size: 2 * P });
        for (const gpa of [TWO64 - 4096n, TWO64 - 8192n + 4096n]) {
          expect(attack(h, () => vm.bind({ memory: mem, offset: 0, gpa, size: 2 * P, access: 'shared' })).code).toBe('EINVAL');
        }
        expect(vm.bindings()).toEqual([]);
        for (const gpa of [TWO64 - 8192n, 1n << 63n, (1n << 52n) + 4096n, 1n << 52n, (1n << 52n) - 4096n]) {
          let b: ReturnType<Vm['bind']> | undefined;
          try {
            b = vm.bind({ memory: mem, offset: 0, gpa, size: P, access: 'shared' });
          } catch (e) {
            expect(checkError(h, e).code, `bind at ${gpa}`).toBe('EINVAL');
            expect(vm.bindings()).toEqual([]);
            continue;
          }
          expect(vm.bindings().map((x) => x.gpa)).toEqual([gpa]);
          if (vm.capabilities.has('guest-access')) {
            vm.guestWrite(gpa, new Uint8Array([0xab]));
            expect(vm.guestRead(gpa, 1)).toEqual(new Uint8Array([0xab]));
            // An access crossing the binding's end reaches nothing (no wrap to GPA 0).
            expect(['EFAULT', 'EINVAL']).toContain(attack(h, () => vm.guestRead(gpa + 4095n, 2)).code);
          }
          if (vm.capabilities.has('unbind')) b.unbind();
          else break;
        }
      });
    });

    it('64-bit edges: a guest access never wraps past 2^64 to GPA 0', () => {
      withVm((h, vm) => {
        if (!vm.capabilities.has('guest-access')) return;
        const mem = vm.createGuestMemory({ size: P });
        vm.bind({ memory: mem, offset: 0, gpa: 0, size: P, access: 'shared' });
        vm.guestWrite(0, new Uint8Array([1, 2, 3, 4]));
        for (const [gpa, len] of [
          [TWO64 - 1n, 2],
          [TWO64 - 2n, 4],
          [TWO64 - 4096n, 8192],
        ] as const) {
          expect(['EFAULT', 'EINVAL']).toContain(attack(h, () => vm.guestRead(gpa, len)).code);
          expect(['EFAULT', 'EINVAL']).toContain(attack(h, () => vm.guestWrite(gpa, new Uint8Array(len).fill(9))).code);
        }
        expect(vm.guestRead(0, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
      });
    });

    it('64-bit edges: the largest memory takes allocate, punch, bind and a view at its last page', () => {
      withVm((h, vm) => {
        const max = vm.capabilities.maxGuestMemorySize;
        expect(attack(h, () => vm.createGuestMemory({ size: max + 4096n })).code).toBe('EINVAL');
        const mem = hostMemory(vm, P)
          ? vm.createGuestMemory({ size: max, hostMappable: true, initiallyShared: true })
          : vm.createGuestMemory({ size: max });
        expect(mem.size).toBe(max);
        const last = max - 4096n;
        mem.allocate(last, P);
        expect(attack(h, () => mem.allocate(last, 2 * P)).code).toBe('EINVAL');
        if (vm.capabilities.has('host-map')) {
          // The rest of the memory is one view only when its length is a safe integer.
          if (max - last > BigInt(Number.MAX_SAFE_INTEGER)) expect(attack(h, () => mem.map()).code).toBe('EINVAL');
          const v = mem.map({ offset: last, length: P });
          v.write(4090, new Uint8Array([7, 7, 7, 7, 7, 7]));
          expect(v.read(4090, 6)).toEqual(new Uint8Array([7, 7, 7, 7, 7, 7]));
          if (vm.capabilities.has('punch-hole')) {
            mem.punchHole(last, P);
            expect(v.read(0, P)).toEqual(new Uint8Array(P));
          }
          v.unmap();
        }
        const b = vm.bind({ memory: mem, offset: last, gpa: 0x100000, size: P, access: 'shared' });
        expect(b.offset).toBe(last);
        if (vm.capabilities.has('guest-access')) {
          vm.guestWrite(0x100000 + 4094, new Uint8Array([5, 6]));
          expect(vm.guestRead(0x100000 + 4094, 2)).toEqual(new Uint8Array([5, 6]));
          // The bytes are at the memory's last page, nowhere else.
          if (vm.capabilities.has('host-map')) expect(mem.map({ offset: last, length: P }).read(4094, 2)).toEqual(new Uint8Array([5, 6]));
        }
        expect(mem.stats().size).toBe(max);
      });
    });
  });
}

/** Host and guest reads of every page of `mem` (through one view) and of a guest range. */
function readAll(vm: Vm, mem: GuestMemory | undefined, guest: Array<[gpa: bigint | number, len: number]>): Array<() => Uint8Array> {
  const out: Array<() => Uint8Array> = [];
  if (mem && vm.capabilities.has('host-map') && mem.hostMappable && !mem.closed) {
    out.push(() => {
      const v = mem.map();
      try {
        return v.read(0, v.length);
      } finally {
        v.unmap();
      }
    });
  }
  if (vm.capabilities.has('guest-access')) for (const [g, n] of guest) out.push(() => vm.guestRead(g, n));
  return out;
}

export function defineLifetimeAttacks(target: AdversarialTarget): void {
  const suite = target.skip ? describe.skip : describe;
  suite(`adversarial lifetimes: ${target.name}`, () => {
    it('GuestMemory.close(): idempotent; then every method is EBADF (or EOPNOTSUPP without its capability), stats() still works', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const mem = vm.createGuestMemory({ size: 2 * P, hostMappable: vm.capabilities.has('host-map') });
        mem.close();
        mem.close();
        expect(mem.closed).toBe(true);
        const calls: Array<[string, () => unknown, string]> = [
          ['allocate', () => mem.allocate(0, P), 'EBADF'],
          ['punchHole', () => mem.punchHole(0, P), vm.capabilities.has('punch-hole') ? 'EBADF' : 'EBADF|EOPNOTSUPP'],
          ['map', () => mem.map(), vm.capabilities.has('host-map') ? 'EBADF' : 'EBADF|EOPNOTSUPP'],
          ['markPoisoned', () => mem.markPoisoned(0), vm.capabilities.has('poison-injection') ? 'EBADF' : 'EBADF|EOPNOTSUPP'],
          ['bind', () => vm.bind({ memory: mem, offset: 0, gpa: 0, size: P, access: 'shared' }), 'EBADF'],
        ];
        for (const [what, call, codes] of calls) {
          const e = attack(h, call);
          expect(codes.split('|'), `${what}: ${e.message}`).toContain(e.code);
        }
        expect(mem.stats().size).toBe(2n * BigInt(P));
        expect(vm.bindings()).toEqual([]);
      } finally {
        h.close();
      }
    });

    it('Vm.destroy(): idempotent; then every method is EBADF, bindings() is empty and old bindings are inactive', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const mem = vm.createGuestMemory({ size: 2 * P });
        const b = vm.bind({ memory: mem, offset: 0, gpa: 0x2000, size: P, access: 'shared' });
        vm.destroy();
        vm.destroy();
        expect(vm.destroyed).toBe(true);
        expect(b.active).toBe(false);
        b.unbind();
        expect(vm.bindings()).toEqual([]);
        const calls: Array<[string, () => unknown]> = [
          ['createGuestMemory', () => vm.createGuestMemory({ size: P })],
          ['bind', () => vm.bind({ memory: mem, offset: P, gpa: 0x8000, size: P, access: 'shared' })],
          ['convert', () => vm.convert({ gpa: 0x2000, size: P }, 'shared')],
          ['guestRead', () => vm.guestRead(0x2000, 1)],
          ['guestWrite', () => vm.guestWrite(0x2000, new Uint8Array(1))],
        ];
        for (const [what, call] of calls) {
          const e = attack(h, call);
          expect(e.code, `${what}: ${e.message}`).toBe('EBADF');
        }
        mem.close();
      } finally {
        h.close();
      }
    });

    it('Hypervisor.close(): idempotent; afterwards createVm is EBADF and old VMs, memories and views are dead', () => {
      const h = target.create();
      const vm = h.createVm();
      const mem = vm.createGuestMemory({
        size: 2 * P,
        hostMappable: vm.capabilities.has('host-map'),
        initiallyShared: vm.capabilities.has('initially-shared'),
      });
      const view = vm.capabilities.has('host-map') ? mem.map() : undefined;
      h.close();
      h.close();
      expect(vm.destroyed).toBe(true);
      expect(mem.closed).toBe(true);
      expect(attack(h, () => h.createVm()).code).toBe('EBADF');
      if (view) {
        for (const call of [() => view.read(0, 1), () => view.write(0, new Uint8Array(1)), () => view.fill(0, 1, 1)]) {
          expect(['EFAULT', 'EBADF']).toContain(attack(h, call).code);
        }
        view.unmap();
      }
    });

    it('HostView.unmap(): idempotent; afterwards every access is EFAULT or EBADF, and other views keep working', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const mem = hostMemory(vm, 2 * P);
        if (!mem) return;
        const v1 = mem.map();
        const v2 = mem.map();
        v1.write(0, new Uint8Array([1, 2, 3]));
        v1.unmap();
        v1.unmap();
        for (const call of [() => v1.read(0, 1), () => v1.write(0, new Uint8Array(1)), () => v1.fill(0, 1, 1)]) {
          expect(['EFAULT', 'EBADF']).toContain(attack(h, call).code);
        }
        expect(v2.read(0, 3)).toEqual(new Uint8Array([1, 2, 3]));
      } finally {
        h.close();
      }
    });

    it('HostView accessors: an access outside the view or with a bad number is a GuestMemError and writes nothing', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const mem = hostMemory(vm, 2 * P);
        if (!mem) return;
        const v = mem.map({ offset: 0, length: P });
        const other = mem.map({ offset: P, length: P });
        other.fill(0, P, 0x5a);
        const bad: Array<[number, number]> = [
          [-1, 1],
          [P, 1],
          [P - 1, 2],
          [0, P + 1],
          [0.5, 1],
          [Number.NaN, 1],
          [0, Number.NaN],
          [0, -1],
          [2 ** 53, 1],
        ];
        for (const [at, len] of bad) {
          const calls = [() => v.read(at, len), () => v.fill(at, len, 7)];
          // A write's length is its data's: only a bad `at` or a range past the end can fail it.
          if (Number.isSafeInteger(len) && len > 0) calls.push(() => v.write(at, new Uint8Array(len).fill(7)));
          for (const call of calls) {
            let e: GuestMemError;
            try {
              e = attack(h, call);
            } catch (x) {
              throw new Error(`view access at ${at} len ${len}: ${(x as Error).message}`);
            }
            expect(['EFAULT', 'EINVAL'], `at ${at} len ${len}: ${e.message}`).toContain(e.code);
          }
        }
        for (const byte of [256, -1, 1.5, Number.NaN]) expect(attack(h, () => v.fill(0, 1, byte)).code).toBe('EINVAL');
        expect(attack(h, () => v.write(0, [1, 2] as unknown as Uint8Array)).code).toBe('EINVAL');
        expect(v.read(0, P)).toEqual(new Uint8Array(P));
        expect(other.read(0, P)).toEqual(new Uint8Array(P).fill(0x5a));
      } finally {
        h.close();
      }
    });

    it('bind: memory of another VM or of another hypervisor is EINVAL and changes nothing', () => {
      const h = target.create();
      const h2 = target.create();
      try {
        const vm = h.createVm();
        const vm2 = h.createVm();
        const vm3 = h2.createVm();
        const theirs = vm2.createGuestMemory({ size: P });
        const foreign = vm3.createGuestMemory({ size: P });
        expect(attack(h, () => vm.bind({ memory: theirs, offset: 0, gpa: 0, size: P, access: 'shared' })).code).toBe('EINVAL');
        expect(attack(h, () => vm.bind({ memory: foreign, offset: 0, gpa: 0, size: P, access: 'shared' })).code).toBe('EINVAL');
        expect(vm.bindings()).toEqual([]);
        expect(vm2.bindings()).toEqual([]);
      } finally {
        h.close();
        h2.close();
      }
    });

    it('zero on first use: memory created after another was written, punched and closed shows none of its bytes', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        for (let round = 0; round < 3; round++) {
          const mem = hostMemory(vm, 4 * P) ?? vm.createGuestMemory({ size: 4 * P });
          const b = vm.bind({ memory: mem, offset: 0, gpa: 0x40000, size: 4 * P, access: 'shared' });
          const reads = readAll(vm, mem, [[0x40000, 4 * P]]);
          for (const r of reads) expect(r(), `round ${round}`).toEqual(new Uint8Array(4 * P));
          if (vm.capabilities.has('guest-access')) vm.guestWrite(0x40000, new Uint8Array(4 * P).fill(0xc3));
          if (mem.hostMappable) {
            const v = mem.map();
            v.fill(0, v.length, 0xc4);
          }
          if (vm.capabilities.has('unbind')) b.unbind();
          mem.close();
          if (!vm.capabilities.has('unbind')) {
            vm.destroy();
            return;
          }
        }
      } finally {
        h.close();
      }
    });

    it('no view shows old data after a punch: old views, new views and the guest read zero', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        if (!vm.capabilities.has('punch-hole')) return;
        const mem = hostMemory(vm, 4 * P) ?? vm.createGuestMemory({ size: 4 * P });
        vm.bind({ memory: mem, offset: 0, gpa: 0x40000, size: 4 * P, access: 'shared' });
        const old = mem.hostMappable ? mem.map() : undefined;
        if (vm.capabilities.has('guest-access')) vm.guestWrite(0x40000 + P, new Uint8Array(2 * P).fill(0x77));
        old?.fill(P, 2 * P, 0x66);
        mem.punchHole(P, 2 * P);
        const expectZero = (bytes: Uint8Array, what: string) =>
          expect(
            bytes.some((x) => x !== 0),
            what,
          ).toBe(false);
        if (old) expectZero(old.read(P, 2 * P), 'old view');
        for (const r of readAll(vm, mem, [[0x40000 + P, 2 * P]])) expectZero(r(), 'new view / guest');
      } finally {
        h.close();
      }
    });

    it('conversion round trips never bring old bytes back: private -> shared -> private reads zero with discard', () => {
      const h = target.create();
      try {
        if (!h.capabilities.has('private-memory')) return;
        let vm: Vm;
        try {
          vm = h.createVm({ confidential: true });
        } catch (e) {
          expect(checkError(h, e).code).toBe('EOPNOTSUPP');
          return;
        }
        const c = vm.capabilities;
        if (!c.has('guest-access') || !c.has('private-memory') || !(c.has('convert-in-place') || c.has('convert-remap'))) return;
        const mem = vm.createGuestMemory({ size: 2 * P, hostMappable: c.has('host-map') });
        vm.bind({ memory: mem, offset: 0, gpa: 0x40000, size: 2 * P, access: 'private' });
        vm.guestWrite(0x40000, new Uint8Array(2 * P).fill(0x11));
        vm.convert({ gpa: 0x40000, size: 2 * P }, 'shared');
        expect(
          vm.guestRead(0x40000, 2 * P).some((x) => x === 0x11),
          'private bytes seen as shared',
        ).toBe(false);
        vm.guestWrite(0x40000, new Uint8Array(2 * P).fill(0x22));
        vm.convert({ gpa: 0x40000, size: 2 * P }, 'private');
        const back = vm.guestRead(0x40000, 2 * P);
        expect(
          back.some((x) => x === 0x11 || x === 0x22),
          'old bytes after a discarding round trip',
        ).toBe(false);
      } finally {
        h.close();
      }
    });
  });
}

export function defineErrorAttacks(target: AdversarialTarget): void {
  const suite = target.skip ? describe.skip : describe;
  suite(`adversarial errors: ${target.name}`, () => {
    it('a bind into a VM whose guest already ran either reaches the guest or fails changing nothing', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        if (!vm.capabilities.has('guest-access')) return;
        const mem = vm.createGuestMemory({ size: 2 * P });
        vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: P, access: 'shared' });
        vm.guestWrite(0x10000, new Uint8Array([1]));
        const before = snapshot(vm, []);
        try {
          vm.bind({ memory: mem, offset: P, gpa: 0x20000, size: P, access: 'shared' });
        } catch (e) {
          checkError(h, e);
          expect(snapshot(vm, [])).toEqual(before);
          return;
        }
        vm.guestWrite(0x20000, new Uint8Array([2]));
        expect(vm.guestRead(0x20000, 1)).toEqual(new Uint8Array([2]));
      } finally {
        h.close();
      }
    });

    it("one memory never shows another one's data: adjacent bindings of two memories, a guest write across the seam, a punch of one", () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const c = vm.capabilities;
        if (!c.has('guest-access')) return;
        const a = hostMemory(vm, 2 * P) ?? vm.createGuestMemory({ size: 2 * P });
        const b = hostMemory(vm, 2 * P) ?? vm.createGuestMemory({ size: 2 * P });
        vm.bind({ memory: a, offset: 0, gpa: 0x30000, size: 2 * P, access: 'shared' });
        vm.bind({ memory: b, offset: 0, gpa: 0x32000, size: 2 * P, access: 'shared' });
        vm.guestWrite(0x32000 - 8, new Uint8Array(16).fill(0xab));
        if (a.hostMappable) {
          const va = a.map();
          const vb = b.map();
          expect(Array.from(va.read(2 * P - 8, 8))).toEqual(new Array(8).fill(0xab));
          expect(Array.from(vb.read(0, 8))).toEqual(new Array(8).fill(0xab));
          expect(va.read(0, 2 * P - 8).some((x) => x !== 0)).toBe(false);
          expect(vb.read(8, 2 * P - 8).some((x) => x !== 0)).toBe(false);
        }
        if (c.has('punch-hole')) {
          a.punchHole(0, 2 * P);
          expect(Array.from(vm.guestRead(0x32000 - 8, 16))).toEqual([...new Array(8).fill(0), ...new Array(8).fill(0xab)]);
        }
      } finally {
        h.close();
      }
    });

    it('convert: only the range converts; an unbound gap inside it only changes memoryState; data outside it is kept', () => {
      const h = target.create();
      try {
        if (!h.capabilities.has('private-memory')) return;
        let vm: Vm;
        try {
          vm = h.createVm({ confidential: true });
        } catch (e) {
          expect(checkError(h, e).code).toBe('EOPNOTSUPP');
          return;
        }
        const c = vm.capabilities;
        if (!c.has('guest-access') || !(c.has('convert-in-place') || c.has('convert-remap'))) return;
        const mem = vm.createGuestMemory({ size: 8 * P });
        const g0 = 0x400000;
        vm.bind({ memory: mem, offset: 0, gpa: g0, size: 4 * P, access: 'shared' });
        vm.bind({ memory: mem, offset: 4 * P, gpa: g0 + 6 * P, size: 4 * P, access: 'shared' });
        const pattern = (n: number, i: number) => new Uint8Array(n).fill(0x10 + i);
        for (let i = 0; i < 4; i++) vm.guestWrite(g0 + i * P, pattern(P, i));
        for (let i = 0; i < 4; i++) vm.guestWrite(g0 + (6 + i) * P, pattern(P, 4 + i));
        // Pages 2..7 (gap 4..5 unbound) become private.
        vm.convert({ gpa: g0 + 2 * P, size: 6 * P }, 'private');
        const gfn0 = g0 / P;
        expect(vm.memoryState.runs(gfn0, gfn0 + 10).map((r) => [r.first - gfn0, r.end - gfn0, r.state])).toEqual([
          [0, 2, 'shared'],
          [2, 8, 'private'],
          [8, 10, 'shared'],
        ]);
        for (const i of [0, 1]) expect(vm.guestRead(g0 + i * P, P), `page ${i}`).toEqual(pattern(P, i));
        for (const i of [8, 9]) expect(vm.guestRead(g0 + i * P, P), `page ${i}`).toEqual(pattern(P, i - 2));
        expect(
          vm
            .bindings()
            .map((b) => [Number(b.gpa) - g0, Number(b.size)])
            .reduce((n, [, s]) => n + s, 0),
        ).toBe(8 * P);
      } finally {
        h.close();
      }
    });

    it('the host never reads private memory: not after unbind, not after the VM is destroyed', () => {
      const h = target.create();
      try {
        if (!h.capabilities.has('private-memory')) return;
        let vm: Vm;
        try {
          vm = h.createVm({ confidential: true });
        } catch (e) {
          expect(checkError(h, e).code).toBe('EOPNOTSUPP');
          return;
        }
        const c = vm.capabilities;
        if (!c.has('guest-access') || !c.has('host-map')) return;
        const mem = vm.createGuestMemory({ size: 2 * P, hostMappable: true });
        const b = vm.bind({ memory: mem, offset: 0, gpa: 0x50000, size: 2 * P, access: 'private' });
        vm.guestWrite(0x50000, new Uint8Array(2 * P).fill(0x5c));
        const hostSees = (): boolean => {
          let v: ReturnType<GuestMemory['map']>;
          try {
            v = mem.map();
          } catch (e) {
            // A backend may refuse the view itself (Gunyah v17: EBUSY while the guest holds lent pages).
            checkError(h, e);
            return false;
          }
          try {
            for (let at = 0; at < 2 * P; at += 512) {
              try {
                if (v.read(at, 512).some((x) => x === 0x5c)) return true;
              } catch (e) {
                expect(checkError(h, e).code).toBe('SIGBUS');
              }
            }
            return false;
          } finally {
            v.unmap();
          }
        };
        expect(hostSees(), 'while bound').toBe(false);
        if (c.has('unbind')) {
          b.unbind();
          expect(hostSees(), 'after unbind').toBe(false);
        }
        vm.destroy();
        expect(hostSees(), 'after the VM was destroyed').toBe(false);
      } finally {
        h.close();
      }
    });

    it('map: a length that is not a page multiple gives a view of whole pages; past the memory is EINVAL', () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const mem = hostMemory(vm, 2 * P);
        if (!mem) return;
        const v = mem.map({ offset: P, length: 100 });
        expect(v.length).toBe(P);
        v.write(P - 4, new Uint8Array([1, 2, 3, 4]));
        expect(mem.map({ offset: P, length: P }).read(P - 4, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
        expect(attack(h, () => mem.map({ offset: P, length: P + 1 })).code).toBe('EINVAL');
        expect(attack(h, () => mem.map({ offset: 2 * P })).code).toBe('EINVAL');
        expect(attack(h, () => mem.map({ offset: 100, length: P })).code).toBe('EINVAL');
      } finally {
        h.close();
      }
    });

    it("errors from the backend's own uAPI name the hypervisor's id, have an errno and survive JSON.stringify", () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const c = vm.capabilities;
        const mem = vm.createGuestMemory({ size: 4 * P, hostMappable: c.has('host-map'), initiallyShared: c.has('initially-shared') });
        vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: 2 * P, access: 'shared' });
        vm.bind({ memory: mem, offset: 2 * P, gpa: 0x12000, size: 2 * P, access: 'shared' });
        // Overlapping GPA range (the backend's check, not core's).
        checkError(
          h,
          attack(h, () => vm.bind({ memory: mem, offset: 2 * P, gpa: 0x11000, size: 2 * P, access: 'shared' })),
        );
        if (c.has('guest-access')) {
          checkError(
            h,
            attack(h, () => vm.guestRead(0x900000, 1)),
          );
          checkError(
            h,
            attack(h, () => vm.guestWrite(0x900000, new Uint8Array(1))),
          );
        }
        // Memory not created hostMappable cannot be mapped.
        const plain = vm.createGuestMemory({ size: P });
        checkError(
          h,
          attack(h, () => plain.map()),
        );
        // A host access to private memory.
        if (c.has('host-map')) {
          const priv = vm.createGuestMemory({ size: P, hostMappable: true });
          const v = priv.map();
          const e = attack(h, () => v.read(0, 1));
          expect(e.code).toBe('SIGBUS');
        }
        // A guest access spanning two adjacent bindings resolves like two accesses (no binding is
        // special at its edges); one running past the last binding is EFAULT and writes nothing.
        if (c.has('guest-access')) {
          vm.guestWrite(0x11ffe, new Uint8Array([1, 2, 3, 4]));
          expect(vm.guestRead(0x11ffe, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
          expect(attack(h, () => vm.guestWrite(0x13ffe, new Uint8Array([9, 9, 9, 9]))).code).toBe('EFAULT');
          expect(attack(h, () => vm.guestRead(0x13ffe, 4)).code).toBe('EFAULT');
        }
        // A resource the backend runs out of: a memory larger than the largest accepted.
        checkError(
          h,
          attack(h, () => vm.createGuestMemory({ size: c.maxGuestMemorySize + 4096n })),
        );
      } finally {
        h.close();
      }
    });
  });
}
