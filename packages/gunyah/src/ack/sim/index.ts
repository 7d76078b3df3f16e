export * from './host.js';
export * from './vm.js';
export * from './cma.js';
export { ACK_BACKEND, ACK_RECLAIM_REFUSED } from './errors.js';
