/**
 * @guestmem/core — the hypervisor-neutral guest-memory library.
 *
 * What KVM's guest_memfd and Gunyah's guest-mem share (upstream's `__kvm_gmem_create` /
 * `kvm_gmem_allocate` idea): a page index, folios, the memory file with bindings and lifetime, the
 * host mapping, typed errno errors, and the neutral `Hypervisor`/`Vm`/`GuestMemory` interfaces with
 * their DI tokens.
 */
import 'reflect-metadata';

export * from './errors/errno.js';
export * from './errors/guest-mem-error.js';
export * from './types/brands.js';
export * from './types/bytes.js';
export * from './page-index/page-index.js';
export * from './folio/folio-allocator.js';
export * from './file/types.js';
export * from './file/guest-mem-file.js';
export * from './mapping/host-mapping.js';
export * from './state/range-state-map.js';
export * from './hypervisor/interfaces.js';
export * from './hypervisor/capabilities.js';
export * from './hypervisor/host-view.js';
export * from './hypervisor/memory-stats.js';
export * from './hypervisor/validate.js';
export * from './lifetime/leak-guard.js';
export * from './hypervisor/vcpu.js';
export * from './hypervisor/shared-view.js';
export * from './guest/program.js';
export * from './guest/image.js';
export * from './guest/interpreter.js';
export * from './guest/interpreted-vcpu.js';
export * from './guest/run-guest.js';
export * from './di/tokens.js';
export * from './di/hypervisor-registry.js';
export * from './di/register-core.js';
export * from './user-memory/user-memory.js';
export * from './user-memory/address-space.js';
export * from './user-memory/memlock.js';
