/**
 * Sim-only behaviour the differential suite cannot see from userspace: lifetimes (who pins whom),
 * invalidation of guest mappings, profiles, the fd table, and the guest's view of memory.
 */
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE as KEEP,
  FALLOC_FL_PUNCH_HOLE,
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEM_GUEST_MEMFD as GMEM,
  KVM_MEM_READONLY,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { SCENARIOS } from '../diff/scenarios.js';
import { runScenario } from '../diff/trace.js';
import { openSimKvm, type SimKvm, type SimKvmVm } from './index.js';

const PUNCH = FALLOC_FL_PUNCH_HOLE | KEEP;
const K4 = 4096;
const K16 = 16384;
const RW = { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (GuestMemError.is(e)) return e.code;
    throw e;
  }
  return 'ok';
}

function setup(flags = 3n, size = K16): { kvm: SimKvm; vm: SimKvmVm; g: ReturnType<SimKvmVm['createGuestMemfd']> } {
  const kvm = openSimKvm();
  const vm = kvm.createVm() as SimKvmVm;
  const g = vm.createGuestMemfd({ size, flags });
  return { kvm, vm, g };
}

describe('fd table', () => {
  it('hands out the lowest free fd from 3, reuses closed numbers and lists 0–2 as open', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm();
    const a = vm.createGuestMemfd({ size: K4, flags: 0n });
    const b = vm.createGuestMemfd({ size: K4, flags: 0n });
    expect([kvm.fd, vm.fd, a.fd, b.fd]).toEqual([3, 4, 5, 6]);
    a.close();
    expect(kvm.openFds()).toEqual([0, 1, 2, 3, 4, 6]);
    const d = b.dup();
    expect(d.fd).toBe(5);
    expect(codeOf(() => a.close())).toBe('EBADF');
  });

  it('resolves REGION2 fd numbers: closed → EBADF, wrong kind → EINVAL', () => {
    const { kvm, vm, g } = setup();
    const memfd = kvm.openOtherFd('memfd');
    const region = { slot: 0, flags: GMEM, guestPhysAddr: 0, memorySize: K4, guestMemfdOffset: 0 };
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...region, guestMemfd: memfd.fd }))).toBe('EINVAL');
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...region, guestMemfd: 1 }))).toBe('EINVAL');
    const fd = g.fd;
    g.close();
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...region, guestMemfd: fd }))).toBe('EBADF');
  });

  it('raises GuestMemError with backend kvm-sim and the native syscall names', () => {
    const { g } = setup();
    try {
      g.fallocate(0, 0, K4);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'EOPNOTSUPP', errno: 95, backend: 'kvm-sim', syscall: 'fallocate' });
    }
  });
});

describe('lifetimes (docs/kvm-guest-memfd.md §2.12)', () => {
  it('the file pins the VM: the VM dies only when its fd and every guest_memfd are gone', () => {
    const { kvm, vm, g } = setup();
    const m = g.mmap({ length: K16, ...RW });
    vm.close();
    expect(kvm.stats().vms).toBe(1);
    g.close();
    expect(kvm.stats()).toMatchObject({ vms: 1, guestMemfds: 1, mappings: 1 });
    m.munmap();
    expect(kvm.stats()).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0 });
  });

  it('a dup and a mapping each hold the file; the last reference frees its memory', () => {
    const { kvm, g } = setup();
    const d = g.dup();
    const m = d.mmap({ length: K16, ...RW });
    g.fallocate(KEEP, 0, K16);
    g.close();
    d.close();
    expect(kvm.stats().memory.bytesInUse).toBe(K16);
    m.munmap();
    expect(kvm.stats().memory.bytesInUse).toBe(0);
  });

  it('release orphans bound slots (they stay, bound to nothing) and delete unbinds without freeing', () => {
    const { kvm, vm, g } = setup();
    vm.setUserMemoryRegion2({ slot: 1, flags: GMEM, guestPhysAddr: 0, memorySize: K16, guestMemfd: g.fd, guestMemfdOffset: 0 });
    g.fallocate(KEEP, 0, K16);
    vm.setUserMemoryRegion2({ slot: 1, flags: 0, guestPhysAddr: 0, memorySize: 0, guestMemfd: 0, guestMemfdOffset: 0 });
    expect(kvm.stats().memory.bytesInUse).toBe(K16);
    vm.setUserMemoryRegion2({ slot: 2, flags: GMEM, guestPhysAddr: 0, memorySize: K16, guestMemfd: g.fd, guestMemfdOffset: 0 });
    g.close();
    const slot = vm.state.slots.get(2)!;
    expect(slot.gmem).toEqual({ file: null, pgoff: 0 });
    expect(kvm.stats().memory.bytesInUse).toBe(0);
  });
});

describe('invalidation (docs/kvm-guest-memfd.md §2.7) through the sim-only guest access path', () => {
  function boundGuest() {
    const env = setup();
    env.vm.setUserMemoryRegion2({
      slot: 1,
      flags: GMEM,
      guestPhysAddr: 0x100000,
      memorySize: K16,
      guestMemfd: env.g.fd,
      guestMemfdOffset: 0,
    });
    env.vm.guestWrite(0x100000, new Uint8Array(K16).fill(0x5a));
    return env;
  }

  it('guest writes to a gmem-only slot land in the file and install SPTEs', () => {
    const { vm, g } = boundGuest();
    expect([...vm.sptesOf(1).keys()]).toEqual([0, 1, 2, 3]);
    expect(
      g
        .mmap({ length: K16, ...RW })
        .read(0, K16)
        .every((b) => b === 0x5a),
    ).toBe(true);
  });

  it('punch zaps exactly the punched pages; the guest then reads zero there', () => {
    const { vm, g } = boundGuest();
    g.fallocate(PUNCH, K4, 2 * K4);
    expect([...vm.sptesOf(1).keys()]).toEqual([0, 3]);
    const seen = vm.guestRead(0x100000, K16);
    expect([seen[0], seen[K4], seen[3 * K4 - 1], seen[3 * K4]]).toEqual([0x5a, 0, 0, 0x5a]);
  });

  it('delete zaps the slot; release zaps everything and the orphan gives a memory-fault EFAULT', () => {
    const { vm, g } = boundGuest();
    g.close();
    expect(vm.sptesOf(1).size).toBe(0);
    let err: unknown;
    try {
      vm.guestRead(0x100000 + K4, 1);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'EFAULT',
      info: { exitReason: KVM_EXIT_MEMORY_FAULT, memoryFault: { flags: 0n, gpa: 0x101000n, size: BigInt(K4) } },
    });
  });

  it('a slot bound to a file without MMAP is not gmem-only: the guest goes through userspace_addr', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm() as SimKvmVm;
    const backing = vm.createGuestMemfd({ size: K16, flags: 3n });
    const m = backing.mmap({ length: K16, ...RW });
    const g = vm.createGuestMemfd({ size: K16, flags: 0n });
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: GMEM,
      guestPhysAddr: 0,
      memorySize: K16,
      userspace: { mapping: m },
      guestMemfd: g.fd,
      guestMemfdOffset: 0,
    });
    vm.guestWrite(100, new Uint8Array([7, 8, 9]));
    expect([...m.read(100, 3)]).toEqual([7, 8, 9]);
    expect(vm.sptesOf(0).size).toBe(0);
    expect(codeOf(() => vm.guestRead(0x10_0000, 1))).toBe('EFAULT');
  });

  it('READONLY plain slots refuse guest writes (MMIO exit → EFAULT)', () => {
    const { vm, g } = setup();
    const m = g.mmap({ length: K16, ...RW });
    vm.setUserMemoryRegion({ slot: 0, flags: KVM_MEM_READONLY, guestPhysAddr: 0, memorySize: K16, userspace: { mapping: m } });
    expect(codeOf(() => vm.guestWrite(0, new Uint8Array(1)))).toBe('EFAULT');
    expect(vm.guestRead(0, 1)[0]).toBe(0);
  });
});

describe('selftest test_guest_memfd_guest, on the sim-only guest path', () => {
  it('host fills 0xaa, guest verifies and writes 0xff, host sees 0xff after remapping', () => {
    const { vm, g } = setup(3n, K4);
    expect(vm.checkExtension(244) & 3).toBe(3);
    vm.setUserMemoryRegion2({ slot: 1, flags: GMEM, guestPhysAddr: 1n << 32n, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: 0 });
    const host = g.mmap({ length: K4, ...RW });
    host.fill(0, K4, 0xaa);
    host.munmap();
    expect(vm.guestRead(1n << 32n, K4).every((b) => b === 0xaa)).toBe(true);
    vm.guestWrite(1n << 32n, new Uint8Array(K4).fill(0xff));
    expect(
      g
        .mmap({ length: K4, ...RW })
        .read(0, K4)
        .every((b) => b === 0xff),
    ).toBe(true);
  });
});

describe('profiles', () => {
  const quirk = { slot: 0, flags: GMEM, guestPhysAddr: 0, memorySize: K16, guestMemfdOffset: 0x7ffffffffffff000n };
  it("'6.18' accepts guest_memfd_offset 0x7ffffffffffff000 (signed overflow, docs/kvm-guest-memfd.md §2.6 E1)", () => {
    const { vm, g } = setup();
    vm.setUserMemoryRegion2({ ...quirk, guestMemfd: g.fd });
    expect(vm.state.slots.get(0)!.gmem!.pgoff).toBe(0x7ffffffffffff);
    // The quirk binding occupies its (past-EOF) range: binding it again is a range overlap.
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...quirk, slot: 1, guestPhysAddr: 0x100000, guestMemfd: g.fd }))).toBe('EINVAL');
  });

  it("'upstream' rejects it", () => {
    const kvm = openSimKvm({ profile: 'upstream' });
    const vm = kvm.createVm();
    const g = vm.createGuestMemfd({ size: K16, flags: 3n });
    expect(kvm.profile).toBe('upstream');
    expect(codeOf(() => vm.setUserMemoryRegion2({ ...quirk, guestMemfd: g.fd }))).toBe('EINVAL');
  });
});

describe('mappings', () => {
  it('SIGBUS is a HostAccessFault at the first refused file offset; bytes before EOF are written', () => {
    const { g } = setup();
    const m = g.mmap({ length: 2 * K16, offset: 0, ...RW });
    let err: unknown;
    try {
      m.fill(K16 - 10, 20, 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostAccessFault);
    expect((err as HostAccessFault).offset).toBe(BigInt(K16));
    expect([...m.read(K16 - 10, 10)]).toEqual(Array(10).fill(1));
  });

  it('addresses are page-aligned, distinct user addresses', () => {
    const { g } = setup();
    const a = g.mmap({ length: K16, ...RW });
    const b = g.mmap({ length: 100, ...RW });
    expect(a.address % 4096n).toBe(0n);
    expect(b.address + 4096n <= a.address || a.address + 16384n <= b.address).toBe(true);
    expect(a.address < 0x7ffffffff000n).toBe(true);
  });
});

describe('differential scenarios on the sim alone', () => {
  it('run without harness exceptions and release everything', () => {
    for (const sc of SCENARIOS) {
      let kvm: SimKvm | undefined;
      const trace = runScenario(() => (kvm = openSimKvm()), sc);
      expect(
        trace.filter((s) => typeof s.out === 'object' && s.out !== null && 'threw' in s.out),
        sc.name,
      ).toEqual([]);
      expect(kvm!.stats(), sc.name).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0, fds: 3 });
    }
  });
});
