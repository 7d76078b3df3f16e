/**
 * Random operation sequences (fast-check), each played from fresh VMs on the real kernel and on the
 * simulated one; the traces must be equal. `DIFF_RUNS` sets the number of sequences (default 500).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openFds } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';
import { openKvm } from '../open.js';
import { openSimKvm } from '../sim/index.js';
import {
  FALLOC_FL_KEEP_SIZE as KEEP,
  FALLOC_FL_PUNCH_HOLE as PUNCH,
  FALLOC_FL_ZERO_RANGE,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_GUARD_INSTALL,
  MADV_NORMAL,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MADV_WILLNEED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { playRandomOps, type FdRef, type RandomOp } from './random-ops.js';
import { runScenario, type Session } from './trace.js';

const P = 4096;
const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm diff] skipping random sequences: ${probe.reason}`);

const idx = fc.nat({ max: 7 });
/** Byte offsets/lengths: mostly page multiples around small files, sometimes unaligned or negative. */
const bytes = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 10 }).map((p) => p * P) },
  { weight: 1, arbitrary: fc.constantFrom(-P, 1, P - 1, P + 1) },
);
const fdRef: fc.Arbitrary<FdRef> = fc.oneof(
  { weight: 8, arbitrary: idx.map((g) => ({ kind: 'gmem' as const, g })) },
  { weight: 1, arbitrary: idx.map((vm) => ({ kind: 'vm' as const, vm })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'kvm' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bad' as const }) },
);
const op: fc.Arbitrary<RandomOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('createGmem' as const), vm: idx, size: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 8 }).map((p) => p * P) }, { weight: 1, arbitrary: fc.constantFrom(0, 100) }), flags: fc.constantFrom(0n, 1n, 2n, 3n, 3n, 3n, 3n, 3n, 4n) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('dup' as const), g: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), g: idx }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('fallocate' as const), g: idx, mode: fc.constantFrom(KEEP, KEEP, PUNCH | KEEP, PUNCH | KEEP, 0, PUNCH, FALLOC_FL_ZERO_RANGE | KEEP), offset: bytes, len: bytes }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('mmap' as const), g: idx, offset: bytes, length: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 10 }).map((p) => p * P) }, { weight: 1, arbitrary: fc.constantFrom(0, 100) }), prot: fc.constantFrom(...Array<number>(8).fill(PROT_READ | PROT_WRITE), PROT_READ, PROT_WRITE, PROT_NONE, PROT_READ | PROT_EXEC), flags: fc.constantFrom(...Array<number>(8).fill(MAP_SHARED), MAP_PRIVATE) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('munmap' as const), m: idx }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('read' as const), m: idx, offset: fc.integer({ min: 0, max: 6 * P }), len: fc.integer({ min: 0, max: 2 * P }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('write' as const), m: idx, offset: fc.integer({ min: 0, max: 6 * P }), len: fc.integer({ min: 0, max: 2 * P }), byte: fc.integer({ min: 1, max: 255 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('bind' as const),
      vm: idx,
      slot: fc.nat({ max: 3 }),
      gpa: fc.integer({ min: 0, max: 12 }).map((p) => p * P),
      size: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 6 }).map((p) => p * P) }, { weight: 1, arbitrary: fc.constantFrom(0, 100) }),
      fd: fdRef,
      offset: bytes,
      flags: fc.constantFrom(KVM_MEM_GUEST_MEMFD, KVM_MEM_GUEST_MEMFD, KVM_MEM_GUEST_MEMFD, 0, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY),
      hva: fc.integer({ min: -1, max: 7 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), vm: idx, slot: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('closeVm' as const), vm: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('fstat' as const), g: idx }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('anon' as const), length: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 8 }).map((p) => p * P) }, { weight: 1, arbitrary: fc.constantFrom(0, 100, P + 10) }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('madvise' as const), a: idx, offset: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }).map((p) => p * P) }, { weight: 1, arbitrary: bytes }), len: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }).map((p) => p * P) }, { weight: 1, arbitrary: bytes }), advice: fc.constantFrom(MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_REMOVE, MADV_FREE, MADV_WILLNEED, MADV_NORMAL, MADV_POPULATE_WRITE, 5, MADV_GUARD_INSTALL) }) },
);

describe.skipIf(!probe.available)('sim vs real kernel: random operation sequences', () => {
  let fdsBefore: number[];
  beforeAll(() => {
    fdsBefore = openFds();
  });
  afterAll(() => {
    expect(openFds(), 'fds leaked by the random sequences').toEqual(fdsBefore);
  });

  test('every sequence gives equal traces on both drivers', () => {
    const numRuns = Number(process.env.DIFF_RUNS ?? 500);
    const outcomes = new Map<string, number>();
    let played = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 5, maxLength: 40, size: 'max' }), (ops) => {
        const scenario = { name: 'random', run: (s: Session) => playRandomOps(s, ops) };
        const native = runScenario(() => openKvm({ driver: 'native' }), scenario);
        let sim: ReturnType<typeof openSimKvm> | undefined;
        const simTrace = runScenario(() => (sim = openSimKvm({ profile: '6.18', swProtectedVm: false })), scenario);
        expect(simTrace).toEqual(native);
        const st = sim!.stats();
        expect([st.vms, st.guestMemfds, st.mappings, st.memory.bytesInUse, st.fds]).toEqual([0, 0, 0, 0, 3]);
        for (const step of native) {
          const key = `${step.step.replace(/^#\d+ /, '').split('(')[0]}:${(step.out as { err?: string }).err ?? 'ok'}`;
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        }
        played++;
      }),
      { numRuns },
    );
    expect(played).toBe(numRuns);
    // DIFF_STATS=1 prints how often each operation succeeded or failed with each errno (coverage tuning).
    if (process.env.DIFF_STATS) console.log([...outcomes].sort().map(([k, v]) => `${k}=${v}`).join(' '));
  });
});
