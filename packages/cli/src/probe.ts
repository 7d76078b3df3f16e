import { HYPERVISOR_REGISTRY } from '@guestmem/core';
import { makeContainer } from './container.js';

/** `guestmem probe`: every registered backend, whether it runs here and why, and what it offers. */
export function probe(log: (s: string) => void = console.log): void {
  const registry = makeContainer().resolve(HYPERVISOR_REGISTRY);
  for (const { provider, result } of registry.probeAll()) {
    log(`${result.available ? '✔' : '✘'} ${provider.id.padEnd(11)} priority ${String(provider.priority).padStart(3)}${provider.fake ? ' (fake)' : ''}  ${provider.description}`);
    log(`  ${result.reason}`);
    if (!result.available) continue;
    const h = provider.create();
    try {
      log(`  capabilities: ${h.capabilities.list().join(', ')}`);
      const raw = Object.entries(h.capabilities.raw).map(([k, v]) => `${k}=${v}`);
      if (raw.length) log(`  raw: ${raw.join(' ')}`);
    } finally {
      h.close();
    }
  }
  try {
    const sel = registry.select();
    log(`auto-selected: ${sel.provider.id}`);
  } catch (e) {
    log(`auto-selection failed: ${(e as Error).message}`);
  }
}
