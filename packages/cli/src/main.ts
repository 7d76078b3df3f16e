#!/usr/bin/env node
/**
 * The `guestmem` command: `guestmem probe | demo | bench` (see `guestmem --help`).
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2));
