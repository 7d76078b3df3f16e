/**
 * A native refusal names the rule: for every memslot, guest_memfd-creation or memory-attribute ioctl
 * the kernel refuses anywhere in the
 * differential suite, the native driver's diagnosis (`info.diagnosis.rule`, judged against its
 * record of what it created) must name the rule the simulated kernel refused with (`info.rule`).
 * The errno stays the kernel's (the traces of scenarios.diff.test.ts compare it).
 */
import { GuestMemError } from '@guestmem/core';
import { describe, expect, test } from 'vitest';
import { probeNativeKvm } from '../native/probe.js';
import { openKvm } from '../open.js';
import { openSimKvm } from '../sim/index.js';
import { SCENARIOS } from './scenarios.js';
import { runScenario } from './trace.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm diff] skipping the diagnosis comparison: ${probe.reason}`);

/**
 * The VM ioctls whose refusals both drivers name: the memslot ioctls (sim/memslot-rules.ts),
 * guest_memfd creation (sim/guest-memfd-rules.ts) and memory attributes (sim/memory-attributes.ts).
 */
const DIAGNOSED = /^ioctl\(KVM_(SET_USER_MEMORY_REGION2?|CREATE_GUEST_MEMFD|SET_MEMORY_ATTRIBUTES)\)$/;

interface Named {
  step: string;
  code: string;
  rule: unknown;
  by?: unknown;
}

function refusals(collect: Named[], pick: (e: GuestMemError) => { rule: unknown; by?: unknown }) {
  return (step: string, e: unknown) => {
    if (GuestMemError.is(e) && e.syscall && DIAGNOSED.test(e.syscall)) collect.push({ step, code: e.code, ...pick(e) });
  };
}

describe.skipIf(!probe.available)('native diagnosis names the simulator rule', () => {
  test('every memslot, guest_memfd-creation and memory-attribute refusal in the differential suite: the native diagnosis names the same rule as the sim', () => {
    let total = 0;
    const byRule = new Map<string, number>();
    for (const scenario of SCENARIOS) {
      const native: Named[] = [];
      const sim: Named[] = [];
      runScenario(
        () => openKvm({ driver: 'native' }),
        scenario,
        refusals(native, (e) => (e.info.diagnosis as { rule: unknown; by: unknown }) ?? { rule: undefined }),
      );
      runScenario(
        () => openSimKvm({ profile: '6.18', swProtectedVm: false }),
        scenario,
        refusals(sim, (e) => ({ rule: e.info.rule })),
      );
      expect(
        native.map(({ step, code, rule }) => ({ step, code, rule })),
        scenario.name,
      ).toEqual(sim);
      // Refusals without a rule are the library's own (a closed handle's EBADF): no kernel refusal to diagnose.
      for (const n of native.filter((x) => x.rule !== undefined)) {
        expect(n.by, `${scenario.name}: ${n.step}`).toBe('guestmem');
        byRule.set(String(n.rule), (byRule.get(String(n.rule)) ?? 0) + 1);
      }
      total += native.filter((x) => x.rule !== undefined).length;
    }
    // The suite refuses memslot ioctls for most rules; each of these appears at least once.
    expect(total).toBeGreaterThan(50);
    for (const rule of [
      'slot-id',
      'flags',
      'memory-size-alignment',
      'gpa-alignment',
      'userspace-addr',
      'address-space',
      'gpa-wrap',
      'no-such-slot',
      'guest-memfd-slot-immutable',
      'gpa-overlap',
      'fd-not-open',
      'fd-not-guest-memfd',
      'fd-of-another-vm',
      'past-eof',
      'guest-memfd-range-bound',
      'above-max-gfn',
      'v1-flags',
      'guest-memfd-flags',
      'guest-memfd-size',
      'memory-attributes-not-built',
    ]) {
      expect(byRule.get(rule) ?? 0, `rule ${rule} never refused in the suite`).toBeGreaterThan(0);
    }
  });
});
