/**
 * The simulated kernel's answers for the guest_memfd mapping mm calls, the file operations, the
 * wrong-kind-of-fd ioctls and vCPU fds, as the real 6.18.44 kernel gave them on the probe machine
 * (C probes, recorded here so the sim is held to them without /dev/kvm; the differential suite
 * re-checks each against the live kernel). Each expectation is a kernel observation, not a value
 * read back from the sim.
 */
import { GuestMemError } from '@guestmem/core';
import { describe, expect, test } from 'vitest';
import type { KvmGmemMapping, KvmGuestMemfd } from '../api.js';
import {
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MAP_SHARED,
  O_APPEND,
  O_DIRECT,
  O_NONBLOCK,
  O_RDWR,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { openSimKvm } from './kvm.js';

const P = 4096;
const code = (fn: () => unknown): string => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return GuestMemError.is(e) ? e.code : String(e);
  }
};

function setup(flags = 3n, length = 4 * P, prot = PROT_READ | PROT_WRITE) {
  const kvm = openSimKvm({ swProtectedVm: false });
  const vm = kvm.createVm(0);
  const g = vm.createGuestMemfd({ size: 4 * P, flags });
  const m = g.mmap({ length, prot, flags: MAP_SHARED }) as KvmGmemMapping;
  return { kvm, vm, g, m };
}

describe('sim guest_memfd mapping: madvise (probed)', () => {
  test('known advice succeeds and keeps data; FREE, WIPEONFORK (18), COLLAPSE and unknown advice are EINVAL', () => {
    const { m } = setup();
    m.fill(0, 4 * P, 0xab);
    const answers = Object.fromEntries(
      [0, 1, 2, 3, 4, 5, 8, 10, 14, 18, 20, 21, 24, 25, 26, 103].map((a) => [a, code(() => m.madvise(P, P, a))]),
    );
    expect(answers).toEqual({
      0: 'ok',
      1: 'ok',
      2: 'ok',
      3: 'ok',
      4: 'ok',
      5: 'EINVAL',
      8: 'EINVAL',
      10: 'ok',
      14: 'ok',
      18: 'EINVAL',
      20: 'ok',
      21: 'ok',
      24: 'ok',
      25: 'EINVAL',
      26: 'EINVAL',
      103: 'ok',
    });
    expect([...m.read(0, 4 * P)].every((b) => b === 0xab)).toBe(true);
  });
  test('MADV_REMOVE punches the file, also through a PROT_READ mapping', () => {
    const { g, m } = setup();
    m.fill(0, 4 * P, 0xab);
    const ro = g.mmap({ length: 4 * P, prot: PROT_READ, flags: MAP_SHARED });
    ro.madvise(P, P, MADV_REMOVE);
    expect([m.read(0, 1)[0], m.read(P, 1)[0], m.read(2 * P, 1)[0]]).toEqual([0xab, 0, 0xab]);
  });
  test('POPULATE: EFAULT without INIT_SHARED or past EOF; EINVAL without the permission', () => {
    expect(code(() => setup(1n).m.madvise(0, P, MADV_POPULATE_READ))).toBe('EFAULT');
    expect(code(() => setup(3n, 8 * P).m.madvise(4 * P, P, MADV_POPULATE_WRITE))).toBe('EFAULT');
    expect(code(() => setup(3n, 4 * P, PROT_READ).m.madvise(0, P, MADV_POPULATE_WRITE))).toBe('EINVAL');
    expect(code(() => setup(3n, 4 * P, PROT_WRITE).m.madvise(0, P, MADV_POPULATE_READ))).toBe('EINVAL');
    expect(code(() => setup(3n, 4 * P, PROT_NONE).m.madvise(0, P, MADV_POPULATE_READ))).toBe('EINVAL');
    expect(code(() => setup(1n).m.madvise(0, P, MADV_COLLAPSE))).toBe('EINVAL');
  });
  test('outside the mapping: ENOMEM, except POPULATE running past the end (EINVAL)', () => {
    const { m } = setup();
    expect(code(() => m.madvise(3 * P, 2 * P, MADV_DONTNEED))).toBe('ENOMEM');
    expect(code(() => m.madvise(-P, 2 * P, MADV_DONTNEED))).toBe('ENOMEM');
    expect(code(() => m.madvise(3 * P, 2 * P, MADV_POPULATE_WRITE))).toBe('EINVAL');
    expect(code(() => m.madvise(-P, 2 * P, MADV_POPULATE_WRITE))).toBe('ENOMEM');
    expect(code(() => m.madvise(3 * P, 2 * P, 5))).toBe('EINVAL');
  });
});

describe('sim guest_memfd mapping: mprotect and mlock (probed)', () => {
  test('mprotect: prot 0–3 and 8 succeed, EXEC EACCES, 16/GROWSDOWN/GROWSUP/-1 EINVAL; argument order', () => {
    const { m } = setup();
    const answers = [0, 1, 2, 3, 4, 5, 7, 8, 16, 0x100_0000, 0x200_0000, -1].map((p) => code(() => m.mprotect(0, P, p)));
    expect(answers).toEqual(['ok', 'ok', 'ok', 'ok', 'EACCES', 'EACCES', 'EACCES', 'ok', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL']);
    expect([
      code(() => m.mprotect(1, P, 3)),
      code(() => m.mprotect(0, 0, 3)),
      code(() => m.mprotect(1, 0, 3)),
      code(() => m.mprotect(0, -P, 3)),
      code(() => m.mprotect(0, -1, 3)),
    ]).toEqual(['EINVAL', 'ok', 'EINVAL', 'ENOMEM', 'ENOMEM']);
  });
  test('mprotect changes what host accesses may do; past the end changes the part inside, then ENOMEM', () => {
    const { m } = setup();
    m.mprotect(P, P, PROT_READ);
    expect(code(() => m.fill(P, 1, 1))).toBe('EFAULT');
    expect(code(() => m.fill(0, 1, 1))).toBe('ok');
    expect(code(() => m.mprotect(3 * P, 2 * P, PROT_READ))).toBe('ENOMEM');
    expect(m.protAt(3 * P)).toBe(PROT_READ);
    expect(code(() => m.mprotect(-P, 2 * P, PROT_READ))).toBe('ENOMEM');
    expect(m.protAt(0)).toBe(PROT_READ | PROT_WRITE);
    expect(code(() => m.mprotect(0, P, PROT_EXEC))).toBe('EACCES');
  });
  test('mlock: DONTNEED/REMOVE refused while locked, DONTNEED_LOCKED allowed; private file ENOMEM but locked', () => {
    const { m } = setup();
    m.mlock(0, P);
    expect([MADV_DONTNEED, MADV_REMOVE, MADV_DONTNEED_LOCKED, 20, 21].map((a) => code(() => m.madvise(0, P, a)))).toEqual([
      'EINVAL',
      'EINVAL',
      'ok',
      'EINVAL',
      'EINVAL',
    ]);
    m.munlock(0, P);
    expect(code(() => m.madvise(0, P, MADV_DONTNEED))).toBe('ok');
    const priv = setup(1n).m;
    expect(code(() => priv.mlock(0, P))).toBe('ENOMEM');
    expect(code(() => priv.madvise(0, P, MADV_DONTNEED))).toBe('EINVAL');
    expect(code(() => setup(1n).m.mlock(0, P, 1))).toBe('ok');
    expect([
      code(() => m.mlock(0, P, 2)),
      code(() => m.mlock(0, -P)),
      code(() => m.mlock(0, -1)),
      code(() => m.munlock(0, -P)),
      code(() => m.mlock(-P, 2 * P)),
    ]).toEqual(['EINVAL', 'EINVAL', 'ok', 'EINVAL', 'ENOMEM']);
    expect(code(() => setup(3n, 4 * P, PROT_NONE).m.mlock(0, P))).toBe('ENOMEM');
  });
});

describe('sim guest_memfd file operations and wrong-fd ioctls (probed)', () => {
  const file = (): { g: KvmGuestMemfd; kvm: ReturnType<typeof openSimKvm>; vmFd: number } => {
    const kvm = openSimKvm({ swProtectedVm: false });
    const vm = kvm.createVm(0);
    return { kvm, g: vm.createGuestMemfd({ size: 4 * P, flags: 3n }), vmFd: vm.fd };
  };
  test('readv, writev, fsync, fdatasync, fchmod, fchown are EINVAL; FIONREAD ENOTTY; reopen ENXIO', () => {
    const { g } = file();
    expect([
      code(() => g.readv([new Uint8Array(4)])),
      code(() => g.writev([])),
      code(() => g.fsync()),
      code(() => g.fdatasync()),
      code(() => g.fchmod(0o600)),
      code(() => g.fchown(-1, -1)),
    ]).toEqual(Array(6).fill('EINVAL'));
    expect(code(() => g.fionread())).toBe('ENOTTY');
    expect(code(() => g.reopen(O_RDWR))).toBe('ENXIO');
  });
  test('F_GETFL is O_RDWR|O_LARGEFILE; F_SETFL keeps only APPEND/NONBLOCK/NOATIME; O_DIRECT EINVAL', () => {
    const { g } = file();
    expect(g.getStatusFlags()).toBe(0x8002);
    g.setStatusFlags(O_NONBLOCK | 0o20000);
    expect(g.getStatusFlags()).toBe(0x8802);
    expect(code(() => g.setStatusFlags(O_DIRECT))).toBe('EINVAL');
    expect(g.dup().getStatusFlags()).toBe(0x8802);
  });
  test('sendfile: from guest_memfd EINVAL (ESPIPE with an offset, EBADF for a closed output); into it from an empty memfd 0, from /dev/null EINVAL', () => {
    const { g, kvm, vmFd } = file();
    const memfd = kvm.openOtherFd('memfd');
    const dn = kvm.openOtherFd('devnull');
    expect([
      code(() => g.sendfileTo(dn.fd, 64)),
      code(() => g.sendfileTo(dn.fd, 64, 0)),
      code(() => g.sendfileTo(999, 64)),
      code(() => g.sendfileTo(999, -1)),
    ]).toEqual(['EINVAL', 'ESPIPE', 'EBADF', 'EINVAL']);
    expect(g.sendfileFrom(memfd.fd, 64)).toBe(0n);
    expect([
      code(() => g.sendfileFrom(dn.fd, 64)),
      code(() => g.sendfileFrom(vmFd, 64, 0)),
      code(() => g.sendfileFrom(999, 0)),
      code(() => g.sendfileFrom(memfd.fd, 64, -1)),
    ]).toEqual(['EINVAL', 'ESPIPE', 'EBADF', 'EINVAL']);
    g.setStatusFlags(O_APPEND);
    expect(code(() => g.sendfileFrom(memfd.fd, 0))).toBe('EINVAL');
  });
  test('KVM_CREATE_GUEST_MEMFD / KVM_CHECK_EXTENSION on the wrong kind of fd; vCPU ids', () => {
    const { g, kvm } = file();
    const vm = kvm.createVm(0);
    const vcpu = vm.createVcpu(0);
    const memfd = kvm.openOtherFd('memfd');
    const args = { size: P, flags: 0n };
    expect([
      code(() => kvm.createGuestMemfd(args)),
      code(() => g.createGuestMemfd(args)),
      code(() => vcpu.createGuestMemfd(args)),
      code(() => memfd.createGuestMemfd(args)),
    ]).toEqual(['EINVAL', 'ENOTTY', 'EINVAL', 'ENOTTY']);
    expect([code(() => g.checkExtension(0)), code(() => vcpu.checkExtension(0)), code(() => memfd.checkExtension(0))]).toEqual([
      'ENOTTY',
      'EINVAL',
      'ENOTTY',
    ]);
    expect([
      code(() => vm.createVcpu(0)),
      code(() => vm.createVcpu(4095)),
      code(() => vm.createVcpu(4096)),
      code(() => vm.createVcpu(-1)),
    ]).toEqual(['EEXIST', 'ok', 'EINVAL', 'EINVAL']);
  });
  test('fstat: a dup shares dev and ino; another file has the same dev and another ino', () => {
    const { g, kvm } = file();
    const other = kvm.createVm(0).createGuestMemfd({ size: P, flags: 0n });
    const [a, b, c] = [g.fstat(), g.dup().fstat(), other.fstat()];
    expect([a.dev === b.dev && a.ino === b.ino, a.dev === c.dev, a.ino !== c.ino]).toEqual([true, true, true]);
  });
});

test('MADV_FREE on a guest_memfd mapping is EINVAL (it is for private anonymous memory)', () => {
  expect(code(() => setup().m.madvise(0, P, MADV_FREE))).toBe('EINVAL');
});
