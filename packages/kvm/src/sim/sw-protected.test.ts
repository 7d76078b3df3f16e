/**
 * KVM_X86_SW_PROTECTED_VM on the simulated kernel: capability answers, guest_memfd flags,
 * KVM_SET_MEMORY_ATTRIBUTES row by row (docs/kvm-guest-memfd.md §1.4), the guest fault rules (§2.8) with their
 * KVM_EXIT_MEMORY_FAULT records, poison, and the anonymous host memory the shared side lives in.
 */
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE as KEEP,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED as INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP as MMAP,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_VM_TYPES,
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEMORY_ATTRIBUTE_PRIVATE as PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  KVM_MEM_GUEST_MEMFD as GMEM,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM as SW_PROTECTED,
  MADV_DONTNEED,
  MADV_REMOVE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { memoryFaultExit, openSimKvm, type SimKvm, type SimKvmVm } from './index.js';

const K4 = 4096;
const PUNCH = FALLOC_FL_PUNCH_HOLE | KEEP;

function thrown(fn: () => unknown): GuestMemError {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuestMemError) return e;
    throw e;
  }
  throw new Error('expected a GuestMemError');
}

function protectedVm(): { kvm: SimKvm; vm: SimKvmVm } {
  const kvm = openSimKvm();
  return { kvm, vm: kvm.createVm(SW_PROTECTED) as SimKvmVm };
}

/** A SW_PROTECTED VM with an N-page flags-0 guest_memfd bound at `gpa`, shared side in anonymous memory. */
function cocoGuest(pages = 4, gpa = 0x1_0000_0000n) {
  const { kvm, vm } = protectedVm();
  const g = vm.createGuestMemfd({ size: pages * K4, flags: 0n });
  const shared = kvm.mmapAnonymous(pages * K4);
  vm.setUserMemoryRegion2({
    slot: 10,
    flags: GMEM,
    guestPhysAddr: gpa,
    memorySize: pages * K4,
    userspace: { mapping: shared },
    guestMemfdOffset: 0,
    guestMemfd: g.fd,
  });
  const setPrivate = (at: bigint, size: number, priv: boolean) =>
    vm.setMemoryAttributes({ address: at, size, attributes: priv ? PRIVATE : 0n, flags: 0 });
  return { kvm, vm, g, shared, gpa, setPrivate };
}

describe('KVM_X86_SW_PROTECTED_VM: capabilities and creation (docs/kvm-guest-memfd.md §1.3)', () => {
  it('KVM_CAP_VM_TYPES offers types 0 and 1; MEMORY_ATTRIBUTES answers PRIVATE on the system fd and type 1, 0 on a default VM', () => {
    const kvm = openSimKvm();
    const def = kvm.createVm(KVM_X86_DEFAULT_VM);
    const prot = kvm.createVm(SW_PROTECTED);
    expect(prot.type).toBe(SW_PROTECTED);
    expect([kvm.checkExtension(KVM_CAP_VM_TYPES), def.checkExtension(KVM_CAP_VM_TYPES), prot.checkExtension(KVM_CAP_VM_TYPES)]).toEqual([
      3, 3, 3,
    ]);
    expect([
      kvm.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES),
      def.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES),
      prot.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES),
    ]).toEqual([8, 0, 8]);
    // kvm_gmem_get_supported_flags: INIT_SHARED only where the VM has no private memory.
    expect([
      kvm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS),
      def.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS),
      prot.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS),
    ]).toEqual([3, 3, 1]);
  });

  it('guest_memfd creation on type 1: INIT_SHARED (alone or with MMAP) is EINVAL, checked before the size; 0 and MMAP work', () => {
    const { vm } = protectedVm();
    for (const flags of [INIT_SHARED, MMAP | INIT_SHARED]) {
      expect(thrown(() => vm.createGuestMemfd({ size: K4, flags })).code).toBe('EINVAL');
      // flags come first: a bad size does not change the answer, and a good one does not help.
      expect(thrown(() => vm.createGuestMemfd({ size: 1, flags })).message).toMatch(/unsupported flags/);
    }
    expect(vm.createGuestMemfd({ size: K4, flags: 0n }).flags).toBe(0n);
    const m = vm.createGuestMemfd({ size: K4, flags: MMAP });
    // Private by construction: every host fault on it is SIGBUS (docs/kvm-guest-memfd.md §2.5).
    const map = m.mmap({ length: K4, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    expect(() => map.read(0, 1)).toThrow(HostAccessFault);
    map.munmap();
  });

  it('a kernel built without CONFIG_KVM_SW_PROTECTED_VM is the probe machine: type 1 EINVAL, attributes ENOTTY, caps 1/0', () => {
    const kvm = openSimKvm({ swProtectedVm: false });
    expect(thrown(() => kvm.createVm(SW_PROTECTED)).code).toBe('EINVAL');
    expect([kvm.checkExtension(KVM_CAP_VM_TYPES), kvm.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES)]).toEqual([1, 0]);
    const vm = kvm.createVm();
    expect(thrown(() => vm.setMemoryAttributes({ address: 0, size: K4, attributes: PRIVATE, flags: 0 })).code).toBe('ENOTTY');
    expect(thrown(() => vm.setMemoryAttributes({ address: 1, size: 0, attributes: 0, flags: 1 })).code).toBe('ENOTTY');
  });
});

describe('KVM_SET_MEMORY_ATTRIBUTES: each row of docs/kvm-guest-memfd.md §1.4, in order', () => {
  type Row = { name: string; args: { address: bigint; size: bigint; attributes: bigint; flags: bigint }; check: string };
  // Each row is also invalid for every later check, so the reported check proves the order.
  const rows: Row[] = [
    {
      name: 'flags != 0 (first, even with bad attributes, size 0 and misalignment)',
      args: { address: 1n, size: 0n, attributes: 1n, flags: 1n },
      check: 'flags',
    },
    {
      name: 'unsupported attribute bit (before size and alignment)',
      args: { address: 1n, size: 0n, attributes: 1n, flags: 0n },
      check: 'attributes',
    },
    { name: 'size 0 (before alignment)', args: { address: 1n, size: 0n, attributes: PRIVATE, flags: 0n }, check: 'range' },
    {
      name: 'address + size wraps (before alignment)',
      args: { address: 2n ** 64n - 1n, size: 2n, attributes: PRIVATE, flags: 0n },
      check: 'range',
    },
    {
      name: 'address + size == 2^64 wraps to 0',
      args: { address: 2n ** 64n - 4096n, size: 4096n, attributes: 0n, flags: 0n },
      check: 'range',
    },
    { name: 'address not page-aligned', args: { address: 1n, size: 4096n, attributes: PRIVATE, flags: 0n }, check: 'alignment' },
    { name: 'size not page-aligned', args: { address: 4096n, size: 100n, attributes: PRIVATE, flags: 0n }, check: 'alignment' },
  ];
  it.each(rows.map((r) => [r.name, r] as const))('EINVAL: %s', (_n, row) => {
    const { vm } = protectedVm();
    const e = thrown(() => vm.setMemoryAttributes(row.args));
    expect(e.code).toBe('EINVAL');
    expect(e.syscall).toBe('ioctl(KVM_SET_MEMORY_ATTRIBUTES)');
    expect(e.info.check).toBe(row.check);
    expect(vm.isPrivate(0)).toBe(false);
  });

  it('on a default VM of the same kernel PRIVATE is an unsupported attribute (EINVAL); attributes 0 succeed (nothing to change)', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm() as SimKvmVm;
    expect(thrown(() => vm.setMemoryAttributes({ address: 0, size: K4, attributes: PRIVATE, flags: 0 })).info.check).toBe('attributes');
    vm.setMemoryAttributes({ address: 0, size: K4, attributes: 0, flags: 0 });
    expect(vm.isPrivate(0)).toBe(false);
  });

  it('sets and clears PRIVATE per gfn; the largest range is one call; an unchanged range is 0 and zaps nothing', () => {
    const { vm, gpa, setPrivate } = cocoGuest();
    setPrivate(gpa + 4096n, 2 * K4, true);
    expect([0n, 1n, 2n, 3n].map((p) => vm.isPrivate(gpa + p * 4096n))).toEqual([false, true, true, false]);
    // Install a mapping on page 1, then re-issue the same attributes: nothing changes, nothing is zapped.
    vm.guestAccess({ gpa: gpa + 4096n, len: 1 });
    expect(vm.sptesOf(10).has(1)).toBe(true);
    setPrivate(gpa + 4096n, K4, true);
    expect(vm.sptesOf(10).has(1)).toBe(true);
    // A real change zaps the range's mappings (kvm_arch_pre_set_memory_attributes).
    setPrivate(gpa + 4096n, K4, false);
    expect(vm.sptesOf(10).has(1)).toBe(false);
    vm.setMemoryAttributes({ address: 0, size: 2n ** 64n - 4096n, attributes: PRIVATE, flags: 0 });
    expect(vm.isPrivate(2n ** 64n - 8192n)).toBe(true);
  });
});

describe('guest faults on a SW_PROTECTED VM (docs/kvm-guest-memfd.md §2.8)', () => {
  it('shared gfns use userspace_addr, private gfns use guest_memfd; the host sees only the shared copy', () => {
    const { vm, g, shared, gpa, setPrivate } = cocoGuest();
    vm.guestAccess({ gpa, len: 2 * K4, write: true, fill: 0x11 });
    expect(shared.read(0, 2 * K4).every((b) => b === 0x11)).toBe(true);
    setPrivate(gpa, K4, true);
    // The private page starts zero (a fresh guest_memfd folio), not the shared 0x11.
    expect(vm.guestRead(gpa, 4)).toEqual(new Uint8Array(4));
    vm.guestAccess({ gpa, len: K4, write: true, fill: 0x22 });
    expect(shared.read(0, 4)).toEqual(new Uint8Array([0x11, 0x11, 0x11, 0x11]));
    expect(vm.guestRead(gpa, 1)[0]).toBe(0x22);
    // Back to shared: the guest sees the shared copy again; the private data stays in the file.
    setPrivate(gpa, K4, false);
    expect(vm.guestRead(gpa, 1)[0]).toBe(0x11);
    setPrivate(gpa, K4, true);
    expect(vm.guestRead(gpa, 1)[0]).toBe(0x22);
    g.fallocate(PUNCH, 0, K4);
    expect(vm.guestRead(gpa, 1)[0]).toBe(0);
  });

  it('a private/shared mismatch reported by the hardware exits with MEMORY_FAULT and EFAULT (flags follow the access)', () => {
    const { vm, gpa, setPrivate } = cocoGuest();
    setPrivate(gpa + 4096n, K4, true);
    const priv = thrown(() => vm.guestAccess({ gpa: gpa + 4096n + 8n, len: 8, private: false }));
    expect(priv.code).toBe('EFAULT');
    expect(priv.syscall).toBe('ioctl(KVM_RUN)');
    expect(memoryFaultExit(priv)).toEqual({ exitReason: KVM_EXIT_MEMORY_FAULT, memoryFault: { flags: 0n, gpa: gpa + 4096n, size: 4096n } });
    const shr = thrown(() => vm.guestAccess({ gpa, len: 1, write: true, private: true }));
    expect(memoryFaultExit(shr)).toEqual({
      exitReason: KVM_EXIT_MEMORY_FAULT,
      memoryFault: { flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa, size: 4096n },
    });
    // A matching explicit kind is served normally.
    expect(vm.guestAccess({ gpa: gpa + 4096n, len: 1, private: true })).toEqual(new Uint8Array(1));
  });

  it('a multi-page access stops at the first faulting page, keeping the bytes written before it', () => {
    const { vm, shared, gpa, setPrivate } = cocoGuest();
    setPrivate(gpa + 4096n, K4, true);
    const e = thrown(() => vm.guestAccess({ gpa: gpa + 4000n, len: 200, write: true, fill: 0x5a, private: false }));
    expect(memoryFaultExit(e)?.memoryFault.gpa).toBe(gpa + 4096n);
    expect(shared.read(4000, 96).every((b) => b === 0x5a)).toBe(true);
  });

  it('private access with no memslot, or to a slot without guest_memfd: MEMORY_FAULT (PRIVATE), EFAULT; shared access without a slot is plain MMIO', () => {
    const { kvm, vm } = protectedVm();
    vm.setMemoryAttributes({ address: 0x5000_0000, size: K4, attributes: PRIVATE, flags: 0 });
    expect(memoryFaultExit(thrown(() => vm.guestRead(0x5000_0000, 1)))?.memoryFault.flags).toBe(KVM_MEMORY_EXIT_FLAG_PRIVATE);
    const mmio = thrown(() => vm.guestRead(0x6000_0000, 1));
    expect([mmio.code, memoryFaultExit(mmio)]).toEqual(['EFAULT', undefined]);
    const anon = kvm.mmapAnonymous(K4);
    vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0x5000_0000, memorySize: K4, userspace: { mapping: anon } });
    const e = thrown(() => vm.guestRead(0x5000_0000, 1));
    expect(memoryFaultExit(e)).toEqual({
      exitReason: 39,
      memoryFault: { flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: 0x5000_0000n, size: 4096n },
    });
  });

  it('released guest_memfd: EFAULT with MEMORY_FAULT; poisoned page: EHWPOISON with MEMORY_FAULT', () => {
    const a = cocoGuest();
    a.setPrivate(a.gpa, 4 * K4, true);
    a.vm.guestAccess({ gpa: a.gpa, len: K4, write: true, fill: 1 });
    a.g.markPoisoned(2 * K4);
    const p = thrown(() => a.vm.guestRead(a.gpa + 2n * 4096n, 1));
    expect(p.code).toBe('EHWPOISON');
    expect(memoryFaultExit(p)).toEqual({
      exitReason: 39,
      memoryFault: { flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: a.gpa + 8192n, size: 4096n },
    });
    // Punching the poisoned page out gives a fresh zero page.
    a.g.fallocate(PUNCH, 2 * K4, K4);
    expect(a.vm.guestRead(a.gpa + 2n * 4096n, 1)[0]).toBe(0);
    a.g.close();
    const r = thrown(() => a.vm.guestRead(a.gpa, 1));
    expect(r.code).toBe('EFAULT');
    expect(memoryFaultExit(r)?.memoryFault).toEqual({ flags: KVM_MEMORY_EXIT_FLAG_PRIVATE, gpa: a.gpa, size: 4096n });
    // Shared pages of the orphaned slot still come from userspace_addr.
    a.setPrivate(a.gpa, K4, false);
    expect(a.vm.guestRead(a.gpa, 1)[0]).toBe(0);
  });

  it('poison on an INIT_SHARED guest_memfd of a default VM: host access SIGBUS, guest access EHWPOISON (flags 0)', () => {
    const kvm = openSimKvm();
    const vm = kvm.createVm() as SimKvmVm;
    const g = vm.createGuestMemfd({ size: 2 * K4, flags: MMAP | INIT_SHARED });
    const m = g.mmap({ length: 2 * K4, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: GMEM,
      guestPhysAddr: 0,
      memorySize: 2 * K4,
      userspace: { mapping: m },
      guestMemfdOffset: 0,
      guestMemfd: g.fd,
    });
    m.fill(0, 2 * K4, 7);
    g.markPoisoned(K4);
    expect(() => m.read(K4, 1)).toThrow(HostAccessFault);
    expect(m.read(0, 1)[0]).toBe(7);
    const e = thrown(() => vm.guestRead(K4, 1));
    expect(memoryFaultExit(e)).toEqual({ exitReason: 39, memoryFault: { flags: 0n, gpa: 4096n, size: 4096n } });
    expect(e.code).toBe('EHWPOISON');
    expect(thrown(() => g.markPoisoned(3)).code).toBe('EINVAL');
    expect(thrown(() => vm.guestAccess({ gpa: 0, len: 1, private: true })).code).toBe('EINVAL');
  });

  it('attributes belong to the VM: deleting and recreating the slot keeps them', () => {
    const { vm, g, shared, gpa, setPrivate } = cocoGuest(1);
    setPrivate(gpa, K4, true);
    vm.guestAccess({ gpa, len: 1, write: true, fill: 9 });
    vm.setUserMemoryRegion2({ slot: 10, flags: 0, guestPhysAddr: 0, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
    expect(vm.isPrivate(gpa)).toBe(true);
    vm.setUserMemoryRegion2({
      slot: 10,
      flags: GMEM,
      guestPhysAddr: gpa,
      memorySize: K4,
      userspace: { mapping: shared },
      guestMemfdOffset: 0,
      guestMemfd: g.fd,
    });
    expect(vm.guestRead(gpa, 1)[0]).toBe(9);
  });
});

describe('anonymous host memory (the shared side)', () => {
  it('reads zero first, keeps writes, MADV_DONTNEED frees (reads zero, memory returned), MADV_REMOVE is EINVAL', () => {
    const kvm = openSimKvm();
    const a = kvm.mmapAnonymous(3 * K4 + 10);
    expect(a.address % 4096n).toBe(0n);
    expect(a.read(0, 3 * K4 + 10).every((b) => b === 0)).toBe(true);
    a.fill(0, 3 * K4, 0x44);
    const used = kvm.stats().memory.bytesInUse;
    a.madvise(K4, K4, MADV_DONTNEED);
    expect(kvm.stats().memory.bytesInUse).toBe(used - K4);
    expect([a.read(0, 1)[0], a.read(K4, 1)[0], a.read(2 * K4, 1)[0]]).toEqual([0x44, 0, 0x44]);
    expect(thrown(() => a.madvise(0, K4, MADV_REMOVE)).code).toBe('EINVAL');
    expect(thrown(() => a.madvise(1, K4, MADV_DONTNEED)).code).toBe('EINVAL');
    expect(thrown(() => a.madvise(0, 8 * K4, MADV_DONTNEED)).code).toBe('ENOMEM');
    // The last page is mapped whole (the kernel maps length rounded up to a page); past it is SIGSEGV → EFAULT.
    expect(a.read(3 * K4, K4).every((b) => b === 0)).toBe(true);
    expect(thrown(() => a.read(4 * K4 - 10, 11)).code).toBe('EFAULT');
    a.markPoisoned(0);
    expect(() => a.read(0, 1)).toThrow(HostAccessFault);
    a.munmap();
    a.munmap();
    expect(kvm.stats()).toMatchObject({ mappings: 0 });
    expect(thrown(() => kvm.mmapAnonymous(0)).code).toBe('EINVAL');
  });

  it('a hwpoisoned shared page signals the vCPU: SIGBUS from KVM_RUN', () => {
    const { vm, shared, gpa } = cocoGuest(1);
    shared.markPoisoned(0);
    const e = thrown(() => vm.guestRead(gpa, 1));
    expect([e.code, e.syscall]).toEqual(['SIGBUS', 'ioctl(KVM_RUN)']);
  });
});
