export { defineConformanceSuite, expectGuestMemError, type ConformanceTarget } from './suite.js';
