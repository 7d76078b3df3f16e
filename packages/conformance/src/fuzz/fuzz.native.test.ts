import { describe, expect, it } from 'vitest';
import { fuzzTarget, formatReport } from './fuzz.js';
import { nativeTarget, SEQUENCES } from './targets.fixture.js';

// The real kernel: the same sequences and model. Objects stay small (no 2^40+ memory sizes: each
// binding maps its shared side in the 47-bit user address space) and sequences shorter, since every
// call is a syscall; still 1,000 sequences.
const target = nativeTarget();
if (target.skip) console.warn(`[fuzz] ${target.name}: skipped: ${target.skip}`);

describe.skipIf(!!target.skip)('model-based fuzzer of the neutral API (native /dev/kvm)', () => {
  it(`${target.name}: ${SEQUENCES} sequences, 0 counterexamples`, () => {
    const r = fuzzTarget(target, { sequences: SEQUENCES, seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined, profile: { maxCommands: 16, bigSizes: false } });
    console.log(formatReport(r, !!process.env.FUZZ_VERBOSE));
    expect(r.counterexample, formatReport(r)).toBeUndefined();
    expect(r.sequences).toBe(SEQUENCES);
  }, 3_600_000);
});
