import { GuestMemError } from '@guestmem/core';
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
    const r = fuzzTarget(target, {
      sequences: SEQUENCES,
      seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined,
      profile: { maxCommands: 16, bigSizes: false },
    });
    console.log(formatReport(r, !!process.env.FUZZ_VERBOSE));
    expect(r.counterexample, formatReport(r)).toBeUndefined();
    expect(r.sequences).toBe(SEQUENCES);
  }, 3_600_000);
});

describe.skipIf(!!target.skip)('fuzzer regressions on /dev/kvm', () => {
  // Found by the fuzzer on /dev/kvm; BindOptions.gpa now allows it (a backend may refuse GPAs its
  // hardware cannot address), so the target keeps 'gpa-above-host-phys-bits' as an allowance.
  it('a binding may end at 2^52; one ending past it is EINVAL (the largest guest frame measured here)', () => {
    const h = target.create();
    try {
      const vm = h.createVm();
      const memory = vm.createGuestMemory({ size: 16 * 4096 });
      let err: unknown;
      try {
        vm.bind({ memory, offset: 0, gpa: 1n << 52n, size: 4096 });
      } catch (e) {
        err = e;
      }
      expect(GuestMemError.is(err, 'EINVAL'), String(err)).toBe(true);
      expect(vm.bindings()).toHaveLength(0);
      const b = vm.bind({ memory, offset: 0, gpa: (1n << 52n) - 4096n, size: 4096 });
      expect(b.active).toBe(true);
    } finally {
      h.close();
    }
  });
});
