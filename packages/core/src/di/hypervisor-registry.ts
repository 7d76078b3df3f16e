import { injectAll, injectable } from 'tsyringe';
import { gmErr } from '../errors/guest-mem-error.js';
import type { Hypervisor } from '../hypervisor/interfaces.js';
import { HYPERVISOR_PROVIDER } from './tokens.js';

/** Result of probing a provider: can it run here, and why (not). */
export interface ProbeResult {
  readonly available: boolean;
  /** One line a person can act on: "/dev/kvm: permission denied", "simulation, always available". */
  readonly reason: string;
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
  readonly description: string;
  probe(): ProbeResult;
  create(): Hypervisor;
}

/** A selection made by {@link HypervisorRegistry.select}, with the reasoning. */
export interface Selection {
  readonly provider: HypervisorProvider;
  /** Why each provider was or was not picked, in the order considered. */
  readonly considered: ReadonlyArray<{ id: string; result: ProbeResult | 'fake: never auto-selected' }>;
}

/**
 * Chooses a backend: an explicit id first; otherwise probe providers in priority order (native
 * before simulated) and take the first available one. A provider marked `fake` is never
 * auto-selected. An unknown id fails with `ENODEV` naming the registered ids.
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

  /** Probes every provider (for `guestmem probe`). */
  probeAll(): Array<{ provider: HypervisorProvider; result: ProbeResult }> {
    return this.providers.map((provider) => ({ provider, result: provider.probe() }));
  }

  /** Picks a provider; see the class comment. */
  select(id?: string): Selection {
    if (id !== undefined) {
      const p = this.providers.find((x) => x.id === id);
      if (!p) {
        throw gmErr('ENODEV', 'select', 'core', `no hypervisor backend '${id}'; registered: ${this.ids()}`, {
          info: { requested: id, registered: this.providers.map((x) => x.id) },
        });
      }
      const result = p.probe();
      if (!result.available) {
        throw gmErr('ENODEV', 'select', 'core', `hypervisor backend '${id}' is not available here: ${result.reason}`, {
          info: { requested: id, reason: result.reason },
          cause: result.cause,
        });
      }
      return { provider: p, considered: [{ id, result }] };
    }
    const considered: Array<{ id: string; result: ProbeResult | 'fake: never auto-selected' }> = [];
    for (const p of this.providers) {
      if (p.fake) {
        considered.push({ id: p.id, result: 'fake: never auto-selected' });
        continue;
      }
      const result = p.probe();
      considered.push({ id: p.id, result });
      if (result.available) return { provider: p, considered };
    }
    const why = considered.map((c) => `${c.id}: ${typeof c.result === 'string' ? c.result : c.result.reason}`).join('; ');
    // The cause is the preferred (first considered) backend's failure, e.g. /dev/kvm's EACCES.
    const cause = considered.map((c) => (typeof c.result === 'string' ? undefined : c.result.cause)).find((x) => x !== undefined);
    throw gmErr('ENODEV', 'select', 'core', `no hypervisor backend is available (${why || 'none registered'})`, {
      info: { considered },
      cause,
    });
  }

  /** Selects and creates a hypervisor. */
  open(id?: string): Hypervisor {
    return this.select(id).provider.create();
  }

  private ids(): string {
    return this.providers.length ? this.providers.map((p) => `'${p.id}'`).join(', ') : '(none)';
  }
}
