import type { Capabilities, CapabilityName } from './interfaces.js';

/** Builds a frozen {@link Capabilities} object from a set of names and fields. */
export function makeCapabilities(init: {
  backend: string;
  simulated: boolean;
  caps: Iterable<CapabilityName>;
  pageSizes?: readonly number[];
  maxGuestMemorySize: bigint;
  raw?: Record<string, number | bigint | string | boolean>;
}): Capabilities {
  const set = new Set(init.caps);
  const list = Object.freeze([...set].sort());
  return Object.freeze({
    backend: init.backend,
    simulated: init.simulated,
    has: (c: CapabilityName) => set.has(c),
    list: () => list,
    pageSizes: Object.freeze([...(init.pageSizes ?? [4096])]),
    maxGuestMemorySize: init.maxGuestMemorySize,
    raw: Object.freeze({ ...(init.raw ?? {}) }),
  });
}
