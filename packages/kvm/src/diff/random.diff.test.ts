/**
 * Random operation sequences (fast-check, `random-gen.ts`), each played from a fresh system fd on the
 * real kernel and on the simulated one in both configurations; the traces must be equal (see
 * `random-run.ts`).
 * `DIFF_RUNS` sets the number of sequences (default 5,000; the `fuzz:kvm` script runs 100,000).
 * The coverage report is printed; the share of calls that reached the kernel must stay high.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openFds } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';
import { formatReport, runRandomDiff } from './random-run.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm diff] skipping random sequences: ${probe.reason}`);

const numRuns = Number(process.env.DIFF_RUNS ?? 5000);
const seed = process.env.DIFF_SEED === undefined ? undefined : Number(process.env.DIFF_SEED);

describe.skipIf(!probe.available)('sim vs real kernel: random operation sequences', () => {
  let fdsBefore: number[];
  beforeAll(() => {
    fdsBefore = openFds();
  });
  afterAll(() => {
    expect(openFds(), 'fds leaked by the random sequences').toEqual(fdsBefore);
  });

  test(
    `${numRuns} sequences give equal traces on both drivers (both sim configurations)`,
    () => {
      const report = runRandomDiff(numRuns, {
        seed,
        onProgress: (n) => {
          if (n % 10_000 === 0) console.log(`[kvm diff] ${n}/${numRuns} sequences`);
        },
      });
      console.log(formatReport(report));
      // The fuzz:kvm script runs several of these in parallel and adds their reports up.
      if (process.env.DIFF_REPORT_JSON) writeFileSync(process.env.DIFF_REPORT_JSON, JSON.stringify(report));
      expect(report.sequences).toBe(numRuns);
      // Most sequences are also compared on the default configuration (config-dependent ops are rare).
      expect(report.defaultConfigSequences).toBeGreaterThan(numRuns * 0.7);
      // The generated calls mostly reach the kernel rather than the library's own checks.
      expect(report.reachedKernel / report.calls).toBeGreaterThan(0.8);
    },
    // About 25 ms per sequence on the probe machine (mostly the real kernel's VM and memslot work).
    Math.max(300_000, numRuns * 100),
  );
});
