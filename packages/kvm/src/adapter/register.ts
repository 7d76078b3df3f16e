import { FOLIO_ALLOCATOR, HYPERVISOR_PROVIDER, type FolioAllocator, type HypervisorProvider } from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';
import type { KvmProfile } from '../api.js';
import { openKvm } from '../open.js';
import { SimKernel } from '../sim/kernel.js';
import { probeNativeKvm } from '../native/probe.js';
import { SimKvm } from '../sim/kvm.js';
import { KvmHypervisor } from './kvm-hypervisor.js';
import { simKvmExtensions } from './sim-extensions.js';

/** Options of {@link registerKvm}. */
export interface RegisterKvmOptions {
  /**
   * - `'auto'` (default): register both the native driver (id `'kvm'`, preferred when `/dev/kvm`
   *   offers guest_memfd) and the simulated kernel (id `'kvm-sim'`); the registry's selection says
   *   why native was or was not picked.
   * - `'native'` / `'sim'`: register only that one.
   */
  driver?: 'auto' | 'native' | 'sim';
  /** Simulated kernel profile (default `'6.18'`). */
  profile?: KvmProfile;
}

/** Options of {@link openKvmHypervisor}. */
export interface OpenKvmHypervisorOptions {
  /** `'native'` (/dev/kvm) or `'sim'` (the simulated kernel). */
  driver: 'native' | 'sim';
  /** Sim only: kernel profile (default `'6.18'`). */
  profile?: KvmProfile;
  /** Sim only (default true): `CONFIG_KVM_SW_PROTECTED_VM`; false reproduces the probe machine. */
  swProtectedVm?: boolean;
  /** Sim only: the folio allocator backing the simulated kernel's memory. */
  allocator?: FolioAllocator;
}

/**
 * A neutral KVM hypervisor on the chosen driver, with that driver's extensions wired in: the
 * simulated kernel comes with guest access and poison injection ('guest-access',
 * 'poison-injection'); native has none. Ids: 'kvm' (native), 'kvm-sim'.
 */
export function openKvmHypervisor(opts: OpenKvmHypervisorOptions): KvmHypervisor {
  if (opts.driver === 'native') return new KvmHypervisor(openKvm({ driver: 'native' }), 'kvm');
  const kvm = new SimKvm(new SimKernel({ profile: opts.profile ?? '6.18', swProtectedVm: opts.swProtectedVm ?? true, allocator: opts.allocator }));
  return new KvmHypervisor(kvm, 'kvm-sim', simKvmExtensions(kvm));
}

/** The provider of the native `/dev/kvm` driver. */
export function nativeKvmProvider(): HypervisorProvider {
  return {
    id: 'kvm',
    priority: 100,
    fake: false,
    description: 'Linux KVM guest_memfd on the real /dev/kvm (koffi)',
    probe: () => {
      const p = probeNativeKvm();
      return { available: p.available, reason: p.reason, cause: p.error };
    },
    create: () => openKvmHypervisor({ driver: 'native' }),
  };
}

/**
 * The provider of the simulated kernel: Linux `profile` built with `CONFIG_KVM_SW_PROTECTED_VM`
 * (confidential VMs are `KVM_X86_SW_PROTECTED_VM`), with the sim's guest-access, host-memory and
 * poison extensions wired in ('guest-access', 'poison-injection').
 */
export function simKvmProvider(profile: KvmProfile = '6.18', allocator?: () => FolioAllocator | undefined): HypervisorProvider {
  return {
    id: 'kvm-sim',
    priority: 10,
    fake: false,
    description: `simulated Linux ${profile} KVM guest_memfd with SW_PROTECTED VMs (differentially tested against the real kernel)`,
    probe: () => ({ available: true, reason: `simulation of Linux ${profile}, always available` }),
    create: () => {
      // The container's FOLIO_ALLOCATOR (when registered) backs the simulated kernel's memory, so
      // accounting and fault injection are shared with every other backend of the container.
      return openKvmHypervisor({ driver: 'sim', profile, swProtectedVm: true, allocator: allocator?.() });
    },
  };
}

/**
 * Registers KVM's hypervisor providers under `HYPERVISOR_PROVIDER` (multi-registration). Pair with
 * core's `registerCore(container)` and resolve `HYPERVISOR` or `HYPERVISOR_REGISTRY`.
 */
export function registerKvm(container: DependencyContainer, opts: RegisterKvmOptions = {}): DependencyContainer {
  const driver = opts.driver ?? 'auto';
  if (driver === 'auto' || driver === 'native') container.register(HYPERVISOR_PROVIDER, { useValue: nativeKvmProvider() });
  if (driver === 'auto' || driver === 'sim') {
    const allocator = () => (container.isRegistered(FOLIO_ALLOCATOR, true) ? container.resolve(FOLIO_ALLOCATOR) : undefined);
    container.register(HYPERVISOR_PROVIDER, { useValue: simKvmProvider(opts.profile, allocator) });
  }
  return container;
}
