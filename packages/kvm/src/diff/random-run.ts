/**
 * The random differential run: fast-check sequences (`random-gen.ts`) played on the real kernel and
 * on the simulated one in both configurations, traces compared step by step, plus the coverage report
 * (which share of the generated calls reached the kernel). Used by `random.diff.test.ts` (5,000
 * sequences per test run) and by the root `fuzz:kvm` script (100,000).
 *
 * "Reached the kernel" (documented in packages/kvm/README.md): a call reached the kernel when the
 * native driver issued at least one libc call for it (counted by `countSyscalls`), or, for host
 * accesses through a mapping (which are memory accesses, not syscalls), when the access was performed
 * rather than refused by the driver's pre-check. Everything else was answered by library code before
 * any syscall: a closed handle (EBADF), an argument the struct codecs cannot encode, guestmem's
 * policies (mmap flags, madvise advice, reopen flags, ranges outside a mapping), a host access refused
 * by its pre-check.
 */
import fc from 'fast-check';
import type { Kvm } from '../api.js';
import { countSyscalls, syscallCount } from '../native/libc.js';
import { openKvm } from '../open.js';
import { openSimKvm, type SimKvm } from '../sim/index.js';
import { randomSequence } from './random-gen.js';
import { isConfigDependent, playRandomOps, type RandomOp, type StepMeter } from './random-ops.js';
import { runScenario, type TraceStep } from './trace.js';

/**
 * TEMPORARY filter, to be removed when the kvm-fidelity work (issue 9 items 2 and 4) is merged: the
 * divergence classes that work fixes, excluded from the 0-divergence assertion only when they are the
 * *first* divergence of a sequence. Each is counted and reported.
 */
export const KNOWN_DIVERGENCES_PENDING_KVM_FIDELITY = {
  /** Issue 9 item 2: the kernel refuses a memslot whose last page lies above the MMU's highest GFN (2^52 bytes here); the sim accepts it. */
  'issue9-item2-memslot-above-max-gfn': (op: RandomOp, native: unknown) =>
    op.op === 'bind' && op.size > 0n && op.size < 1n << 64n && op.gpa + op.size > 1n << 52n && errOf(native) === 'EINVAL',
  /**
   * Issue 9 item 4: a vCPU fd outlives its VM fd in the kernel; the native driver's `NativeVm.close()`
   * also closes its vCPUs, so afterwards the vCPU handle says EBADF and its fd number may already
   * belong to a newer fd (any answer). Matches any use of a vCPU after a VM fd was closed.
   */
  'issue9-item4-vcpu-outlives-vm-fd': (op: RandomOp, _native: unknown, before: readonly RandomOp[]) =>
    before.some((o) => o.op === 'closeVm') &&
    (op.op === 'closeVcpu' ||
      (op.op === 'wrongIoctl' && op.target.kind === 'vcpu') ||
      (op.op === 'bind' && op.fd.kind === 'vcpu') ||
      (op.op === 'sendfile' && op.other.kind === 'vcpu')),
} as const;
export type KnownDivergence = keyof typeof KNOWN_DIVERGENCES_PENDING_KVM_FIDELITY;

function errOf(out: unknown): string | undefined {
  return out && typeof out === 'object' && 'err' in out ? String((out as { err: unknown }).err) : undefined;
}

/** What one run measured. */
export interface RandomDiffReport {
  sequences: number;
  /** Sequences also compared on the default sim configuration (no config-dependent operation). */
  defaultConfigSequences: number;
  /** Calls the native run made (one per API call of the sequences). */
  calls: number;
  /** Of those, calls that reached the kernel (see the file comment). */
  reachedKernel: number;
  byOp: Record<string, { calls: number; reached: number }>;
  /** First divergences excluded by the temporary filter, by class. */
  knownDivergences: Record<KnownDivergence, number>;
  ms: number;
  /** The fast-check seed (rerun with `DIFF_SEED`). */
  seed: number;
}

/** The first step where two traces differ, or -1. */
function firstDifference(a: readonly TraceStep[], b: readonly TraceStep[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return i;
  return -1;
}

/** Thrown (inside the fast-check property) for a divergence that no filter covers. */
export class Divergence extends Error {}

/**
 * Compares a sim trace with the native one: equal, or a first divergence of a known class (counted),
 * or a {@link Divergence}.
 */
function compare(ops: readonly RandomOp[], native: readonly TraceStep[], sim: readonly TraceStep[], config: string, report: RandomDiffReport): void {
  const i = firstDifference(native, sim);
  if (i < 0) return;
  const m = /^#(\d+) /.exec(native[i]?.step ?? sim[i]?.step ?? '');
  if (m && native[i]?.step === sim[i]?.step) {
    const k = Number(m[1]);
    for (const [name, known] of Object.entries(KNOWN_DIVERGENCES_PENDING_KVM_FIDELITY)) {
      if (known(ops[k]!, native[i]!.out, ops.slice(0, k))) {
        report.knownDivergences[name as KnownDivergence]++;
        return;
      }
    }
  }
  throw new Divergence(
    `sim (${config}) diverges from the real kernel at step ${i}:\n  native: ${JSON.stringify(native[i])}\n  sim:    ${JSON.stringify(sim[i])}\n` +
      `ops: ${JSON.stringify(ops, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`,
  );
}

/** Sim kernels must release everything a sequence opened. */
function assertReleased(sim: SimKvm | undefined, config: string): void {
  const st = sim!.stats();
  const got = [st.vms, st.guestMemfds, st.mappings, st.memory.bytesInUse, st.fds];
  if (got.join() !== '0,0,0,0,3') throw new Error(`sim (${config}) leaked after a sequence: vms, gmems, mappings, bytes, fds = ${got}`);
}

/**
 * Runs `numRuns` random sequences (fast-check `seed` optional) and returns the report; throws (with
 * fast-check's shrunk counterexample) on the first divergence no temporary filter covers.
 */
export function runRandomDiff(numRuns: number, opts: { seed?: number; onProgress?: (done: number) => void } = {}): RandomDiffReport {
  countSyscalls();
  const report: RandomDiffReport = {
    sequences: 0,
    defaultConfigSequences: 0,
    calls: 0,
    reachedKernel: 0,
    byOp: {},
    knownDivergences: { 'issue9-item2-memslot-above-max-gfn': 0, 'issue9-item4-vcpu-outlives-vm-fd': 0 },
    ms: 0,
    seed: opts.seed ?? (Date.now() ^ (Math.random() * 0x7fff_ffff)) | 0,
  };
  const t0 = performance.now();
  fc.assert(
    fc.property(randomSequence, (ops) => {
      // Metering: only the native run's counts go into the report, and only once the sequence passed.
      const local: Array<[string, boolean]> = [];
      let op = '';
      let before = 0;
      const meter: StepMeter = {
        begin: (name) => ((op = name), (before = syscallCount())),
        end: (host) => void local.push([op, host ?? syscallCount() > before]),
      };
      const play = (meterIt: boolean) => ({ name: 'random', run: (s: Parameters<typeof playRandomOps>[0]) => playRandomOps(s, ops, meterIt ? meter : undefined) });
      const native = runScenario(() => openKvm({ driver: 'native' }), play(true));
      let probeSim: SimKvm | undefined;
      const probe = runScenario((): Kvm => (probeSim = openSimKvm({ profile: '6.18', swProtectedVm: false })), play(false));
      compare(ops, native, probe, 'swProtectedVm: false', report);
      assertReleased(probeSim, 'swProtectedVm: false');
      if (!ops.some(isConfigDependent)) {
        let defSim: SimKvm | undefined;
        const def = runScenario((): Kvm => (defSim = openSimKvm({ profile: '6.18' })), play(false));
        compare(ops, native, def, 'default', report);
        assertReleased(defSim, 'default');
        report.defaultConfigSequences++;
      }
      report.sequences++;
      for (const [name, reached] of local) {
        const e = (report.byOp[name] ??= { calls: 0, reached: 0 });
        e.calls++;
        report.calls++;
        if (reached) (e.reached++, report.reachedKernel++);
      }
      opts.onProgress?.(report.sequences);
    }),
    { numRuns, seed: report.seed },
  );
  report.ms = performance.now() - t0;
  return report;
}

/** The report as text: counts, time, the kernel share overall and per operation. */
export function formatReport(r: RandomDiffReport): string {
  const pct = (a: number, b: number) => (b ? ((100 * a) / b).toFixed(1) : '-');
  const lines = [
    `random differential run (seed ${r.seed}): ${r.sequences} sequences (${r.defaultConfigSequences} also on the default sim config), ${r.calls} calls, ${(r.ms / 1000).toFixed(1)} s, 0 divergences outside the temporary filter`,
    `reached the kernel: ${r.reachedKernel}/${r.calls} = ${pct(r.reachedKernel, r.calls)}% (answered by library code before any syscall: ${r.calls - r.reachedKernel})`,
    `first divergences excluded by the TEMPORARY filter KNOWN_DIVERGENCES_PENDING_KVM_FIDELITY: ${JSON.stringify(r.knownDivergences)}`,
    'per operation (calls, % reached the kernel):',
    ...Object.entries(r.byOp)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, e]) => `  ${name.padEnd(12)} ${String(e.calls).padStart(8)}  ${pct(e.reached, e.calls).padStart(5)}%`),
  ];
  return lines.join('\n');
}
