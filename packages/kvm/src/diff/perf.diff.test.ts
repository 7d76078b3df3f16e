/**
 * Acceptance: the simulated kernel does bulk fallocate and punch-hole at least 5× faster than the
 * real one (same calls, same sizes, best of several rounds each).
 */
import { describe, expect, test } from 'vitest';
import type { Kvm } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';
import { openKvm } from '../open.js';
import { openSimKvm } from '../sim/index.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../uapi/constants.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm diff] skipping the sim-vs-kernel speed check: ${probe.reason}`);

const SIZE = 256 * 1024 * 1024;
const ROUNDS = 9;

/** Best-of-ROUNDS milliseconds for allocating the whole file and for punching it out again. */
function timeBulk(kvm: Kvm): { allocate: number; punch: number } {
  const vm = kvm.createVm();
  const g = vm.createGuestMemfd({ size: SIZE, flags: 3n });
  let allocate = Infinity;
  let punch = Infinity;
  try {
    for (let r = 0; r < ROUNDS; r++) {
      let t = performance.now();
      g.fallocate(FALLOC_FL_KEEP_SIZE, 0, SIZE);
      allocate = Math.min(allocate, performance.now() - t);
      t = performance.now();
      g.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, SIZE);
      punch = Math.min(punch, performance.now() - t);
    }
  } finally {
    g.close();
    vm.close();
    kvm.close();
  }
  return { allocate, punch };
}

describe.skipIf(!probe.available)('sim vs real kernel: speed', () => {
  test(`bulk fallocate and punch of ${SIZE >> 20} MiB are ≥ 5× faster on the sim`, () => {
    const native = timeBulk(openKvm({ driver: 'native' }));
    const sim = timeBulk(openSimKvm());
    console.log(`[kvm perf] ${SIZE >> 20} MiB: kernel allocate ${native.allocate.toFixed(1)} ms, punch ${native.punch.toFixed(1)} ms; ` +
      `sim allocate ${sim.allocate.toFixed(1)} ms, punch ${sim.punch.toFixed(1)} ms`);
    expect(native.allocate / sim.allocate).toBeGreaterThanOrEqual(5);
    expect(native.punch / sim.punch).toBeGreaterThanOrEqual(5);
  });
});
