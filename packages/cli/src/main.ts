#!/usr/bin/env node
/**
 * The `guestmem` command.
 *   guestmem probe          what this host offers, per backend
 *   guestmem demo [id]      the main job: one scenario on every available backend
 *   guestmem bench          the benchmarks (same as `pnpm bench`)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { demo } from './demo.js';
import { probe } from './probe.js';

const [cmd = 'help', arg] = process.argv.slice(2);
switch (cmd) {
  case 'probe':
    probe();
    break;
  case 'demo':
    demo(console.log, arg);
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
