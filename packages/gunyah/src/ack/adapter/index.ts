export * from './gunyah-ack-hypervisor.js';
export * from './register.js';
