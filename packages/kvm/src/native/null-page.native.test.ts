/**
 * guestmem's NULL-page guard on the real kernel: a `MAP_FIXED_NOREPLACE` mmap below 64 KiB is refused
 * before the syscall, so the process never gets a guest_memfd page at address 0 (as root the kernel
 * would map it: CAP_SYS_RAWIO bypasses mmap_min_addr), and nothing leaks.
 */
import { readFileSync } from 'node:fs';
import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openFds } from '../api.js';
import { openKvm } from '../open.js';
import { MAP_FIXED_NOREPLACE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping the NULL-page guard test: ${probe.reason}`);

/** The start addresses of the process's mappings below 64 KiB. */
const lowMappings = (): string[] =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l && BigInt(`0x${l.split('-')[0]}`) < 0x10000n);

describe.skipIf(!probe.available)('native mmap: MAP_FIXED_NOREPLACE below 64 KiB', () => {
  it('is EPERM for address 0, a missing hint and 4 KiB, maps nothing there and leaks no fd', () => {
    const fdsBefore = openFds();
    const low = lowMappings();
    const kvm = openKvm({ driver: 'native' });
    const vm = kvm.createVm();
    const g = vm.createGuestMemfd({ size: 16384, flags: 3n });
    try {
      for (const address of [undefined, 0, 0, 4096, 0xf000]) {
        let caught: unknown;
        try {
          g.mmap({
            length: 4096,
            prot: PROT_READ | PROT_WRITE,
            flags: MAP_SHARED | MAP_FIXED_NOREPLACE,
            ...(address === undefined ? {} : { address }),
          });
        } catch (e) {
          caught = e;
        }
        expect(caught, `address ${address}`).toBeInstanceOf(GuestMemError);
        expect((caught as GuestMemError).code).toBe('EPERM');
        expect((caught as GuestMemError).syscall).toBeUndefined();
      }
      expect(lowMappings()).toEqual(low);
    } finally {
      g.close();
      vm.close();
      kvm.close();
    }
    expect(openFds()).toEqual(fdsBefore);
  });
});
