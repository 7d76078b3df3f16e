/**
 * One backend id per driver: an argument the uAPI encoder refuses (a value that does not fit its
 * struct field, too many reserved entries) fails with the driver's own id — `'kvm'` on the native
 * driver, `'kvm-sim'` on the simulated one — through every call that encodes, never with the
 * standalone codec's `'kvm-uapi'`. The native half needs /dev/kvm; the simulated half always runs.
 */
import { ArenaFolioAllocator, GuestMemError } from '@guestmem/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { Kvm } from './api.js';
import { asNativeVm } from './native/driver.js';
import { NATIVE_BACKEND } from './native/errors.js';
import { probeNativeKvm } from './native/probe.js';
import { openKvm } from './open.js';
import { SIM_BACKEND } from './sim/errors.js';
import { openSimKvm } from './sim/kvm.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, MAP_SHARED, PROT_READ, PROT_WRITE } from './uapi/constants.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[error-backend.native] native driver skipped: ${probe.reason}`);

const P = 4096;
const TOO_BIG = 1n << 64n;

/** Every call of the raw API that runs a codec on its arguments, each given one value the codec refuses. */
function badCalls(kvm: Kvm): Array<[string, () => unknown]> {
  const vm = kvm.createVm();
  const gmem = vm.createGuestMemfd({ size: 4 * P, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  const view = gmem.mmap({ length: P, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
  const anon = kvm.mmapAnonymous(P);
  return [
    ['kvm.checkExtension cap', () => kvm.checkExtension(TOO_BIG)],
    ['kvm.createVm type', () => kvm.createVm(TOO_BIG)],
    ['kvm.mmapAnonymous length', () => kvm.mmapAnonymous(TOO_BIG)],
    ['vm.checkExtension cap', () => vm.checkExtension(0.5)],
    ['createGuestMemfd size', () => vm.createGuestMemfd({ size: TOO_BIG, flags: 0 })],
    ['createGuestMemfd flags', () => vm.createGuestMemfd({ size: P, flags: -1n << 64n })],
    ['createGuestMemfd reserved[7]', () => vm.createGuestMemfd({ size: P, flags: 0, reserved: [0, 0, 0, 0, 0, 0, 0] })],
    [
      'setUserMemoryRegion slot',
      () => vm.setUserMemoryRegion({ slot: 2 ** 32, flags: 0, guestPhysAddr: 0, memorySize: P, userspace: { mapping: anon } }),
    ],
    [
      'setUserMemoryRegion guestPhysAddr',
      () => vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: TOO_BIG, memorySize: P, userspace: { mapping: anon } }),
    ],
    [
      'setUserMemoryRegion2 guestMemfdOffset',
      () => vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: P, guestMemfdOffset: TOO_BIG, guestMemfd: gmem.fd }),
    ],
    [
      'setUserMemoryRegion2 guestMemfd',
      () => vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: P, guestMemfdOffset: 0, guestMemfd: 2 ** 32 }),
    ],
    [
      'unsafeSetUserMemoryRegion userspaceAddr',
      () => vm.unsafeSetUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: P, userspaceAddr: TOO_BIG }),
    ],
    [
      'unsafeSetUserMemoryRegion (v1) memorySize',
      () =>
        vm.unsafeSetUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: TOO_BIG, userspaceAddr: 0 }, { ioctl: 'REGION' }),
    ],
    ['setMemoryAttributes address', () => vm.setMemoryAttributes({ address: TOO_BIG, size: P, attributes: 0, flags: 0 })],
    ['setMemoryAttributes flags', () => vm.setMemoryAttributes({ address: 0, size: P, attributes: 0, flags: 1.5 })],
    ['gmem.fallocate offset', () => gmem.fallocate(0, TOO_BIG, P)],
    ['gmem.mmap length', () => gmem.mmap({ length: TOO_BIG, prot: PROT_READ, flags: MAP_SHARED })],
    ['gmem.pread offset', () => gmem.pread(1, TOO_BIG)],
    ['gmem.pwrite offset', () => gmem.pwrite(new Uint8Array(1), TOO_BIG)],
    ['gmem.lseek whence', () => gmem.lseek(0, 2 ** 32)],
    ['gmem.ftruncate len', () => gmem.ftruncate(TOO_BIG)],
    ['mapping.read offset', () => view.read(TOO_BIG, 1)],
    ['anon.madvise len', () => anon.madvise(0, TOO_BIG, 4)],
  ];
}

function encodeError(call: () => unknown): GuestMemError {
  try {
    call();
  } catch (e) {
    expect(e).toBeInstanceOf(GuestMemError);
    return e as GuestMemError;
  }
  throw new Error('the call succeeded');
}

let open: Kvm | undefined;
afterEach(() => {
  open?.close();
  open = undefined;
});

describe.each([
  { driver: 'native', id: NATIVE_BACKEND, skip: !probe.available, make: () => openKvm({ driver: 'native' }) },
  { driver: 'sim', id: SIM_BACKEND, skip: false, make: () => openSimKvm() },
])('uAPI encoding errors on the $driver driver', ({ id, skip, make }) => {
  it.skipIf(skip)(`name the driver ('${id}') through every call that encodes`, () => {
    open = make();
    const calls = badCalls(open);
    expect(calls.length).toBeGreaterThan(20);
    for (const [what, call] of calls) {
      const e = encodeError(call);
      expect(e.op, `${what}: ${e.message}`).toMatch(/^encode /);
      expect(e.code, what).toBe('ERANGE');
      expect(e.backend, what).toBe(id);
      expect(e.message, what).toMatch(new RegExp(`^${id}: `));
      expect(e.stack, what).toContain('error-backend.native.test');
    }
  });
});

describe.skipIf(!probe.available)('uAPI encoding errors of native-only calls', () => {
  it("vCPU register encoders name 'kvm'", () => {
    open = openKvm({ driver: 'native' });
    const vcpu = asNativeVm(open.createVm()).createVcpu(0);
    const e = encodeError(() => vcpu.setRegs({ rax: TOO_BIG }));
    expect([e.code, e.op, e.backend]).toEqual(['ERANGE', 'encode rax', NATIVE_BACKEND]);
    vcpu.close();
  });
});

describe('errors of the shared folio allocator on the simulated driver', () => {
  it("a host write that needs a folio beyond the allocator's limit names 'kvm-sim'", () => {
    open = openSimKvm({ allocator: new ArenaFolioAllocator({ limitBytes: P }) });
    const gmem = open.createVm().createGuestMemfd({ size: 4 * P, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    const view = gmem.mmap({ length: 4 * P, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    view.write(0, new Uint8Array([1]));
    const e = encodeError(() => view.write(P, new Uint8Array([2])));
    expect([e.code, e.backend]).toEqual(['ENOMEM', SIM_BACKEND]);
  });
});
