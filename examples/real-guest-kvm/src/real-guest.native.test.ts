import { openFds, probeNativeKvm } from '@guestmem/kvm';
import { describe, expect, it } from 'vitest';
import { runRealGuest } from './real-guest.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[examples/real-guest-kvm] skipped: ${probe.reason}`);

describe.skipIf(!probe.available)(`examples/real-guest-kvm (${probe.reason})`, () => {
  it('the guest reads the host message from guest_memfd, writes the answer back, and reads zeros after a punch-hole', () => {
    const before = openFds();
    const lines: string[] = [];
    const message = 'Hello, guest_memfd! 123 xyz';
    const r = runRealGuest((l) => lines.push(l), message);
    const sum = [...Buffer.from(message, 'latin1')].reduce((s, b) => (s + b) & 0xffff, 0);

    expect(r.first.length).toBe(message.length);
    expect(r.first.checksum).toBe(sum);
    expect(r.first.firstWord).toBe(message.length | (message.charCodeAt(0) << 8));
    expect(r.answer).toBe('HELLO, GUEST_MEMFD! 123 XYZ');
    expect(r.first.exits).toEqual([
      `KVM_EXIT_IO out port 0x12 = 0x${r.first.firstWord.toString(16).padStart(4, '0')}`,
      `KVM_EXIT_IO out port 0x10 = 0x${sum.toString(16).padStart(4, '0')}`,
      `KVM_EXIT_IO out port 0x11 = 0x${message.length.toString(16).padStart(2, '0')}`,
      'KVM_EXIT_HLT',
    ]);

    expect(r.answerAfterPunch).toBe('\0'.repeat(message.length));
    expect(r.afterPunch).toMatchObject({ firstWord: 0, length: 0, checksum: 0 });
    expect(lines.join('\n')).toContain('it read zeros');
    expect(openFds(), 'fds leaked').toEqual(before);
  });
});
