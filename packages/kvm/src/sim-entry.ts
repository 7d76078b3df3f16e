/**
 * `@guestmem/kvm/sim`: the simulated Linux KVM kernel's own classes, for tests and tools that reach
 * past the uAPI-level API (`openKvm({ driver: 'sim' })` from the root export covers the uAPI):
 * guest access without vCPUs, poison injection, memslot and VM state, kernel configs, and the sim
 * extensions of the neutral adapter.
 */
export * from './sim/index.js';
export { simKvmExtensions } from './adapter/sim-extensions.js';
export { SimKvmVcpu, simKvmVcpus } from './adapter/sim-vcpu.js';
