import type { DependencyContainer } from 'tsyringe';
import { instanceCachingFactory } from 'tsyringe';
import { ArenaFolioAllocator, type ArenaAllocatorOptions, type FolioAllocator } from '../folio/folio-allocator.js';
import { HypervisorRegistry } from './hypervisor-registry.js';
import { FOLIO_ALLOCATOR, HYPERVISOR, HYPERVISOR_CHOICE, HYPERVISOR_PROVIDER, HYPERVISOR_REGISTRY } from './tokens.js';

/** Options of {@link registerCore}. */
export interface RegisterCoreOptions {
  /** Use this allocator (e.g. a FaultInjectingAllocator) instead of a new ArenaFolioAllocator. */
  allocator?: FolioAllocator;
  /** Options for the default allocator. */
  allocatorOptions?: ArenaAllocatorOptions;
  /** Backend id to select; unset means probe (native first, never a fake). */
  hypervisor?: string;
}

/**
 * Registers core services in `container`: the shared `FOLIO_ALLOCATOR`, the `HYPERVISOR_REGISTRY`
 * over every `HYPERVISOR_PROVIDER`, and `HYPERVISOR` (the selected backend, created once per
 * container). Call it before or after backend `register…` functions; resolution is lazy.
 */
export function registerCore(container: DependencyContainer, opts: RegisterCoreOptions = {}): DependencyContainer {
  const allocator = opts.allocator ?? new ArenaFolioAllocator(opts.allocatorOptions);
  container.register(FOLIO_ALLOCATOR, { useValue: allocator });
  if (opts.hypervisor !== undefined) container.register(HYPERVISOR_CHOICE, { useValue: opts.hypervisor });
  container.register(
    HYPERVISOR_REGISTRY,
    {
      useFactory: instanceCachingFactory(
        (c) => new HypervisorRegistry(c.isRegistered(HYPERVISOR_PROVIDER, true) ? c.resolveAll(HYPERVISOR_PROVIDER) : []),
      ),
    },
  );
  container.register(
    HYPERVISOR,
    {
      useFactory: instanceCachingFactory((c) => {
        const choice = c.isRegistered(HYPERVISOR_CHOICE, true) ? c.resolve(HYPERVISOR_CHOICE) : undefined;
        return c.resolve(HYPERVISOR_REGISTRY).open(choice);
      }),
    },
  );
  return container;
}
