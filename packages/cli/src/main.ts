#!/usr/bin/env node
/**
 * The `guestmem` command.
 *   guestmem probe          what this host offers, per backend
 *   guestmem demo [id] [--json]  the main job: a guest, then one scenario, on every available backend
 *   guestmem bench          the benchmarks (same as `pnpm bench`)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { demo } from './demo.js';
import { runGuestDemo } from './guest-demo.js';
import { probe } from './probe.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const [cmd = 'help', arg] = argv.filter((a) => a !== '--json');
switch (cmd) {
  case 'probe':
    probe();
    break;
  case 'demo':
    // --json: the guest demo as one JSON document ({ selected, backends: [...] }).
    if (json) console.log(JSON.stringify(runGuestDemo({ only: arg }), null, 2));
    else demo(console.log, arg);
    break;
  case 'bench': {
    const script = fileURLToPath(new URL('../../../scripts/bench.mjs', import.meta.url));
    process.exitCode = spawnSync(process.execPath, [script], { stdio: 'inherit' }).status ?? 1;
    break;
  }
  default:
    console.log('usage: guestmem probe | demo [backend-id] | bench');
    process.exitCode = cmd === 'help' ? 0 : 2;
}
