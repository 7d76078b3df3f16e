import { describe, expect, it } from 'vitest';
import { demo } from './demo.js';
import { probe } from './probe.js';

describe('guestmem demo', () => {
  it('runs the scenario on the simulated backends through the neutral API', () => {
    for (const id of ['kvm-sim', 'gunyah-sim', 'gunyah-ack-sim']) {
      const lines: string[] = [];
      demo((l) => lines.push(l), id);
      const out = lines.join('\n');
      expect(out).toContain(`== ${id}:`);
      expect(out).toContain('bound [0, 8 MiB) of it at GPA 0x40000000');
      // ACK has no punch-hole: its zero check is the first read of fresh memory.
      expect(out).toMatch(id === 'gunyah-ack-sim' ? /first read: 00 00 00 00 00 00 00 00/ : /reads 00 00 00 00 00 00 00 00/);
      if (id === 'gunyah-ack-sim') expect(out).toContain('host read of private guest memory refused: SIGBUS');
      expect(out).toContain('VM destroyed; binding active: false');
      // The memory report before destroy: 16 MiB object bound at the demo GPA.
      expect(out).toMatch(/memory report of VM \d+ \((kvm-sim|gunyah-sim|gunyah-ack-sim)\):/);
      expect(out).toMatch(/memory \d+: size 16 MiB, allocated \d+ (KiB|MiB|B) \(exact\).*bound at 0x40000000\+/);
      expect(out).not.toContain('!! host read private memory');
    }
  });

  it('probe lists every backend with a reason', () => {
    const lines: string[] = [];
    probe((l) => lines.push(l));
    const out = lines.join('\n');
    for (const id of ['kvm ', 'kvm-sim', 'gunyah-sim', 'gunyah-ack-sim']) expect(out).toContain(id);
    expect(out).toMatch(/selected: (kvm|kvm-sim|gunyah-sim)/);
  });
});
