export * from './uapi/index.js';
export * from './sim/index.js';
export * from './adapter/index.js';
