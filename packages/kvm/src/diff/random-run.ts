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

/** Thrown (inside the fast-check property) for a divergence. */
export class Divergence extends Error {}

/** Compares a sim trace with the native one: equal, or a {@link Divergence}. */
function compare(ops: readonly RandomOp[], native: readonly TraceStep[], sim: readonly TraceStep[], config: string): void {
  const i = firstDifference(native, sim);
  if (i < 0) return;
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
 * fast-check's shrunk counterexample) on the first divergence.
 */
export function runRandomDiff(numRuns: number, opts: { seed?: number; onProgress?: (done: number) => void } = {}): RandomDiffReport {
  countSyscalls();
  const report: RandomDiffReport = {
    sequences: 0,
    defaultConfigSequences: 0,
    calls: 0,
    reachedKernel: 0,
    byOp: {},
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
      const play = (meterIt: boolean) => ({
        name: 'random',
        run: (s: Parameters<typeof playRandomOps>[0]) => playRandomOps(s, ops, meterIt ? meter : undefined),
      });
      const native = runScenario(() => openKvm({ driver: 'native' }), play(true));
      let probeSim: SimKvm | undefined;
      const probe = runScenario((): Kvm => (probeSim = openSimKvm({ profile: '6.18', swProtectedVm: false })), play(false));
      compare(ops, native, probe, 'swProtectedVm: false');
      assertReleased(probeSim, 'swProtectedVm: false');
      if (!ops.some(isConfigDependent)) {
        let defSim: SimKvm | undefined;
        const def = runScenario((): Kvm => (defSim = openSimKvm({ profile: '6.18' })), play(false));
        compare(ops, native, def, 'default');
        assertReleased(defSim, 'default');
        report.defaultConfigSequences++;
      }
      report.sequences++;
      for (const [name, reached] of local) {
        const e = (report.byOp[name] ??= { calls: 0, reached: 0 });
        e.calls++;
        report.calls++;
        if (reached) e.reached++, report.reachedKernel++;
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
    `random differential run (seed ${r.seed}): ${r.sequences} sequences (${r.defaultConfigSequences} also on the default sim config), ${r.calls} calls, ${(r.ms / 1000).toFixed(1)} s, 0 divergences`,
    `reached the kernel: ${r.reachedKernel}/${r.calls} = ${pct(r.reachedKernel, r.calls)}% (answered by library code before any syscall: ${r.calls - r.reachedKernel})`,
    'per operation (calls, % reached the kernel):',
    ...Object.entries(r.byOp)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, e]) => `  ${name.padEnd(12)} ${String(e.calls).padStart(8)}  ${pct(e.reached, e.calls).padStart(5)}%`),
  ];
  return lines.join('\n');
}
