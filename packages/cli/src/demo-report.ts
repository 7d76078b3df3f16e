/**
 * `guestmem demo` as the command runs it: which backends, in what order, and a JSON-able result per
 * backend. Two parts per backend: the guest (one `GuestProgram` run through the neutral vCPU, see
 * `guest-demo.ts`) and the API tour (`runScenario` in `demo.ts`).
 */
import { GuestMemError, HYPERVISOR_REGISTRY, type HypervisorRegistry } from '@guestmem/core';
import { makeContainer } from './container.js';
import { runScenario } from './demo.js';
import { renderGuestDemo, runGuestDemo, type GuestDemoBackend } from './guest-demo.js';
import { UsageError } from './usage-error.js';

/** One backend's run. */
export interface DemoRun {
  readonly id: string;
  readonly description: string;
  /** A simulation (no real hypervisor underneath). */
  readonly simulated: boolean;
  /** `skipped`: not available here (only when no backend was named). */
  readonly status: 'passed' | 'failed' | 'skipped';
  /** Why it was skipped or failed. */
  readonly reason?: string;
  /** What the guest did: its exits (`kind` as in `VcpuExit`) and the text on its output port. Absent when skipped. */
  readonly guest?: GuestDemoBackend['guest'];
  /** The guest VM's memory: pages allocated, bound ranges, private/shared pages, faults served. Absent when skipped. */
  readonly memory?: GuestDemoBackend['memory'];
  /** What the API tour printed, line by line. */
  readonly log: readonly string[];
  readonly error?: { readonly name: string; readonly message: string; readonly code?: string };
}

/** `guestmem demo --json`: `{ selected, backends: [{ id, simulated, guest: { exits, output }, memory }] }` plus run status. */
export interface DemoReport {
  /** The backend named with `--hypervisor` (or `GUESTMEM_HYPERVISOR`), else null: every available one ran. */
  readonly requested: string | null;
  /** The backend the guest ran on first (native KVM when usable, else the best simulation), and why; null when none is available. */
  readonly selected: { readonly id: string; readonly reason: string } | null;
  /** Selected first, then the others in registration order. */
  readonly backends: readonly DemoRun[];
  /** True when every backend that ran the guest printed the same output. */
  readonly outputIdentical: boolean;
  /** True when no run failed and at least one passed. */
  readonly ok: boolean;
}

function errorOf(e: unknown): { name: string; message: string; code?: string } {
  return {
    name: e instanceof Error ? e.name : 'Error',
    message: e instanceof Error ? e.message : String(e),
    ...(e instanceof GuestMemError ? { code: e.code } : {}),
  };
}

/**
 * Runs the guest and the scenario on `hypervisor` only, or on every available backend (the best
 * one first). An unknown id is a {@link UsageError}; a named backend that is unavailable is a failed
 * run. `onLine` sees each line as it is produced (the text output).
 */
export function runDemo(opts: { hypervisor?: string } = {}, onLine: (s: string) => void = () => {}): DemoReport {
  const registry = makeContainer().resolve<HypervisorRegistry>(HYPERVISOR_REGISTRY);
  const ids = registry.list().map((p) => p.id);
  const only = opts.hypervisor || undefined;
  if (only !== undefined && !ids.includes(only)) {
    throw new UsageError(`unknown hypervisor '${only}'; registered: ${ids.join(', ')}`);
  }
  onLine(`guestmem demo — backends registered: ${ids.join(', ')}${only ? `; running on ${only}` : ''}`);
  const probes = registry.probeAll();
  const anyAvailable = probes.some(({ provider, result }) => result.available && (only === undefined || provider.id === only));

  // 1. The guest: one program on the best backend, then on every other available one.
  const guest = anyAvailable ? runGuestDemo({ only, registry }) : undefined;
  if (guest) {
    onLine('');
    for (const l of renderGuestDemo(guest).split('\n')) onLine(l);
  }
  const guestOf = new Map((guest?.backends ?? []).map((b) => [b.id, b]));
  const order = [...probes].sort((a, b) => Number(b.provider.id === guest?.selected.id) - Number(a.provider.id === guest?.selected.id));

  // 2. The API tour, per backend.
  onLine('');
  onLine('API tour (the same VMM steps through the neutral API on each backend):');
  const runs: DemoRun[] = [];
  for (const { provider, result } of order) {
    if (only !== undefined && provider.id !== only) continue;
    const base = { id: provider.id, description: provider.description, simulated: provider.simulated ?? false };
    onLine('');
    if (!result.available) {
      const status = only !== undefined ? 'failed' : 'skipped';
      onLine(`== ${provider.id}: ${status === 'failed' ? 'not available' : 'skipped'} (${result.reason})`);
      if (result.hint) onLine(`   hint: ${result.hint}`);
      runs.push({ ...base, status, reason: result.reason, log: [] });
      continue;
    }
    onLine(`== ${provider.id}: ${provider.description}`);
    const g = guestOf.get(provider.id);
    const ran = g ? { simulated: g.simulated, guest: g.guest, memory: g.memory } : {};
    const log: string[] = [];
    const line = (s: string): void => {
      log.push(s);
      onLine(`   ${s}`);
    };
    try {
      if (!g) throw new Error('the guest did not run on this backend');
      if (g.error) throw new Error(`guest: ${g.error}`);
      const h = provider.create();
      try {
        runScenario(h, line);
      } finally {
        h.close();
      }
      runs.push({ ...base, ...ran, status: 'passed', log });
    } catch (e) {
      const error = errorOf(e);
      onLine(`!! ${provider.id} failed: ${error.message}`);
      runs.push({ ...base, ...ran, status: 'failed', reason: error.message, log, error });
    }
  }
  const ok = runs.some((r) => r.status === 'passed') && !runs.some((r) => r.status === 'failed');
  return {
    requested: only ?? null,
    selected: guest?.selected ?? null,
    backends: runs,
    outputIdentical: guest?.outputIdentical ?? false,
    ok,
  };
}
