export * from './errors/errno.js';
export * from './errors/guest-mem-error.js';
export * from './types/brands.js';
