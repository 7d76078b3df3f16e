/** Test helpers for every package: fault injection and accounting checks. */
export * from './fault-injecting-allocator.js';
