#!/usr/bin/env node
/**
 * `npm run fuzz:kvm`: the random differential run of @guestmem/kvm (packages/kvm/src/diff) at
 * 100,000 sequences (FUZZ_RUNS), split over FUZZ_WORKERS (default 4) vitest processes with
 * consecutive seeds. The real kernel's time goes mostly to sleeping in VM and memslot teardown, so
 * parallel workers finish much sooner even on two cores. Prints each worker's report and the totals;
 * exits non-zero if any worker found a divergence (its shrunk counterexample is in its output).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const runs = Number(process.env.FUZZ_RUNS ?? 100_000);
const workers = Number(process.env.FUZZ_WORKERS ?? 4);
const baseSeed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000_000);
const dir = mkdtempSync(join(tmpdir(), 'guestmem-fuzz-'));
const t0 = performance.now();

function worker(k) {
  const n = Math.floor(runs / workers) + (k < runs % workers ? 1 : 0);
  const env = { ...process.env, DIFF_RUNS: String(n), DIFF_SEED: String(baseSeed + k), DIFF_REPORT_JSON: join(dir, `w${k}.json`) };
  return new Promise((resolve) => {
    const child = spawn('npx', ['vitest', 'run', '--project', 'native', 'packages/kvm/src/diff/random.diff.test.ts'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ k, n, code, out }));
  });
}

const results = await Promise.all(Array.from({ length: workers }, (_, k) => worker(k)));
const total = { sequences: 0, defaultConfigSequences: 0, calls: 0, reachedKernel: 0, byOp: {} };
let failed = false;
for (const r of results) {
  console.log(`--- worker ${r.k} (seed ${baseSeed + r.k}, ${r.n} sequences): exit ${r.code}`);
  if (r.code !== 0) {
    failed = true;
    console.log(r.out);
    continue;
  }
  const rep = JSON.parse(readFileSync(join(dir, `w${r.k}.json`), 'utf8'));
  for (const key of ['sequences', 'defaultConfigSequences', 'calls', 'reachedKernel']) total[key] += rep[key];
  for (const [op, e] of Object.entries(rep.byOp)) {
    const t = (total.byOp[op] ??= { calls: 0, reached: 0 });
    t.calls += e.calls;
    t.reached += e.reached;
  }
}
rmSync(dir, { recursive: true, force: true });
const pct = (a, b) => (b ? ((100 * a) / b).toFixed(1) : '-');
console.log(
  `\nfuzz:kvm total: ${total.sequences}/${runs} sequences (${total.defaultConfigSequences} also on the default sim config), ${total.calls} calls, ${((performance.now() - t0) / 1000).toFixed(0)} s wall with ${workers} workers`,
);
console.log(`divergences: ${failed ? 'FOUND (see the failing worker above)' : 0}`);
console.log(`reached the kernel: ${total.reachedKernel}/${total.calls} = ${pct(total.reachedKernel, total.calls)}%`);
for (const [op, e] of Object.entries(total.byOp).sort(([a], [b]) => a.localeCompare(b)))
  console.log(`  ${op.padEnd(12)} ${String(e.calls).padStart(9)}  ${pct(e.reached, e.calls).padStart(5)}%`);
process.exit(failed ? 1 : 0);
