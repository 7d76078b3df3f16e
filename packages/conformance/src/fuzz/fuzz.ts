/**
 * The fast-check driver: generates sequences, runs each on a target against the model, shrinks the
 * first counterexample and reports how long the run took.
 */
import fc from 'fast-check';
import { sequenceArb, type Cmd, type GenProfile } from './commands.js';
import { FuzzStats, runSequence, show, type FuzzTarget } from './runner.js';

export interface FuzzReport {
  target: string;
  sequences: number;
  commands: number;
  ms: number;
  seed: number;
  /** Outcomes per command kind (including the shrinking runs of a failure). */
  stats: FuzzStats;
  /** The slowest sequence (to keep the run fast). */
  slowest: { ms: number; cmds: Cmd[] };
  /** The shrunk counterexample, when one was found. */
  counterexample?: { cmds: Cmd[]; error: string; path: string };
}

export const DEFAULT_PROFILE: GenProfile = { maxCommands: 24, bigSizes: true };

/** Runs `sequences` random sequences on `target`. */
export function fuzzTarget(target: FuzzTarget, opts: { sequences: number; seed?: number; profile?: GenProfile }): FuzzReport {
  const seed = opts.seed ?? Date.now() ^ (Math.random() * 0x7fffffff);
  const profile = opts.profile ?? DEFAULT_PROFILE;
  let commands = 0;
  const stats = new FuzzStats();
  let slowest: { ms: number; cmds: Cmd[] } = { ms: 0, cmds: [] };
  const t0 = performance.now();
  const details = fc.check(
    fc.property(sequenceArb(profile), (cmds) => {
      commands += cmds.length;
      const t = performance.now();
      try {
        runSequence(target, cmds, stats);
      } finally {
        const dt = performance.now() - t;
        if (dt > slowest.ms) slowest = { ms: dt, cmds };
      }
    }),
    { numRuns: opts.sequences, seed, endOnFailure: false },
  );
  const ms = performance.now() - t0;
  const report: FuzzReport = { target: target.name, sequences: details.numRuns, commands, ms, seed, stats, slowest };
  if (details.failed && details.counterexample) {
    const err = details.errorInstance;
    report.counterexample = {
      cmds: details.counterexample[0],
      error: err instanceof Error ? err.message : String(err),
      path: details.counterexamplePath ?? '',
    };
  }
  return report;
}

/** A report as one line (and the counterexample, ready to paste into a regression test). */
export function formatReport(r: FuzzReport, verbose = false): string {
  const t = r.stats.totals();
  const head = `[fuzz] ${r.target}: ${r.sequences} sequences, ${r.commands} commands (${t.calls} calls, ${Math.round((100 * t.ok) / Math.max(1, t.calls))}% succeeded), ${r.counterexample ? 1 : 0} counterexamples, ${(r.ms / 1000).toFixed(2)} s (seed ${r.seed})`;
  const detail = verbose ? `\n  outcomes: ${r.stats.format()}\n  slowest: ${r.slowest.ms.toFixed(1)} ms ${show(r.slowest.cmds)}` : '';
  if (!r.counterexample) return head + detail;
  return `${head}${detail}\n  commands: ${show(r.counterexample.cmds)}\n  ${r.counterexample.error}`;
}
