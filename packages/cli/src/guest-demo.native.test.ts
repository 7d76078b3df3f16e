import { probeNativeKvm } from '@guestmem/kvm';
import { describe, expect, it } from 'vitest';
import { runGuestDemo } from './guest-demo.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[cli guest demo] native part skipped: ${probe.reason}`);

describe.skipIf(!probe.available)(`guestmem demo on /dev/kvm (${probe.reason})`, () => {
  it('selects native KVM first, then runs the same guest on every other backend with identical output and exits', () => {
    const r = runGuestDemo();
    expect(r.selected.id).toBe('kvm');
    expect(r.backends[0]!.id).toBe('kvm');
    expect(r.backends[0]!.simulated).toBe(false);
    expect(r.backends.map((b) => b.id)).toEqual(expect.arrayContaining(['kvm', 'kvm-sim', 'gunyah-sim', 'gunyah-ack-sim']));
    for (const b of r.backends) {
      expect(b.error).toBeUndefined();
      expect(b.guest.output).toBe(r.backends[0]!.guest.output);
      expect(b.guest.exits).toEqual(r.backends[0]!.guest.exits);
    }
    expect(r.outputIdentical).toBe(true);
  });
});
