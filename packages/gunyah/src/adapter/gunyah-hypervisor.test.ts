import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { container as root } from 'tsyringe';
import { HYPERVISOR, HYPERVISOR_REGISTRY, registerCore, FOLIO_ALLOCATOR, ArenaFolioAllocator } from '@guestmem/core';
import { GunyahHypervisor, registerGunyah } from './index.js';

const MIB = 1n << 20n;

describe('GunyahHypervisor (neutral interfaces)', () => {
  it('capabilities: private + shared memory, conversion by remap only, guest access, huge pages', () => {
    const h = new GunyahHypervisor();
    expect(h.id).toBe('gunyah-sim');
    expect(h.capabilities.has('convert-remap')).toBe(true);
    expect(h.capabilities.has('convert-in-place')).toBe(false);
    expect(h.capabilities.has('private-memory')).toBe(true);
    expect(h.capabilities.has('guest-access')).toBe(true);
    expect(h.capabilities.simulated).toBe(true);
    expect(h.capabilities.pageSizes).toEqual([4096, 2 * 1024 * 1024]);
  });

  it('hugePages with a size that is not a 2 MiB multiple is refused with EINVAL, creating nothing (a hugepage file binds only in 2 MiB units: v17 24/35)', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    for (const size of [4096n, MIB, 3n * MIB, 2n * MIB + 4096n]) {
      expect(() => vm.createGuestMemory({ size, hugePages: true })).toThrow(
        expect.objectContaining({ code: 'EINVAL', op: 'createGuestMemory', backend: 'gunyah-sim' }),
      );
    }
    expect(h.device.stats()).toMatchObject({ openFds: 1, files: 0 }); // only the VM fd
    const ok = vm.createGuestMemory({ size: 4n * MIB, hugePages: true });
    expect(ok.size).toBe(4n * MIB);
    expect(vm.createGuestMemory({ size: 3n * MIB }).size).toBe(3n * MIB); // without hugePages any page multiple
  });

  it('private = lend: the guest writes, the host cannot map it; shared = share: both see it', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 16384, hostMappable: true });
    const priv = vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: 8192 });
    vm.bind({ memory: mem, offset: 8192, gpa: 0x20000, size: 8192, access: 'shared' });
    expect(vm.memoryState.get(0x10)).toBe('private');
    expect(vm.memoryState.get(0x20)).toBe('shared');
    vm.guestWrite(0x10000, Uint8Array.of(1, 2, 3));
    vm.guestWrite(0x20000, Uint8Array.of(4, 5, 6));
    expect(() => mem.map({ offset: 0, length: 4096 })).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    const v = mem.map({ offset: 8192, length: 4096 });
    expect(v.read(0, 3)).toEqual(Uint8Array.of(4, 5, 6));
    v.unmap();
    expect(vm.guestRead(0x10000, 3)).toEqual(Uint8Array.of(1, 2, 3));
    // An address no binding ever backed is a VMMIO access (MMIO exit); the neutral answer is EFAULT.
    expect(() => vm.guestRead(0x90000, 1)).toThrow(
      expect.objectContaining({
        code: 'EFAULT',
        syscall: 'ioctl(GUNYAH_VCPU_RUN)',
        info: expect.objectContaining({ exit: expect.objectContaining({ exitReason: 1, physAddr: 0x90000n }) }),
      }),
    );
    // A private (lent) range of the start, once unbound, is still demand-paged: PAGE_FAULT -ENOENT.
    priv.unbind();
    expect(() => vm.guestRead(0x10000, 1)).toThrow(
      expect.objectContaining({
        code: 'EFAULT',
        info: expect.objectContaining({ exit: expect.objectContaining({ exitReason: 3, attempt: -2 }) }),
      }),
    );
    expect(priv.active).toBe(false);
  });

  it('convert = unmap + remap: refused while the guest holds a lent page, all-or-nothing (guestCooperates: false)', () => {
    const h = new GunyahHypervisor({ guestCooperates: false });
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 16384, initiallyShared: true });
    vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: 16384, access: 'shared' });
    vm.guestWrite(0x11000, Uint8Array.of(9));
    // shared → private for the middle page: tail unmap + remap of three pieces
    vm.convert({ gpa: 0x11000, size: 4096 }, 'private', { discard: false });
    expect(vm.bindings().map((b) => [b.gpa, b.size])).toEqual([
      [0x10000n, 4096n],
      [0x11000n, 4096n],
      [0x12000n, 8192n],
    ]);
    expect(vm.memoryState.get(0x11)).toBe('private');
    expect(vm.guestRead(0x11000, 1)).toEqual(Uint8Array.of(9)); // same pages, in place; now locked
    const before = vm.bindings().map((b) => [b.gpa, b.size]);
    expect(() => vm.convert({ gpa: 0x10000, size: 16384 }, 'shared')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(vm.bindings().map((b) => [b.gpa, b.size])).toEqual(before);
    expect(vm.memoryState.get(0x10)).toBe('shared');
    // A range reaching past the bindings is refused the same way (unbound GPAs would only change state).
    expect(() => vm.convert({ gpa: 0x10000, size: 0x10000 }, 'shared')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(vm.bindings().map((b) => [b.gpa, b.size])).toEqual(before);
    expect(vm.memoryState.get(0x20)).toBe('shared');
  });

  it('a cooperating guest relinquishes (sanitized) before unbind/convert; without cooperation unbind is EBUSY', () => {
    for (const guestCooperates of [true, false]) {
      const h = new GunyahHypervisor({ guestCooperates });
      const vm = h.createVm();
      const mem = vm.createGuestMemory({ size: 8192, hostMappable: true });
      const b = vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: 8192, access: 'private' });
      vm.guestWrite(0x10000, Uint8Array.of(0x5a));
      if (!guestCooperates) {
        expect(() => b.unbind()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
        expect(b.active).toBe(true);
        vm.destroy(); // teardown still reclaims everything
        expect(b.active).toBe(false);
      } else {
        b.unbind();
        const v = mem.map();
        // The page stays private after the binding is gone: the host never sees private data.
        expect(() => v.read(0, 1)).toThrow(expect.objectContaining({ code: 'SIGBUS' }));
        v.unmap();
      }
      mem.close();
      h.close();
      expect(h.device.stats()).toMatchObject({ openFds: 0, folioBytes: 0n });
    }
  });

  it('memory created without hostMappable cannot be mapped (ENODEV); binds must lie inside the memory', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 8192 });
    expect(() => mem.map()).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(() => vm.bind({ memory: mem, offset: 4096, gpa: 0, size: 8192 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    h.close();
  });

  it('convert with discard punches the converted pages', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 8192, initiallyShared: true });
    vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: 8192, access: 'shared' });
    vm.guestWrite(0x10000, Uint8Array.of(7));
    vm.guestWrite(0x11000, Uint8Array.of(8));
    vm.convert({ gpa: 0x10000, size: 4096 }, 'private');
    expect(vm.guestRead(0x10000, 1)).toEqual(Uint8Array.of(0));
    expect(vm.guestRead(0x11000, 1)).toEqual(Uint8Array.of(8));
  });

  it('destroy unbinds everything; memory keeps its data and is freed on close; nothing leaks', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 2n * MIB, hugePages: true, hostMappable: true, initiallyShared: true });
    const b = vm.bind({ memory: mem, offset: 0, gpa: 0x4000_0000n, size: 2n * MIB, access: 'shared' });
    vm.guestWrite(0x4000_0000n, Uint8Array.of(42));
    vm.destroy();
    expect(b.active).toBe(false);
    expect(vm.destroyed).toBe(true);
    const v = mem.map({ offset: 0, length: 4096 });
    expect(v.read(0, 1)).toEqual(Uint8Array.of(42));
    v.unmap();
    mem.close();
    expect(h.device.stats()).toMatchObject({ openFds: 0, bindings: 0, folioBytes: 0n, parcels: 0 });
  });

  it("a middle-page conversion keeps the tail private: data intact, still out of the host's reach", () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 4 * 4096, hostMappable: true });
    vm.bind({ memory: mem, offset: 0, gpa: 0x10000, size: 4 * 4096, access: 'private' });
    for (let i = 0; i < 4; i++) vm.guestWrite(0x10000 + i * 4096, Uint8Array.of(0x10 + i));
    vm.convert({ gpa: 0x11000, size: 4096 }, 'shared');
    // The tail [0x12000, 0x14000) was unmapped and mapped back: the guest took its pages back, so the
    // host still cannot map them (reclaim refused), and they were not sanitized.
    expect(() => mem.map({ offset: 2 * 4096, length: 4096 })).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(vm.guestRead(0x12000, 1)).toEqual(Uint8Array.of(0x12));
    expect(vm.guestRead(0x13000, 1)).toEqual(Uint8Array.of(0x13));
    const v = mem.map({ offset: 4096, length: 4096 });
    expect(v.read(0, 1)).toEqual(Uint8Array.of(0)); // the converted page: sanitized and punched
    v.unmap();
    h.close();
    mem.close();
    expect(h.device.stats()).toMatchObject({ openFds: 0, bindings: 0, folioBytes: 0n });
  });

  it('a hugepage binding converts in 2 MiB units; an unaligned conversion is EINVAL before anything changes', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 4n * MIB, hugePages: true });
    const G = 0x4000_0000n;
    vm.bind({ memory: mem, offset: 0, gpa: G, size: 4n * MIB, access: 'private' });
    vm.guestWrite(G, Uint8Array.of(1));
    vm.guestWrite(G + 2n * MIB + 4096n, Uint8Array.of(2));
    const before = vm.bindings().map((b) => [b.gpa, b.size]);
    expect(() => vm.convert({ gpa: G + 4096n, size: 4096 }, 'shared')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(vm.bindings().map((b) => [b.gpa, b.size])).toEqual(before);
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(1));
    vm.convert({ gpa: G, size: 2n * MIB }, 'shared');
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(0));
    expect(vm.guestRead(G + 2n * MIB + 4096n, 1)).toEqual(Uint8Array.of(2));
    h.close();
    mem.close();
    expect(h.device.stats()).toMatchObject({ openFds: 0, bindings: 0, folioBytes: 0n });
  });

  it('closing a bound memory keeps its fd until the last binding goes; a failed bind leaves no binding', () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const a = vm.createGuestMemory({ size: 4 * 4096 });
    const b = vm.bind({ memory: a, offset: 0, gpa: 0x10000, size: 4096, access: 'private' });
    vm.convert({ gpa: 0x10000, size: 4096 }, 'shared'); // re-creates the binding under the same fd
    const fds = h.device.stats().openFds;
    a.close();
    expect(a.closed).toBe(true);
    expect(() => a.allocate(0, 4096)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(h.device.stats().openFds).toBe(fds); // still needed for UNMAP
    for (const x of vm.bindings()) x.unbind();
    expect(b.active).toBe(false);
    expect(h.device.stats().openFds).toBe(fds - 1);
    const c = vm.createGuestMemory({ size: 4096 });
    expect(() => vm.bind({ memory: c, offset: 0, gpa: -4096, size: 4096 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(h.device.stats().bindings).toBe(0);
    vm.bind({ memory: c, offset: 0, gpa: 0x20000, size: 4096 }).unbind();
    c.close();
    h.close();
    expect(h.device.stats()).toMatchObject({ openFds: 0, bindings: 0, folioBytes: 0n });
  });

  it("host views report the mapping's page-rounded length and fill in place", () => {
    const h = new GunyahHypervisor();
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 4 * 4096, hostMappable: true, initiallyShared: true });
    const v = mem.map({ offset: 0, length: 5000 });
    expect(v.length).toBe(8192);
    v.fill(4000, 4192, 0xab);
    expect(v.read(3999, 2)).toEqual(Uint8Array.of(0, 0xab));
    expect(v.read(8191, 1)).toEqual(Uint8Array.of(0xab));
    v.unmap();
    mem.close();
    h.close();
  });

  it('registerGunyah: selectable by id through the registry, sharing the container allocator', () => {
    const c = root.createChildContainer();
    const allocator = new ArenaFolioAllocator();
    registerCore(c, { allocator, hypervisor: 'gunyah-sim' });
    registerGunyah(c);
    expect(
      c
        .resolve(HYPERVISOR_REGISTRY)
        .list()
        .map((p) => p.id),
    ).toContain('gunyah-sim');
    const h = c.resolve(HYPERVISOR) as GunyahHypervisor;
    expect(h.id).toBe('gunyah-sim');
    expect(c.resolve(FOLIO_ALLOCATOR)).toBe(allocator);
    const vm = h.createVm();
    const mem = vm.createGuestMemory({ size: 4096 });
    vm.bind({ memory: mem, offset: 0, gpa: 0, size: 4096 });
    vm.guestWrite(0, Uint8Array.of(1));
    expect(allocator.stats().bytesInUse).toBe(8192); // the page + the adapter's DTB page
    h.close();
    mem.close();
    expect(allocator.stats().bytesInUse).toBe(0);
  });
});
