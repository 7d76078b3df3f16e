/**
 * The `guestmem` command line, on commander.
 *
 * Exit codes: 0 success, 1 failure (a backend or benchmark failed, nothing available), 2 bad usage
 * (unknown command, option or backend id; a missing argument). `--help` on any command prints its
 * help and exits 0 without running it. A bench stopped by SIGINT/SIGTERM exits 128 + the signal
 * number (130/143), like a shell.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { runBench, defaultTargets, type BenchTarget } from './bench.js';
import { runDemo } from './demo-report.js';
import { formatProbe, probeReport } from './probe.js';
import { UsageError } from './usage-error.js';

/** Where the command writes; tests capture it. */
export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

const processIo: CliIo = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The version in this package's package.json. */
export function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Test seams of {@link runCli}. */
export interface CliHooks {
  /** Benchmarks to run (default: the installed packages' benchmarks). */
  benchTargets?: () => BenchTarget[];
  /** Signals that stop a bench (default SIGINT and SIGTERM of this process). */
  benchSignal?: AbortSignal;
}

/**
 * Builds the program. Actions set `state.code`; commander's own exits (help, version, usage errors)
 * come back as a CommanderError through `exitOverride`.
 */
function build(io: CliIo, state: { code: number }, hooks: CliHooks): Command {
  const json = (v: unknown): void => io.stdout(`${JSON.stringify(v, null, 2)}\n`);
  const program = new Command('guestmem')
    .description('guest-private VM memory across hypervisors: probe this host, run the demo, run the benchmarks')
    .version(cliVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help (never runs the command)')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Backend selection: --hypervisor <id>, else the GUESTMEM_HYPERVISOR environment variable, else probing
(native first; a warning when it falls back to a simulator).
Exit codes: 0 success, 1 failure, 2 bad usage.`,
    );

  program
    .command('probe')
    .description(
      'what this host offers: every backend with its reason and hint, KVM capabilities, VM types, guest_memfd flags, host virtualization kind, and the selection',
    )
    .option('--json', 'print one JSON document { selected, backends, host }')
    .option('--strict', 'refuse simulators when selecting')
    .action((o: { json?: boolean; strict?: boolean }) => {
      const report = probeReport({ strict: o.strict ?? false });
      if (o.json) json(report);
      else io.stdout(`${formatProbe(report).join('\n')}\n`);
      state.code = report.selected ? EXIT_OK : EXIT_FAILURE;
    });

  program
    .command('demo')
    .description('the main job: one VMM scenario, written once against the neutral API, on every available backend (or the one named)')
    .addOption(
      new Option('--hypervisor <id>', 'run on this backend only (default: $GUESTMEM_HYPERVISOR, else every available one)').env(
        'GUESTMEM_HYPERVISOR',
      ),
    )
    .option('--json', 'print the result as one JSON document instead of the log')
    .action((o: { hypervisor?: string; json?: boolean }) => {
      const report = runDemo({ hypervisor: o.hypervisor }, o.json ? undefined : (s) => io.stdout(`${s}\n`));
      if (o.json) json(report);
      state.code = report.ok ? EXIT_OK : EXIT_FAILURE;
    });

  program
    .command('bench')
    .description('run the benchmarks of the installed packages, one after another, and print their tables')
    .argument('[targets...]', 'which benchmarks (core, kvm, guests); default all')
    .option('--json', 'print one JSON document with every result instead of the tables')
    .option('--no-fail', 'exit 0 even when a benchmark fails')
    .action(async (names: string[], o: { json?: boolean; fail: boolean }) => {
      const all = (hooks.benchTargets ?? defaultTargets)();
      const unknown = names.filter((n) => !all.some((t) => t.name === n));
      if (unknown.length) throw new UsageError(`unknown benchmark ${unknown.join(', ')}; available: ${all.map((t) => t.name).join(', ')}`);
      const targets = names.length ? all.filter((t) => names.includes(t.name)) : all;
      const report = await withStopSignal(hooks.benchSignal, (signal) =>
        runBench(targets, {
          signal,
          onText: o.json ? undefined : io.stdout,
          onProgress: io.stderr,
        }),
      );
      if (o.json) json(report);
      else {
        for (const t of report.targets)
          if (t.status !== 'passed') io.stderr(`bench ${t.name}: ${t.status}${t.reason ? ` (${t.reason})` : ''}\n`);
      }
      if (report.interrupted) state.code = 128 + (report.interrupted === 'SIGINT' ? 2 : 15);
      else state.code = report.ok || !o.fail ? EXIT_OK : EXIT_FAILURE;
    });

  return program;
}

/** Runs `fn` with an AbortSignal that SIGINT/SIGTERM (or the given signal) abort with the signal's name. */
async function withStopSignal<T>(given: AbortSignal | undefined, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
  if (given) return fn(given);
  const ac = new AbortController();
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const h = (): void => ac.abort(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  try {
    return await fn(ac.signal);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

/** Runs the command line `argv` (without `node` and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo, hooks: CliHooks = {}): Promise<number> {
  const state = { code: EXIT_OK };
  const program = build(io, state, hooks);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return state.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version: success; everything else commander reports is bad usage. `guestmem` with
      // no command prints the help on stderr with code 'commander.help' and exitCode 1: bad usage
      // (`guestmem help <command>` has the same code with exitCode 0).
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK;
      if (e.code === 'commander.help') return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      io.stderr(`error: ${e.message}\n`);
      return EXIT_USAGE;
    }
    io.stderr(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_FAILURE;
  }
}
