export * from './ioctl.js';
export * from './flags.js';
export * from './structs.js';
export * from './lifecycle.js';
