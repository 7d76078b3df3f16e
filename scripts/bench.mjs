#!/usr/bin/env node
// `pnpm bench`: runs every package's compiled benchmark one after another (never in parallel:
// these machines have 2 noisy cores) and prints their tables. Benchmarks never run in `pnpm test`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const benches = [
  ['@guestmem/core', 'packages/core/dist/bench/core-bench.js'],
  ['@guestmem/kvm', 'packages/kvm/dist/bench/kvm-bench.js'],
  ['guests (native KVM, kvm-sim, gunyah-sim)', 'packages/cli/dist/bench/guest-bench.js'],
];
let failed = 0;
for (const [name, file] of benches) {
  const path = root + file;
  console.log(`\n## ${name}\n`);
  if (!existsSync(path)) {
    console.log(`(no benchmark built at ${file})`);
    continue;
  }
  const r = spawnSync(process.execPath, ['--expose-gc', path], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
