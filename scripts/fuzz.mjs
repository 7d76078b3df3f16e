#!/usr/bin/env node
// `pnpm fuzz`: the model-based fuzzer of the neutral API (packages/conformance/src/fuzz) with
// FUZZ_SEQUENCES sequences per backend (default 100,000; the test command runs 1,000): the
// simulated backends and toyvisor, then native /dev/kvm (skipped with the reason when unusable).
// Prints each backend's line (sequences, calls, counterexamples, time) and the total run time.
// FUZZ_TARGET=<name part> runs only the matching backends (vitest -t).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const sequences = process.env.FUZZ_SEQUENCES ?? '100000';
const t0 = performance.now();
let failed = 0;
for (const [project, file] of [
  ['unit', 'packages/conformance/src/fuzz/fuzz.test.ts'],
  ['native', 'packages/conformance/src/fuzz/fuzz.native.test.ts'],
]) {
  const filter = process.env.FUZZ_TARGET ? ['-t', process.env.FUZZ_TARGET] : [];
  const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--project', project, file, ...filter], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, FUZZ_SEQUENCES: sequences },
  });
  if (r.status !== 0) failed++;
}
const s = (performance.now() - t0) / 1000;
console.log(
  `\n[fuzz] ${sequences} sequences per backend: ${failed ? 'COUNTEREXAMPLES FOUND (see above)' : '0 counterexamples'}; total run time ${s.toFixed(1)} s`,
);
process.exitCode = failed ? 1 : 0;
