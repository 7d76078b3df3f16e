export * from './gunyah-hypervisor.js';
export * from './register.js';
export * from './guest-controls.js';
