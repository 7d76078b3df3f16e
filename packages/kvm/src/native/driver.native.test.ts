import { readlinkSync } from 'node:fs';
import { GuestMemError } from '@guestmem/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFds, type Kvm } from '../api.js';
import { openKvm } from '../open.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CAP_GUEST_MEMFD,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_USER_MEMORY2,
  MAP_FIXED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping native driver tests: ${probe.reason}`);

describe.skipIf(!probe.available)('native driver', () => {
  let kvm: Kvm;
  let before: number[];
  beforeAll(() => {
    before = openFds();
    kvm = openKvm({ driver: 'native' });
  });
  afterAll(() => {
    kvm.close();
    expect(openFds()).toEqual(before);
  });

  it('probe reports the guest_memfd capabilities of the system fd', () => {
    expect(probe.caps.KVM_CAP_GUEST_MEMFD).toBe(1);
    expect(probe.caps.KVM_CAP_USER_MEMORY2).toBe(1);
    expect(probe.caps.KVM_CAP_GUEST_MEMFD_FLAGS).toBe(kvm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS));
    expect(probe.reason).toMatch(/guest_memfd/);
  });

  it("openKvm({ driver: 'auto' }) picks native here", () => {
    const k = openKvm({ driver: 'auto' });
    expect(k.driver).toBe('native');
    expect(k.profile).toBe('host');
    k.close();
  });

  it('checkExtension takes numbers and bigints; unknown caps answer 0', () => {
    expect(kvm.checkExtension(KVM_CAP_GUEST_MEMFD)).toBe(1);
    expect(kvm.checkExtension(BigInt(KVM_CAP_USER_MEMORY2))).toBe(1);
    expect(kvm.checkExtension(0xfffff)).toBe(0);
  });

  it('fds are real: /dev/kvm, anon_inode:kvm-vm, anon_inode:[kvm-gmem], memfd, /dev/null', () => {
    const vm = kvm.createVm();
    const f = vm.createGuestMemfd({ size: 4096, flags: 0n });
    const memfd = kvm.openOtherFd('memfd');
    const devnull = kvm.openOtherFd('devnull');
    try {
      const link = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`);
      expect(link(kvm.fd)).toBe('/dev/kvm');
      expect(link(vm.fd)).toBe('anon_inode:kvm-vm');
      expect(link(f.fd)).toBe('anon_inode:[kvm-gmem]');
      expect(link(memfd.fd)).toMatch(/^\/memfd:guestmem-other/);
      expect(link(devnull.fd)).toBe('/dev/null');
    } finally {
      devnull.close();
      memfd.close();
      f.close();
      vm.close();
    }
  });

  it('errors carry the kernel errno, the syscall and backend kvm', () => {
    const vm = kvm.createVm();
    try {
      let err: unknown;
      try {
        vm.createGuestMemfd({ size: 4096, flags: 1n << 5n });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GuestMemError);
      const g = err as GuestMemError;
      expect([g.code, g.errno, g.syscall, g.backend]).toEqual(['EINVAL', 22, 'ioctl(KVM_CREATE_GUEST_MEMFD)', 'kvm']);
      expect(() => kvm.createVm(99)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'ioctl(KVM_CREATE_VM)' }));
    } finally {
      vm.close();
    }
  });

  it('dup shares the open file; each fd closes independently', () => {
    const vm = kvm.createVm();
    const f = vm.createGuestMemfd({ size: 8192, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    const d = f.dup();
    const m = d.mmap({ length: 8192, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    try {
      expect(d.fd).not.toBe(f.fd);
      expect(d.fstat().ino).toBe(f.fstat().ino);
      m.write(100, Uint8Array.of(1, 2, 3));
      f.close();
      expect(d.fstat().size).toBe(8192n);
      expect(m.read(100, 3)).toEqual(Uint8Array.of(1, 2, 3));
    } finally {
      m.munmap();
      d.close();
      vm.close();
    }
  });

  it('refuses MAP_FIXED before any syscall, and out-of-mapping accesses with EFAULT', () => {
    const vm = kvm.createVm();
    const f = vm.createGuestMemfd({ size: 8192, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    try {
      expect(() => f.mmap({ length: 4096, prot: PROT_READ, flags: MAP_SHARED | MAP_FIXED, address: 0x10000 })).toThrow(
        expect.objectContaining({ code: 'EINVAL', syscall: undefined }),
      );
      const m = f.mmap({ length: 8192, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
      expect(() => m.read(8190, 4)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
      expect(() => m.fill(-1, 1, 0)).toThrow(GuestMemError);
      m.munmap();
    } finally {
      f.close();
      vm.close();
    }
  });

  it('closed Kvm/VM handles answer EBADF without a syscall', () => {
    const k = openKvm({ driver: 'native' });
    const vm = k.createVm();
    vm.close();
    k.close();
    expect(() => vm.checkExtension(KVM_CAP_GUEST_MEMFD)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => k.createVm()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => k.close()).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('mapping access works across the 1 GiB view windows and past 4 GiB, and after-EOF still faults', () => {
    // Only the touched pages get memory: a 5 GiB file costs a handful of folios here.
    const G = 2 ** 30;
    const size = 5 * G;
    const vm = kvm.createVm();
    const f = vm.createGuestMemfd({ size, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    const m = f.mmap({ length: size + 8192, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    try {
      for (const b of [G, 2 * G, 4 * G]) {
        m.fill(b - 3, 6, 0x5a); // short fill straddling a window edge
        expect([...m.read(b - 4, 8)]).toEqual([0, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0]);
        m.write(b - 2, new Uint8Array([1, 2, 3, 4]));
        expect([...m.read(b - 4, 8)]).toEqual([0, 0x5a, 1, 2, 3, 4, 0x5a, 0]);
        m.fill(b - 5000, 10_000, 7); // long fill straddling it
        expect(m.read(b - 5000, 10_000).every((x) => x === 7)).toBe(true);
      }
      // The page at EOF still refuses the access after the bytes before it were written.
      expect(() => m.write(size - 2, new Uint8Array([9, 9, 9, 9]))).toThrow(
        expect.objectContaining({ code: 'SIGBUS', offset: BigInt(size) }),
      );
      expect([...m.read(size - 2, 2)]).toEqual([9, 9]);
    } finally {
      m.munmap();
      f.close();
      vm.close();
    }
    expect(() => m.read(0, 1)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
  });
});
