import { arch, platform, release } from 'node:os';
import { HYPERVISOR_ENV, HYPERVISOR_REGISTRY, type SelectOptions } from '@guestmem/core';
import { detectHostVirtualization, type HostVirtualization } from '@guestmem/kvm';
import { makeContainer } from './container.js';

/** One backend's answer in {@link ProbeReport}. */
export interface BackendProbe {
  readonly id: string;
  readonly available: boolean;
  readonly reason: string;
  readonly hint?: string;
  readonly priority: number;
  readonly simulated: boolean;
  readonly fake: boolean;
  readonly description: string;
  /** Neutral capabilities of a created hypervisor (available backends only). */
  readonly capabilities?: readonly string[];
  /** Backend-specific values (`Capabilities.raw`). */
  readonly raw?: Readonly<Record<string, unknown>>;
  /** The provider's probe details: for KVM the capabilities by name and value, VM types, guest_memfd flags. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Creating the hypervisor to read its capabilities failed. */
  readonly error?: string;
}

/** `guestmem probe --json`: one document. */
export interface ProbeReport {
  /** The backend selection picks here (`null` when none is available), and why. */
  readonly selected: string | null;
  readonly selection: {
    readonly source: 'option' | 'env' | 'probe' | null;
    readonly reason: string;
    readonly strict: boolean;
  };
  readonly backends: readonly BackendProbe[];
  readonly host: {
    readonly platform: string;
    readonly arch: string;
    readonly kernel: string;
    readonly node: string;
    readonly virtualization: HostVirtualization;
    /** `GUESTMEM_HYPERVISOR`, when set. */
    readonly env: Readonly<Record<string, string>>;
  };
}

/**
 * Probes every backend and the host. Never throws: a backend that fails to probe or to create is
 * reported with the reason, and a failed selection gives `selected: null` with the reason.
 */
export function probeReport(opts: SelectOptions = {}): ProbeReport {
  const registry = makeContainer().resolve(HYPERVISOR_REGISTRY);
  const backends: BackendProbe[] = registry.probeAll().map(({ provider, result }) => {
    const base = {
      id: provider.id,
      available: result.available,
      reason: result.reason,
      ...(result.hint ? { hint: result.hint } : {}),
      priority: provider.priority,
      simulated: provider.simulated ?? false,
      fake: provider.fake,
      description: provider.description,
      ...(result.details ? { details: result.details } : {}),
    };
    if (!result.available) return base;
    try {
      const h = provider.create();
      try {
        return { ...base, capabilities: h.capabilities.list(), raw: jsonSafe(h.capabilities.raw) as Record<string, unknown> };
      } finally {
        h.close();
      }
    } catch (e) {
      return { ...base, error: e instanceof Error ? e.message : String(e) };
    }
  });
  let selected: string | null = null;
  let selection: ProbeReport['selection'];
  const strict = opts.strict ?? false;
  // The warning a fallback emits is for programs; probe reports the same reason in the document.
  const emit = process.emitWarning;
  process.emitWarning = () => {};
  try {
    const sel = registry.select(opts);
    selected = sel.provider.id;
    selection = { source: sel.source, reason: sel.reason, strict };
  } catch (e) {
    selection = { source: null, reason: e instanceof Error ? e.message : String(e), strict };
  } finally {
    process.emitWarning = emit;
  }
  const env = opts.env ?? process.env;
  return {
    selected,
    selection,
    backends,
    host: {
      platform: platform(),
      arch: arch(),
      kernel: release(),
      node: process.version,
      virtualization: detectHostVirtualization(),
      env: env[HYPERVISOR_ENV] ? { [HYPERVISOR_ENV]: env[HYPERVISOR_ENV]! } : {},
    },
  };
}

/** The human-readable form of a {@link ProbeReport}. */
export function formatProbe(r: ProbeReport): string[] {
  const out: string[] = [];
  const v = r.host.virtualization;
  out.push(`host: ${r.host.platform} ${r.host.arch}, kernel ${r.host.kernel}, node ${r.host.node}`);
  out.push(`virtualization: ${v.kind}${v.nested ? ' (nested: the CPU reports a hypervisor)' : ''} — ${v.evidence}`);
  out.push('');
  for (const b of r.backends) {
    const tags = [b.simulated ? 'simulator' : '', b.fake ? 'fake' : ''].filter(Boolean).join(', ');
    out.push(
      `${b.available ? '✔' : '✘'} ${b.id.padEnd(14)} priority ${String(b.priority).padStart(3)}${tags ? ` (${tags})` : ''}  ${b.description}`,
    );
    out.push(`  ${b.reason}`);
    if (b.hint) out.push(`  hint: ${b.hint}`);
    const d = b.details as { capabilities?: Record<string, number>; vmTypes?: string[]; guestMemfdFlags?: string[] } | undefined;
    if (d?.capabilities && Object.keys(d.capabilities).length) {
      out.push(
        `  KVM capabilities: ${Object.entries(d.capabilities)
          .map(([k, n]) => `${k}=${n}`)
          .join(' ')}`,
      );
      out.push(`  VM types: ${d.vmTypes?.join(', ') || 'none'}`);
      out.push(`  guest_memfd flags: ${d.guestMemfdFlags?.join(', ') || 'none'}`);
    }
    if (b.capabilities) out.push(`  capabilities: ${b.capabilities.join(', ')}`);
    const raw = Object.entries(b.raw ?? {}).map(([k, x]) => `${k}=${String(x)}`);
    if (raw.length) out.push(`  raw: ${raw.join(' ')}`);
    if (b.error) out.push(`  error creating it: ${b.error}`);
  }
  out.push('');
  out.push(r.selected ? `selected: ${r.selected} — ${r.selection.reason}` : `selection failed: ${r.selection.reason}`);
  return out;
}

/** `guestmem probe` (text). */
export function probe(log: (s: string) => void = console.log, opts: SelectOptions = {}): void {
  for (const line of formatProbe(probeReport(opts))) log(line);
}

/** bigint → decimal string, so the document is plain JSON. */
export function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonSafe(x)]));
  return v;
}
