import type { InjectionToken } from 'tsyringe';
import type { FolioAllocator } from '../folio/folio-allocator.js';
import type { Hypervisor } from '../hypervisor/interfaces.js';
import type { HypervisorProvider, HypervisorRegistry } from './hypervisor-registry.js';

/**
 * Every DI token of guestmem, in one place. Inject by token (`@inject(FOLIO_ALLOCATOR)`): esbuild
 * and tsx emit no decorator metadata, and interfaces have no runtime type anyway.
 */

/** The {@link FolioAllocator} shared by every guest-memory file of a container (one accounting). */
export const FOLIO_ALLOCATOR: InjectionToken<FolioAllocator> = Symbol.for('guestmem.FolioAllocator');

/**
 * Multi-registration token: each backend package registers one {@link HypervisorProvider} per
 * driver it offers (`registerKvm`, `registerGunyah`).
 */
export const HYPERVISOR_PROVIDER: InjectionToken<HypervisorProvider> = Symbol.for('guestmem.HypervisorProvider');

/** The {@link HypervisorRegistry} over every registered provider. */
export const HYPERVISOR_REGISTRY: InjectionToken<HypervisorRegistry> = Symbol.for('guestmem.HypervisorRegistry');

/** The selected {@link Hypervisor}: resolves through the registry (explicit choice, else probe). */
export const HYPERVISOR: InjectionToken<Hypervisor> = Symbol.for('guestmem.Hypervisor');

/** Optional: the id of the backend to select (`'kvm'`, `'gunyah-sim'`…); unset means probe. */
export const HYPERVISOR_CHOICE: InjectionToken<string> = Symbol.for('guestmem.HypervisorChoice');

/** Optional: `true` refuses simulated backends when resolving `HYPERVISOR` (see `registerCore`'s `strict`). */
export const HYPERVISOR_STRICT: InjectionToken<boolean> = Symbol.for('guestmem.HypervisorStrict');
