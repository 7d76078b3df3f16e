/**
 * Anonymous host memory on the real kernel, beyond what the differential suite compares: a real
 * guest reaching it through a guest_memfd slot's `userspace_addr`, the madvise policy next to an
 * adjacent mapping, and the adapter unmapping its shared sides (checked in /proc/self/maps).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFds, type Kvm } from '../api.js';
import type { KvmBinding } from '../adapter/kvm-hypervisor.js';
import { openKvmHypervisor } from '../adapter/register.js';
import { openKvm } from '../open.js';
import { KVM_EXIT_HLT, KVM_EXIT_IO, KVM_MEM_GUEST_MEMFD, MADV_DONTNEED, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { asNativeVm } from './driver.js';
import { probeNativeKvm } from './probe.js';
import { enterRealMode, runVcpu } from './vcpu.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping anonymous-memory tests: ${probe.reason}`);

const P = 4096;

/** True when `address` lies in a mapping of this process. */
function mapped(address: bigint): boolean {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((line) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
      return m !== null && BigInt(`0x${m[1]}`) <= address && address < BigInt(`0x${m[2]}`);
    });
}

describe.skipIf(!probe.available)('native anonymous memory', () => {
  let kvm: Kvm;
  let before: number[];
  beforeAll(() => {
    before = openFds();
    kvm = openKvm({ driver: 'native' });
  });
  afterAll(() => {
    kvm.close();
    expect(openFds(), 'fds leaked').toEqual(before);
  });

  it("a real guest reads and writes the anonymous memory at a guest_memfd slot's userspace_addr", () => {
    const vm = asNativeVm(kvm.createVm());
    const code = vm.createGuestMemfd({ size: P, flags: 3n });
    const codeMap = code.mmap({ length: P, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    const data = vm.createGuestMemfd({ size: P, flags: 0n });
    const anon = kvm.mmapAnonymous(P);
    try {
      // mov ax, 0x2000 ; mov ds, ax ; mov al, [0x10] ; out 0x12, al ; mov byte [0x11], 0x5a ; hlt
      codeMap.write(0, Uint8Array.of(0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa0, 0x10, 0x00, 0xe6, 0x12, 0xc6, 0x06, 0x11, 0x00, 0x5a, 0xf4));
      anon.fill(0x10, 1, 0x66);
      vm.setUserMemoryRegion2({
        slot: 0,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0x1000,
        memorySize: P,
        userspace: { mapping: codeMap },
        guestMemfd: code.fd,
        guestMemfdOffset: 0,
      });
      // A private (flags 0) guest_memfd is not gmem-only: KVM reaches the slot through userspace_addr.
      vm.setUserMemoryRegion2({
        slot: 1,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0x20000,
        memorySize: P,
        userspace: { mapping: anon },
        guestMemfd: data.fd,
        guestMemfdOffset: 0,
      });
      const vcpu = vm.createVcpu(0);
      enterRealMode(vcpu, 0, 0x1000);
      const r = runVcpu(vcpu, { maxRuns: 10 });
      vcpu.close();
      expect(r.exits.map((e) => e.reason)).toEqual([KVM_EXIT_IO, KVM_EXIT_HLT]);
      expect(r.exits[0]!.io!.data).toEqual(Uint8Array.of(0x66));
      expect(anon.read(0x10, 2)).toEqual(Uint8Array.of(0x66, 0x5a));
      // MADV_DONTNEED frees the page: the host reads zero again.
      anon.madvise(0, P, MADV_DONTNEED);
      expect(anon.read(0x10, 2)).toEqual(Uint8Array.of(0, 0));
    } finally {
      vm.close();
      anon.munmap();
      codeMap.munmap();
      code.close();
      data.close();
    }
  });

  it('madvise never reaches an adjacent mapping (the kernel would, through a merged VMA)', () => {
    const a = kvm.mmapAnonymous(2 * P);
    const b = kvm.mmapAnonymous(2 * P);
    try {
      a.fill(0, 2 * P, 1);
      b.fill(0, 2 * P, 2);
      // Cover both mappings from each side, whichever way the kernel placed them.
      const [lo, hi] = a.address < b.address ? [a, b] : [b, a];
      const span = hi.address + 2n * BigInt(P) - lo.address;
      expect(() => lo.madvise(0, span, MADV_DONTNEED)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
      expect(lo.read(0, 2 * P).every((x) => x === 0)).toBe(true);
      expect(hi.read(0, 2 * P).every((x) => x !== 0)).toBe(true);
      hi.fill(0, 2 * P, 3);
      lo.fill(0, 2 * P, 4);
      expect(() => hi.madvise(lo.address - hi.address, span, MADV_DONTNEED)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
      expect(hi.read(0, 2 * P).every((x) => x === 0)).toBe(true);
      expect(lo.read(0, 2 * P).every((x) => x === 4)).toBe(true);
    } finally {
      a.munmap();
      b.munmap();
    }
  });

  it('the adapter backs memory it cannot map shared with anonymous memory, and unbind / destroy unmap it', () => {
    const h = openKvmHypervisor({ driver: 'native' });
    try {
      const vm = h.createVm();
      const mem = vm.createGuestMemory({ size: 4 * P });
      const b = vm.bind({ memory: mem, offset: 0, gpa: 0x10_0000, size: 4 * P, access: 'shared' }) as KvmBinding;
      const anon = b.hostMemory!;
      expect(anon.flags).toBe(0x22); // MAP_PRIVATE | MAP_ANONYMOUS
      expect(mapped(anon.address)).toBe(true);
      b.sharedView()!.write(P, Uint8Array.of(9, 8, 7));
      expect(anon.read(P, 3)).toEqual(Uint8Array.of(9, 8, 7));
      // Punching the memory object frees the shared copy of the page too (invariant 2).
      mem.punchHole(P, P);
      expect(b.sharedView()!.read(P, 3)).toEqual(Uint8Array.of(0, 0, 0));
      b.unbind();
      expect(anon.unmapped).toBe(true);
      expect(mapped(anon.address)).toBe(false);
      const b2 = vm.bind({ memory: mem, offset: 0, gpa: 0x10_0000, size: 4 * P, access: 'shared' }) as KvmBinding;
      const anon2 = b2.hostMemory!;
      vm.destroy();
      expect(anon2.unmapped).toBe(true);
      expect(mapped(anon2.address)).toBe(false);
      mem.close();
    } finally {
      h.close();
    }
  });
});
