/**
 * `guestmem bench`: runs each package's compiled benchmark in its own child process, one after
 * another (never in parallel: benchmarks on shared cores disturb each other).
 *
 * The benchmarks are found next to the installed packages (`@guestmem/core` → `dist/bench/…`), so the
 * command works from a tarball install as well as from the repository. Each child runs in its own
 * process group with `TMPDIR` pointing at a directory of this run: on SIGINT or SIGTERM the whole
 * group is stopped and that directory removed, whatever the child had left in it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A benchmark: a script that prints Markdown tables and, last, one line `JSON {…}`. */
export interface BenchTarget {
  readonly name: string;
  /** The script, as a path or file URL. */
  readonly file: string;
  /** Extra node flags (default `--expose-gc`). */
  readonly nodeArgs?: readonly string[];
}

/** One target's outcome. */
export interface BenchTargetResult {
  readonly name: string;
  /** `missing`: the script is not there (a package built without its benchmark). */
  readonly status: 'passed' | 'failed' | 'missing' | 'interrupted';
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly durationMs: number;
  /** What the benchmark printed, without its JSON line. */
  readonly text: string;
  /** The parsed `JSON {…}` line, when the benchmark printed one. */
  readonly result?: unknown;
  readonly reason?: string;
}

/** `guestmem bench --json`. */
export interface BenchReport {
  readonly targets: readonly BenchTargetResult[];
  /** The signal that stopped the run, if one did. */
  readonly interrupted: NodeJS.Signals | null;
  /** True when every target passed. */
  readonly ok: boolean;
}

/** The benchmarks shipped with the packages, located through module resolution. */
export function defaultTargets(): BenchTarget[] {
  const beside = (pkg: string, rel: string): string => {
    try {
      return fileURLToPath(new URL(rel, import.meta.resolve(pkg)));
    } catch {
      return `${pkg} (not resolvable)/${rel}`;
    }
  };
  return [
    { name: 'core', file: beside('@guestmem/core', './bench/core-bench.js') },
    { name: 'kvm', file: beside('@guestmem/kvm', './bench/kvm-bench.js') },
    // Guests side by side on every backend (native KVM when usable, kvm-sim, gunyah-sim, gunyah-ack-sim): touch,
    // 8-byte guest accesses, 1 MiB host-view copies. This package's own (it needs every backend).
    { name: 'guests', file: fileURLToPath(new URL('./bench/guest-bench.js', import.meta.url)) },
  ];
}

export interface RunBenchOptions {
  /** Receives the benchmarks' text output as it arrives (tables, notes). */
  readonly onText?: (chunk: string) => void;
  /** Receives the benchmarks' stderr (progress lines). Default: this process's stderr. */
  readonly onProgress?: (chunk: string) => void;
  /** Aborting it stops the run like a signal; `reason` should be the signal name. */
  readonly signal?: AbortSignal;
  /** Grace period before SIGKILL after the children were asked to stop (default 5000 ms). */
  readonly killAfterMs?: number;
}

/** Runs `targets` in order; resolves when done or stopped. Never rejects for a failing target. */
export async function runBench(targets: readonly BenchTarget[], opts: RunBenchOptions = {}): Promise<BenchReport> {
  const onText = opts.onText ?? (() => {});
  const onProgress = opts.onProgress ?? ((s: string) => process.stderr.write(s));
  const scratch = mkdtempSync(join(tmpdir(), 'guestmem-bench-'));
  const results: BenchTargetResult[] = [];
  let interrupted: NodeJS.Signals | null = null;
  let current: ChildProcess | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = sig;
    if (current?.pid !== undefined && current.exitCode === null && current.signalCode === null) {
      killGroup(current.pid, 'SIGTERM');
      const pid = current.pid;
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), opts.killAfterMs ?? 5000);
      killTimer.unref();
    }
  };
  const onAbort = (): void => stop((opts.signal?.reason as NodeJS.Signals) ?? 'SIGTERM');
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) onAbort();
  try {
    for (const t of targets) {
      if (interrupted) break;
      if (!existsSync(t.file)) {
        results.push({
          name: t.name,
          status: 'missing',
          exitCode: null,
          signal: null,
          durationMs: 0,
          text: '',
          reason: `no benchmark at ${t.file}`,
        });
        continue;
      }
      const t0 = Date.now();
      let out = '';
      let pending = '';
      const child = spawn(process.execPath, [...(t.nodeArgs ?? ['--expose-gc']), t.file], {
        detached: true, // its own process group: a stop reaches its children too
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TMPDIR: scratch },
      });
      current = child;
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        // Stream complete lines, holding back the JSON line.
        pending += s;
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const l of lines) if (!l.startsWith('JSON ')) onText(`${l}\n`);
      });
      child.stderr!.setEncoding('utf8').on('data', onProgress);
      const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
        child.on('error', (e) => {
          out += `\n${e.message}`;
          resolve([null, null]);
        });
        child.on('close', (c, s) => resolve([c, s]));
      });
      current = undefined;
      if (pending && !pending.startsWith('JSON ')) onText(`${pending}\n`);
      const jsonLine = out
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('JSON '));
      let result: unknown;
      try {
        result = jsonLine ? JSON.parse(jsonLine.slice(5)) : undefined;
      } catch {
        result = undefined;
      }
      const text = out
        .split('\n')
        .filter((l) => !l.startsWith('JSON '))
        .join('\n');
      const status = interrupted ? 'interrupted' : code === 0 ? 'passed' : 'failed';
      results.push({
        name: t.name,
        status,
        exitCode: code,
        signal: sig,
        durationMs: Date.now() - t0,
        text,
        ...(result !== undefined ? { result } : {}),
        ...(status === 'failed' ? { reason: sig ? `killed by ${sig}` : `exited with code ${code}` } : {}),
        ...(status === 'interrupted' ? { reason: `stopped by ${interrupted}` } : {}),
      });
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
    rmSync(scratch, { recursive: true, force: true });
  }
  return { targets: results, interrupted, ok: !interrupted && results.every((r) => r.status === 'passed') };
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // Already gone.
  }
}
