/**
 * `guestmem demo` as the command runs it: which backends, in what order, and a JSON-able result per
 * backend. The scenario itself is `runScenario` in `demo.ts`.
 */
import { GuestMemError, HYPERVISOR_REGISTRY } from '@guestmem/core';
import { makeContainer } from './container.js';
import { runScenario } from './demo.js';
import { UsageError } from './usage-error.js';

/** One backend's run. */
export interface DemoRun {
  readonly id: string;
  readonly description: string;
  /** `skipped`: not available here (only when no backend was named). */
  readonly status: 'passed' | 'failed' | 'skipped';
  /** Why it was skipped or failed. */
  readonly reason?: string;
  /** What the scenario printed, line by line. */
  readonly log: readonly string[];
  readonly error?: { readonly name: string; readonly message: string; readonly code?: string };
}

/** `guestmem demo --json`. */
export interface DemoReport {
  /** The backend named with `--hypervisor` (or `GUESTMEM_HYPERVISOR`), else null: every available one ran. */
  readonly requested: string | null;
  readonly backends: readonly DemoRun[];
  /** True when no run failed and at least one passed. */
  readonly ok: boolean;
}

/**
 * Runs the scenario on `hypervisor` only, or on every available backend. An unknown id is a
 * {@link UsageError}; a named backend that is unavailable is a failed run. `onLine` sees each line
 * as it is produced (the text output), prefixed per backend.
 */
export function runDemo(opts: { hypervisor?: string } = {}, onLine: (s: string) => void = () => {}): DemoReport {
  const registry = makeContainer().resolve(HYPERVISOR_REGISTRY);
  const ids = registry.list().map((p) => p.id);
  const only = opts.hypervisor || undefined;
  if (only !== undefined && !ids.includes(only)) {
    throw new UsageError(`unknown hypervisor '${only}'; registered: ${ids.join(', ')}`);
  }
  onLine(`guestmem demo — backends registered: ${ids.join(', ')}${only ? `; running on ${only}` : ''}`);
  const runs: DemoRun[] = [];
  for (const { provider, result } of registry.probeAll()) {
    if (only !== undefined && provider.id !== only) continue;
    onLine('');
    if (!result.available) {
      const status = only !== undefined ? 'failed' : 'skipped';
      onLine(`== ${provider.id}: ${status === 'failed' ? 'not available' : 'skipped'} (${result.reason})`);
      if (result.hint) onLine(`   hint: ${result.hint}`);
      runs.push({ id: provider.id, description: provider.description, status, reason: result.reason, log: [] });
      continue;
    }
    onLine(`== ${provider.id}: ${provider.description}`);
    const log: string[] = [];
    const line = (s: string): void => {
      log.push(s);
      onLine(`   ${s}`);
    };
    try {
      const h = provider.create();
      try {
        runScenario(h, line);
      } finally {
        h.close();
      }
      runs.push({ id: provider.id, description: provider.description, status: 'passed', log });
    } catch (e) {
      const error = {
        name: e instanceof Error ? e.name : 'Error',
        message: e instanceof Error ? e.message : String(e),
        ...(e instanceof GuestMemError ? { code: e.code } : {}),
      };
      onLine(`!! ${provider.id} failed: ${error.message}`);
      runs.push({ id: provider.id, description: provider.description, status: 'failed', reason: error.message, log, error });
    }
  }
  const ok = runs.some((r) => r.status === 'passed') && !runs.some((r) => r.status === 'failed');
  return { requested: only ?? null, backends: runs, ok };
}
