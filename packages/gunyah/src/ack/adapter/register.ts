import { FOLIO_ALLOCATOR, HYPERVISOR_PROVIDER, type HypervisorProvider } from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';
import { GunyahAckHypervisor, type GunyahAckHypervisorOptions } from './gunyah-ack-hypervisor.js';

/** Options of {@link registerGunyahAck}. */
export interface RegisterGunyahAckOptions extends Omit<GunyahAckHypervisorOptions, 'allocator'> {
  /** Probe priority (default 9: below gunyah-sim, and below any native driver). */
  priority?: number;
}

/**
 * Registers the simulated Android Common Kernel Gunyah backend as a `HYPERVISOR_PROVIDER` (id
 * `'gunyah-ack-sim'`). Its hypervisors draw folios from the container's `FOLIO_ALLOCATOR` when one
 * is registered.
 */
export function registerGunyahAck(container: DependencyContainer, options: RegisterGunyahAckOptions = {}): DependencyContainer {
  const generation = options.generation ?? 'C';
  const provider: HypervisorProvider = {
    id: 'gunyah-ack-sim',
    priority: options.priority ?? 9,
    fake: false,
    description: `Gunyah as the Android Common Kernel ships it (generation ${generation}: user-memory regions, demand paging, RECLAIM_REGION), simulated in process`,
    probe: () => ({ available: true, reason: 'simulation, always available' }),
    create: () =>
      new GunyahAckHypervisor({
        ...options,
        allocator: container.isRegistered(FOLIO_ALLOCATOR, true) ? container.resolve(FOLIO_ALLOCATOR) : undefined,
      }),
  };
  container.register(HYPERVISOR_PROVIDER, { useValue: provider });
  return container;
}
