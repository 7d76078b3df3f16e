/**
 * The differential suite: every named scenario runs on the real kernel and on the simulated one, and
 * the traces (return values, errno codes, bytes read back) must be equal. Skips, with the reason,
 * only when /dev/kvm is missing or lacks guest_memfd.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openFds } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';
import { openKvm } from '../open.js';
import { openSimKvm } from '../sim/index.js';
import { SCENARIOS } from './scenarios.js';
import { runScenario } from './trace.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm diff] skipping the differential suite: ${probe.reason}`);

describe.skipIf(!probe.available)('sim vs real kernel: named scenarios', () => {
  let fdsBefore: number[];
  beforeAll(() => {
    fdsBefore = openFds();
  });
  afterAll(() => {
    expect(openFds(), 'fds leaked by the differential suite').toEqual(fdsBefore);
  });

  test('there are at least 150 uniquely named scenarios', () => {
    expect(new Set(SCENARIOS.map((s) => s.name)).size).toBe(SCENARIOS.length);
    expect(SCENARIOS.length).toBeGreaterThanOrEqual(150);
  });

  test.each(SCENARIOS.map((s) => [s.name, s] as const))('%s', (_name, scenario) => {
    const native = runScenario(() => openKvm({ driver: 'native' }), scenario);
    let simKvm: ReturnType<typeof openSimKvm> | undefined;
    const sim = runScenario(() => (simKvm = openSimKvm({ profile: '6.18', swProtectedVm: false })), scenario);
    expect(sim).toEqual(native);
    // Pinned kernel outcomes hold on both drivers (they are equal by now).
    for (const [step, out] of Object.entries(scenario.pinned ?? {})) {
      expect(
        native.find((t) => t.step === step),
        `pinned step '${step}'`,
      ).toEqual({ step, out });
    }
    // Everything the scenario opened is released on the sim: fds, VMs, files, mappings, memory.
    const st = simKvm!.stats();
    expect({ fds: simKvm!.openFds(), vms: st.vms, files: st.guestMemfds, mappings: st.mappings, bytes: st.memory.bytesInUse }).toEqual({
      fds: [0, 1, 2],
      vms: 0,
      files: 0,
      mappings: 0,
      bytes: 0,
    });
  });
});
