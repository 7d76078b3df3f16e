export { defineConformanceSuite, expectGuestMemError, type ConformanceTarget } from './suite.js';
export { defineGuestConformanceSuite } from './guest-suite.js';
