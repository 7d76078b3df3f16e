import { injectAll, injectable } from 'tsyringe';
import { gmErr } from '../errors/guest-mem-error.js';
import type { Hypervisor } from '../hypervisor/interfaces.js';
import { HYPERVISOR_PROVIDER } from './tokens.js';

/** Result of probing a provider: can it run here, and why (not). */
export interface ProbeResult {
  readonly available: boolean;
  /** One line a person can act on: "/dev/kvm: permission denied", "simulation, always available". */
  readonly reason: string;
  /** What to do about it, where one action helps (e.g. "add your user to the kvm group"). */
  readonly hint?: string;
  /**
   * Backend-specific facts for `guestmem probe --json`, JSON-serialisable: capabilities by name and
   * value, VM types, the device path, the errno of a failed open…
   */
  readonly details?: Readonly<Record<string, unknown>>;
  /** The error that made the backend unavailable (e.g. `open("/dev/kvm")`'s EACCES), if one did. */
  readonly cause?: unknown;
}

/**
 * What a backend package registers (multi-registration under `HYPERVISOR_PROVIDER`): a factory with
 * a probe and a selection priority.
 */
export interface HypervisorProvider {
  /** Unique id, used for explicit selection: `'kvm'`, `'kvm-sim'`, `'gunyah-sim'`. */
  readonly id: string;
  /** Higher is preferred when probing. Real hardware drivers rank above simulations. */
  readonly priority: number;
  /** A fake or fault-injecting backend: selectable by id, never auto-selected. */
  readonly fake: boolean;
  /**
   * A simulator (in-process model of a hypervisor) rather than a driver of real hardware. Auto-selection
   * warns (`process.emitWarning`, code `GUESTMEM_SIMULATOR_FALLBACK`) when it falls back to one because
   * a real backend is unavailable, and `strict` selection refuses it. Unset means not simulated.
   */
  readonly simulated?: boolean;
  readonly description: string;
  probe(): ProbeResult;
  create(): Hypervisor;
}

/** Where a selection came from: the caller's option, the `GUESTMEM_HYPERVISOR` variable, or probing. */
export type SelectionSource = 'option' | 'env' | 'probe';

/** Why a provider was skipped without probing it. */
export type SkipReason = 'fake: never auto-selected' | 'simulator: refused by strict selection';

/** A selection made by {@link HypervisorRegistry.select}, with the reasoning. */
export interface Selection {
  readonly provider: HypervisorProvider;
  /** Why each provider was or was not picked, in the order considered. */
  readonly considered: ReadonlyArray<{ id: string; result: ProbeResult | SkipReason }>;
  /** How the choice was made. */
  readonly source: SelectionSource;
  /** One sentence: why this provider (e.g. "GUESTMEM_HYPERVISOR=gunyah-sim", "highest-priority available"). */
  readonly reason: string;
}

/** Options of {@link HypervisorRegistry.select}. */
export interface SelectOptions {
  /**
   * Backend id to select. Takes precedence over `GUESTMEM_HYPERVISOR`, which takes precedence over
   * probing. An empty string counts as unset.
   */
  readonly hypervisor?: string;
  /** Refuse simulators, whether chosen explicitly or by probing (default false). */
  readonly strict?: boolean;
  /** Environment to read `GUESTMEM_HYPERVISOR` from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The environment variable naming the backend to use, like `registerCore(c, { hypervisor })`. */
export const HYPERVISOR_ENV = 'GUESTMEM_HYPERVISOR';

/** The `code` of the warning emitted when auto-selection falls back from real hardware to a simulator. */
export const SIMULATOR_FALLBACK_WARNING = 'GUESTMEM_SIMULATOR_FALLBACK';

/**
 * Chooses a backend, never silently:
 * 1. an explicit id (`select({ hypervisor })`, or `registerCore(c, { hypervisor })`);
 * 2. else the `GUESTMEM_HYPERVISOR` environment variable;
 * 3. else probe providers in priority order (native before simulated) and take the first available
 *    one. A provider marked `fake` is never auto-selected. Falling back to a `simulated` provider
 *    because a real one is unavailable emits a `process.emitWarning` (code
 *    `GUESTMEM_SIMULATOR_FALLBACK`) with the real one's reason.
 *
 * With `strict`, simulators are refused in every case. An unknown id fails with `ENODEV` naming the
 * registered ids; an unavailable or refused one with `ENODEV` and the reason.
 */
@injectable()
export class HypervisorRegistry {
  private readonly providers: HypervisorProvider[];

  constructor(@injectAll(HYPERVISOR_PROVIDER) providers: HypervisorProvider[]) {
    const seen = new Set<string>();
    for (const p of providers) {
      if (seen.has(p.id)) throw gmErr('EEXIST', 'register', 'core', `hypervisor provider '${p.id}' is registered twice`);
      seen.add(p.id);
    }
    this.providers = [...providers].sort((a, b) => b.priority - a.priority);
  }

  /** Registered providers, highest priority first. */
  list(): readonly HypervisorProvider[] {
    return this.providers;
  }

  /** Probes every provider (for `guestmem probe`). Never throws: a probe that throws is reported unavailable. */
  probeAll(): Array<{ provider: HypervisorProvider; result: ProbeResult }> {
    return this.providers.map((provider) => ({ provider, result: safeProbe(provider) }));
  }

  /** Picks a provider; see the class comment. A string is the same as `{ hypervisor: id }`. */
  select(choice?: string | SelectOptions): Selection {
    const opts: SelectOptions = typeof choice === 'string' ? { hypervisor: choice } : (choice ?? {});
    const env = opts.env ?? process.env;
    const strict = opts.strict ?? false;
    const fromEnv = env[HYPERVISOR_ENV];
    const [id, source] = opts.hypervisor
      ? ([opts.hypervisor, 'option'] as const)
      : fromEnv
        ? ([fromEnv, 'env'] as const)
        : ([undefined, 'probe'] as const);
    if (id !== undefined) {
      const how = source === 'env' ? `${HYPERVISOR_ENV}=${id}` : `hypervisor: '${id}'`;
      const p = this.providers.find((x) => x.id === id);
      if (!p) {
        throw gmErr('ENODEV', 'select', 'core', `no hypervisor backend '${id}' (${how}); registered: ${this.ids()}`, {
          info: { requested: id, source, registered: this.providers.map((x) => x.id) },
        });
      }
      if (strict && p.simulated) {
        throw gmErr('ENODEV', 'select', 'core', `hypervisor backend '${id}' (${how}) is a simulator, refused by strict selection`, {
          info: { requested: id, source, strict },
        });
      }
      const result = safeProbe(p);
      if (!result.available) {
        throw gmErr('ENODEV', 'select', 'core', `hypervisor backend '${id}' (${how}) is not available here: ${result.reason}`, {
          info: { requested: id, source, reason: result.reason, hint: result.hint },
          cause: result.cause,
        });
      }
      return { provider: p, considered: [{ id, result }], source, reason: `chosen explicitly (${how})` };
    }
    const considered: Array<{ id: string; result: ProbeResult | SkipReason }> = [];
    for (const p of this.providers) {
      if (p.fake) {
        considered.push({ id: p.id, result: 'fake: never auto-selected' });
        continue;
      }
      if (strict && p.simulated) {
        considered.push({ id: p.id, result: 'simulator: refused by strict selection' });
        continue;
      }
      const result = safeProbe(p);
      considered.push({ id: p.id, result });
      if (!result.available) continue;
      const passedOver = considered.filter(
        (c) => typeof c.result !== 'string' && !c.result.available && !this.providers.find((x) => x.id === c.id)?.simulated,
      );
      let reason = `highest-priority available backend (priority ${p.priority})`;
      if (p.simulated && passedOver.length) {
        const why = passedOver.map((c) => `'${c.id}': ${(c.result as ProbeResult).reason}`).join('; ');
        reason = `fell back to a simulator because ${why}`;
        process.emitWarning(
          `guestmem selected the simulator '${p.id}' because ${why}. Set ${HYPERVISOR_ENV}=${p.id} (or registerCore(c, { hypervisor: '${p.id}' })) to choose it explicitly, or strict: true to refuse simulators.`,
          { code: SIMULATOR_FALLBACK_WARNING },
        );
      }
      return { provider: p, considered, source: 'probe', reason };
    }
    const why = considered.map((c) => `${c.id}: ${typeof c.result === 'string' ? c.result : c.result.reason}`).join('; ');
    // The cause is the preferred (first considered) backend's failure, e.g. /dev/kvm's EACCES.
    const cause = considered.map((c) => (typeof c.result === 'string' ? undefined : c.result.cause)).find((x) => x !== undefined);
    throw gmErr('ENODEV', 'select', 'core', `no hypervisor backend is available (${why || 'none registered'})`, {
      info: { considered, strict },
      cause,
    });
  }

  /** Selects and creates a hypervisor. */
  open(choice?: string | SelectOptions): Hypervisor {
    return this.select(choice).provider.create();
  }

  private ids(): string {
    return this.providers.length ? this.providers.map((p) => `'${p.id}'`).join(', ') : '(none)';
  }
}

/** A provider's probe, with a throwing probe reported as unavailable instead. */
function safeProbe(p: HypervisorProvider): ProbeResult {
  try {
    return p.probe();
  } catch (e) {
    return { available: false, reason: `probe failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}
