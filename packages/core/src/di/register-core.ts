import type { DependencyContainer } from 'tsyringe';
import { instanceCachingFactory } from 'tsyringe';
import { ArenaFolioAllocator, type ArenaAllocatorOptions, type FolioAllocator } from '../folio/folio-allocator.js';
import { HypervisorRegistry } from './hypervisor-registry.js';
import { FOLIO_ALLOCATOR, HYPERVISOR, HYPERVISOR_CHOICE, HYPERVISOR_PROVIDER, HYPERVISOR_REGISTRY, HYPERVISOR_STRICT } from './tokens.js';

/** Options of {@link registerCore}. */
export interface RegisterCoreOptions {
  /** Use this allocator (e.g. a FaultInjectingAllocator) instead of a new ArenaFolioAllocator. */
  allocator?: FolioAllocator;
  /** Options for the default allocator. */
  allocatorOptions?: ArenaAllocatorOptions;
  /**
   * Backend id to select (`'kvm'`, `'kvm-sim'`, `'gunyah-sim'`…). Takes precedence over the
   * `GUESTMEM_HYPERVISOR` environment variable, which takes precedence over probing (native first,
   * never a fake, with a warning when it falls back to a simulator).
   */
  hypervisor?: string;
  /** Refuse simulators: `HYPERVISOR` resolves only to real hardware, or fails with ENODEV. */
  strict?: boolean;
}

/**
 * Registers core services in `container`: the shared `FOLIO_ALLOCATOR`, the `HYPERVISOR_REGISTRY`
 * over every `HYPERVISOR_PROVIDER`, and `HYPERVISOR` (the selected backend, created once per
 * container: `opts.hypervisor`, else `GUESTMEM_HYPERVISOR`, else probing; see `HypervisorRegistry`). Call it before or after backend `register…` functions; resolution is lazy.
 */
export function registerCore(container: DependencyContainer, opts: RegisterCoreOptions = {}): DependencyContainer {
  const allocator = opts.allocator ?? new ArenaFolioAllocator(opts.allocatorOptions);
  container.register(FOLIO_ALLOCATOR, { useValue: allocator });
  if (opts.hypervisor !== undefined) container.register(HYPERVISOR_CHOICE, { useValue: opts.hypervisor });
  if (opts.strict !== undefined) container.register(HYPERVISOR_STRICT, { useValue: opts.strict });
  container.register(HYPERVISOR_REGISTRY, {
    useFactory: instanceCachingFactory(
      (c) => new HypervisorRegistry(c.isRegistered(HYPERVISOR_PROVIDER, true) ? c.resolveAll(HYPERVISOR_PROVIDER) : []),
    ),
  });
  container.register(HYPERVISOR, {
    useFactory: instanceCachingFactory((c) => {
      const hypervisor = c.isRegistered(HYPERVISOR_CHOICE, true) ? c.resolve(HYPERVISOR_CHOICE) : undefined;
      const strict = c.isRegistered(HYPERVISOR_STRICT, true) ? c.resolve(HYPERVISOR_STRICT) : false;
      return c.resolve(HYPERVISOR_REGISTRY).open({ hypervisor, strict });
    }),
  });
  return container;
}
