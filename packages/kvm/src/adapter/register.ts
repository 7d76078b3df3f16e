import { FOLIO_ALLOCATOR, HYPERVISOR_PROVIDER, type FolioAllocator, type HypervisorProvider } from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';
import type { KvmProfile } from '../api.js';
import { openKvm } from '../open.js';
import { SimKernel } from '../sim/kernel.js';
import { probeNativeKvm, type KvmDevice } from '../native/probe.js';
import { SimKvm } from '../sim/kvm.js';
import { KvmHypervisor } from './kvm-hypervisor.js';
import { nativeKvmVcpus } from './kvm-vcpu.js';
import { simKvmExtensions } from './sim-extensions.js';
import { simKvmVcpus } from './sim-vcpu.js';

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
  /**
   * The native driver's KVM device: a path (default `/dev/kvm`) or an fd already open on it, like
   * crosvm's `--hypervisor kvm,device=PATH`. The driver duplicates an fd; the caller keeps its own.
   */
  device?: KvmDevice;
}

/** Options of {@link openKvmHypervisor}. */
export interface OpenKvmHypervisorOptions {
  /** `'native'` (/dev/kvm) or `'sim'` (the simulated kernel). */
  driver: 'native' | 'sim';
  /** Native only: the KVM device, a path (default `/dev/kvm`) or an fd already open on it. */
  device?: KvmDevice;
  /** Sim only: kernel profile (default `'6.18'`). */
  profile?: KvmProfile;
  /** Sim only (default true): `CONFIG_KVM_SW_PROTECTED_VM`; false reproduces the probe machine. */
  swProtectedVm?: boolean;
  /** Sim only: the folio allocator backing the simulated kernel's memory. */
  allocator?: FolioAllocator;
  /** Sim only: the exit a guest access to a released guest_memfd gives (see `SimKernelOptions.releasedMemoryExit`). */
  releasedMemoryExit?: 'memory-fault' | 'mmio';
}

/**
 * A neutral KVM hypervisor on the chosen driver, with that driver's extensions wired in: the
 * simulated kernel comes with guest access and poison injection ('guest-access',
 * 'poison-injection'); native has none. Ids: 'kvm' (native), 'kvm-sim'.
 */
export function openKvmHypervisor(opts: OpenKvmHypervisorOptions): KvmHypervisor {
  if (opts.driver === 'native')
    return new KvmHypervisor(openKvm({ driver: 'native', device: opts.device }), 'kvm', undefined, nativeKvmVcpus);
  const kvm = new SimKvm(
    new SimKernel({
      profile: opts.profile ?? '6.18',
      swProtectedVm: opts.swProtectedVm ?? true,
      allocator: opts.allocator,
      releasedMemoryExit: opts.releasedMemoryExit,
    }),
  );
  return new KvmHypervisor(kvm, 'kvm-sim', simKvmExtensions(kvm), simKvmVcpus);
}

/**
 * The provider of the native driver on `device` (default `/dev/kvm`). Its probe reports the
 * capabilities by name and value, the VM types and the guest_memfd flags in `details`, and a hint
 * when the device is missing (ENOENT), not accessible (EACCES) or not KVM (ENOTTY).
 */
export function nativeKvmProvider(device: KvmDevice = '/dev/kvm'): HypervisorProvider {
  return {
    id: 'kvm',
    priority: 100,
    fake: false,
    simulated: false,
    description: `Linux KVM guest_memfd on the real ${typeof device === 'number' ? `KVM fd ${device}` : device} (koffi)`,
    probe: () => {
      const p = probeNativeKvm(device);
      return {
        available: p.available,
        reason: p.reason,
        ...(p.hint ? { hint: p.hint } : {}),
        cause: p.error,
        details: {
          device: p.device,
          kernel: p.kernel,
          ...(p.code ? { code: p.code } : {}),
          capabilities: p.caps,
          vmTypes: p.vmTypes,
          guestMemfdFlags: p.guestMemfdFlags,
        },
      };
    },
    create: () => openKvmHypervisor({ driver: 'native', device }),
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
    simulated: true,
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
  if (driver === 'auto' || driver === 'native') container.register(HYPERVISOR_PROVIDER, { useValue: nativeKvmProvider(opts.device) });
  if (driver === 'auto' || driver === 'sim') {
    const allocator = () => (container.isRegistered(FOLIO_ALLOCATOR, true) ? container.resolve(FOLIO_ALLOCATOR) : undefined);
    container.register(HYPERVISOR_PROVIDER, { useValue: simKvmProvider(opts.profile, allocator) });
  }
  return container;
}
