import { FOLIO_ALLOCATOR, HYPERVISOR_PROVIDER, type HypervisorProvider } from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';
import { GunyahHypervisor, type GunyahHypervisorOptions } from './gunyah-hypervisor.js';

/** Options of {@link registerGunyah}. */
export interface RegisterGunyahOptions extends Omit<GunyahHypervisorOptions, 'allocator'> {
  /** Probe priority (default 10: below any native driver, which ranks ≥ 100). */
  priority?: number;
}

/**
 * Registers the simulated Gunyah backend as a `HYPERVISOR_PROVIDER` (id `'gunyah-sim'`). Its
 * hypervisors draw folios from the container's `FOLIO_ALLOCATOR` when one is registered.
 */
export function registerGunyah(container: DependencyContainer, options: RegisterGunyahOptions = {}): DependencyContainer {
  const provider: HypervisorProvider = {
    id: 'gunyah-sim',
    priority: options.priority ?? 10,
    fake: false,
    simulated: true,
    description: 'Gunyah v17 guest-memory uAPI and Resource Manager, simulated in process (no hardware needed)',
    probe: () => ({ available: true, reason: 'simulation, always available' }),
    create: () =>
      new GunyahHypervisor({
        ...options,
        allocator: container.isRegistered(FOLIO_ALLOCATOR, true) ? container.resolve(FOLIO_ALLOCATOR) : undefined,
      }),
  };
  container.register(HYPERVISOR_PROVIDER, { useValue: provider });
  return container;
}
