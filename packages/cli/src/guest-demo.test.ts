import { describe, expect, it } from 'vitest';
import { renderGuestDemo, runGuestDemo } from './guest-demo.js';

const text = 'guest_memfd!';
const le32 = (n: number) => Buffer.from(Uint32Array.of(n).buffer).toString('hex');
/** What the demo guest must report, from its program's definition (not from a run). */
const expected = {
  '0x10': le32([...Buffer.from(text)].reduce((a, b) => a + b, 0)),
  '0x11': '11223344',
  // 16 touched pages get 0x5a at offset 0; the 4 stored bytes sit at offset 8 of the first page.
  '0x12': le32(16 * 0x5a + 0x11 + 0x22 + 0x33 + 0x44),
};

describe('guestmem demo: the guest on the simulated backends', () => {
  it('kvm-sim, gunyah-sim and gunyah-ack-sim run the same program: same exits, same output, the expected reports', () => {
    const runs = ['kvm-sim', 'gunyah-sim', 'gunyah-ack-sim'].map((id) => runGuestDemo({ only: id }));
    const [k, g, a] = runs.map((r) => r.backends[0]!);
    for (const b of [k!, g!, a!]) {
      expect(b.error).toBeUndefined();
      expect(b.guest.stoppedBy).toBe('hlt');
      expect(b.guest.output).toBe(
        'hello from a guest whose code, page tables and data live in guest memory\nwrote above 4 GiB, checksums reported, halting\n',
      );
      expect(b.guest.reports).toEqual(expected);
      expect(b.guest.exits.at(-1)).toEqual({ kind: 'hlt' });
      expect(b.memory.boundRanges.map((x) => x.gpa)).toEqual(['0x0', '0x140000000']);
      expect(b.memory.sharedPages).toBe(512 + 16);
      expect(b.memory.privatePages).toBe(0);
      expect(b.memory.pagesAllocated).toBeGreaterThan(0);
    }
    expect(g!.guest.exits).toEqual(k!.guest.exits);
    expect(a!.guest.exits).toEqual(k!.guest.exits);
    expect(a!.guest.output).toBe(k!.guest.output);
    // Exact accounting on every simulated backend, and the same pages held by the same program.
    expect([k, g, a].map((b) => b!.memory.accounting)).toEqual(['exact', 'exact', 'exact']);
    expect(g!.memory.pagesAllocated).toBe(k!.memory.pagesAllocated);
    expect(a!.memory.pagesAllocated).toBe(k!.memory.pagesAllocated);
    expect(runs[0]!.selected).toEqual({ id: 'kvm-sim', reason: 'chosen explicitly' });
    // JSON-able as promised: no bigints, round-trips.
    expect(JSON.parse(JSON.stringify(runs[0]))).toEqual(runs[0]);
    expect(renderGuestDemo(runs[0]!)).toContain('guest output identical on every backend');
  });
});
