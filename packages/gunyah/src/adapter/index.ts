export * from './gunyah-hypervisor.js';
export * from './register.js';
