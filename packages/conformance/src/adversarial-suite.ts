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
            const convertUnsupported =
              what.startsWith('convert') && !vm.capabilities.has('convert-in-place') && !vm.capabilities.has('convert-remap');
            expect([what, String(v), e.code], e.message).toEqual([
              what,
              String(v),
              convertUnsupported && e.code === 'EOPNOTSUPP' ? 'EOPNOTSUPP' : 'EINVAL',
            ]);
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
