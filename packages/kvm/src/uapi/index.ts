export * from './ioctl.js';
export * from './constants.js';
export * from './codec-util.js';
export * from './structs.js';
export * from './vcpu-structs.js';
