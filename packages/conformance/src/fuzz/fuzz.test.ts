import { describe, expect, it } from 'vitest';
import { fuzzTarget, formatReport } from './fuzz.js';
import { SEQUENCES, SIM_TARGETS } from './targets.fixture.js';

describe('model-based fuzzer of the neutral API (simulated backends)', () => {
  for (const target of SIM_TARGETS) {
    it(`${target.name}: ${SEQUENCES} sequences, 0 counterexamples`, () => {
      const r = fuzzTarget(target, { sequences: SEQUENCES, seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined });
      console.log(formatReport(r, !!process.env.FUZZ_VERBOSE));
      expect(r.counterexample, formatReport(r)).toBeUndefined();
      expect(r.sequences).toBe(SEQUENCES);
    }, 3_600_000);
  }
});
