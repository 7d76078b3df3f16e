/**
 * `openKvm({ driver: 'native', device })` accepts only KVM: a path or an fd of another file is
 * refused when opened (ENOTTY from KVM_GET_API_VERSION, or open's/dup's errno), never handed out as
 * a `Kvm` whose first call fails, and nothing stays open either way.
 */
import { closeSync, openSync } from 'node:fs';
import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openFds } from '../api.js';
import { openKvm } from '../open.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping the device-option tests: ${probe.reason}`);

/** The error `fn` throws (undefined when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe.skipIf(!probe.available)('native openKvm device option', () => {
  it('a path to a device that is not KVM is ENOTTY at open, leaving no fd', () => {
    const before = openFds();
    const e = thrown(() => openKvm({ driver: 'native', device: '/dev/null' }).close());
    expect(e).toBeInstanceOf(GuestMemError);
    expect(e).toMatchObject({ code: 'ENOTTY', syscall: 'ioctl(KVM_GET_API_VERSION)' });
    expect(openFds()).toEqual(before);
  });

  it('paths that cannot be opened and fds that are not KVM are refused with their errno, leaving no fd', () => {
    const devnull = openSync('/dev/null', 'r');
    const closed = openSync('/dev/null', 'r');
    closeSync(closed);
    try {
      const before = openFds();
      for (const [device, code] of [
        ['/nonexistent/kvm', 'ENOENT'],
        [devnull, 'ENOTTY'],
        [closed, 'EBADF'],
        [-1, 'EBADF'],
      ] as const) {
        expect(
          thrown(() => openKvm({ driver: 'native', device }).close()),
          String(device),
        ).toMatchObject({ code });
      }
      expect(openFds()).toEqual(before);
    } finally {
      closeSync(devnull);
    }
  });

  it('/dev/kvm by path and by an fd (read-only too) opens a working system fd', () => {
    const ro = openSync('/dev/kvm', 'r');
    try {
      for (const device of ['/dev/kvm', ro]) {
        const kvm = openKvm({ driver: 'native', device });
        try {
          kvm.createVm().close();
        } finally {
          kvm.close();
        }
      }
    } finally {
      closeSync(ro);
    }
  });
});
