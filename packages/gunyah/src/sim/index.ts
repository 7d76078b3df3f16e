export * from './device.js';
export * from './guest-mem.js';
export * from './vm.js';
export * from './vcpu.js';
export { UserMemory } from './user-memory.js';
export * from './page-state.js';
export * from './memparcel.js';
export { BACKEND, RECLAIM_REFUSED } from './errors.js';
