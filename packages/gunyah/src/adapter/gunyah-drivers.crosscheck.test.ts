/**
 * One neutral-API scenario set run on both simulated Gunyah drivers: the v17 series (`gunyah-sim`)
 * and the Android Common Kernel (`gunyah-ack-sim`). Where the hypervisor's rules must agree, both
 * give the same answer; where the kernels differ by design, each scenario asserts each driver's own
 * answer with its source (v17: docs/gunyah-v17.md; ACK: docs/gunyah-ack.md, keys K1–K13).
 */
import { describe, expect, it } from 'vitest';
import { GuestMemError, type GuestMemory, type Hypervisor, type Vm } from '@guestmem/core';
import { GunyahAckHypervisor } from '../ack/adapter/gunyah-ack-hypervisor.js';
import { GunyahHypervisor } from './gunyah-hypervisor.js';
import { gunyahGuestControls, type GunyahGuestControls } from './guest-controls.js';
import { openGunyah } from '../sim/device.js';
import { MAP_FLAGS_V17 as V17 } from '../uapi/index.js';
import { AckCell } from '../ack/sim/test-helpers.js';

const P = 4096;
const G = 0x8000_0000n;

interface Driver {
  id: 'gunyah-sim' | 'gunyah-ack-sim';
  /** v17 without the cooperating-guest convenience, so both adapters expose the raw rules. */
  create: () => Hypervisor;
}
const DRIVERS: Driver[] = [
  { id: 'gunyah-sim', create: () => new GunyahHypervisor({ guestCooperates: false }) },
  { id: 'gunyah-ack-sim', create: () => new GunyahAckHypervisor() },
];

function setup(d: Driver, access: 'private' | 'shared', pages = 4): { h: Hypervisor; vm: Vm; m: GuestMemory; ctl: GunyahGuestControls } {
  const h = d.create();
  const vm = h.createVm();
  const m = vm.createGuestMemory({ size: pages * P, hostMappable: true, initiallyShared: true });
  vm.bind({ memory: m, offset: 0, gpa: G, size: pages * P, access });
  return { h, vm, m, ctl: gunyahGuestControls(vm)! };
}

/** The host's attempt to read `len` bytes at `offset`: the bytes, or the error code that stopped it (at map or at access). */
function hostRead(m: GuestMemory, offset: number, len = 1): Uint8Array | string {
  try {
    const v = m.map({ offset, length: P });
    try {
      return v.read(0, len);
    } finally {
      v.unmap();
    }
  } catch (e) {
    if (e instanceof GuestMemError) return e.code;
    throw e;
  }
}

const errCode = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuestMemError) return e.code;
    throw e;
  }
  return undefined;
};

describe('each neutral adapter speaks its own uAPI: 0x10 is never carried across', () => {
  it('regression: v17 private/shared bindings go out as FORCE_LEND|R|W|X (0x71) / FORCE_SHARE|R|W (0x32) on MAP_MEM; ACK as region flags R|W|X (0x7) on LEND_USER_MEM / SET_USER_MEM_REGION — never with ACK FORCE_LEND 0x10, which the region ioctls refuse [v17 gunyah.h (test VMM bindings.rs); K7 gunyah.h, vm_mgr.c flags & ~0x7 → EINVAL; crosvm sets R|X(|W)]', () => {
    const v17 = new GunyahHypervisor({ guestCooperates: false });
    const ack = new GunyahAckHypervisor();
    for (const h of [v17, ack]) {
      const vm = h.createVm();
      const m = vm.createGuestMemory({ size: 2 * P, hostMappable: true, initiallyShared: true });
      vm.bind({ memory: m, offset: 0, gpa: G, size: P, access: 'private' });
      vm.bind({ memory: m, offset: P, gpa: G + BigInt(P), size: P, access: 'shared' });
      const sim = (vm as unknown as { sim: { bindings(): ReadonlyArray<{ flags: number; share?: string }> } }).sim;
      const wire = sim.bindings().map((b) => [b.flags, b.share]);
      if (h === v17)
        expect(wire).toEqual([
          [0x71, undefined],
          [0x32, undefined],
        ]);
      else
        expect(wire).toEqual([
          [0x7, 'lend'],
          [0x7, 'share'],
        ]);
    }
    expect(V17.GUNYAH_MEM_FORCE_LEND | V17.GUNYAH_MEM_ALLOW_RWX).toBe(0x71);
    v17.close();
    ack.close();
  });
});

describe.each(DRIVERS)('Gunyah drivers agree: $id', (d) => {
  it('lend makes memory host-inaccessible: no byte of a page the guest holds, nor of one it never touched, reaches the host; the guest keeps its data', () => {
    const { h, vm, m } = setup(d, 'private');
    vm.guestWrite(G, Uint8Array.of(0x5e, 0xc3));
    for (const page of [0, 3]) {
      const r = hostRead(m, page * P, 2);
      expect(r, `page ${page}`).not.toBeInstanceOf(Uint8Array);
      expect(['EBUSY', 'SIGBUS']).toContain(r);
    }
    expect(vm.guestRead(G, 2)).toEqual(Uint8Array.of(0x5e, 0xc3));
    h.close();
  });

  it('share keeps guest and host coherent in both directions', () => {
    const { h, vm, m } = setup(d, 'shared');
    vm.guestWrite(G + BigInt(P), Uint8Array.of(1, 2, 3));
    const v = m.map({ offset: 0, length: 4 * P });
    expect(v.read(P, 3)).toEqual(Uint8Array.of(1, 2, 3));
    v.write(P + 3, Uint8Array.of(4));
    expect(vm.guestRead(G + BigInt(P), 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    v.unmap();
    h.close();
  });

  it('reclaim of touched lent memory fails with EBUSY and changes nothing until the guest relinquishes it; then it succeeds, the binding stays and the guest faults its unscrubbed page in again', () => {
    const { h, vm, ctl } = setup(d, 'private');
    vm.guestWrite(G, Uint8Array.of(0x42));
    vm.guestWrite(G + BigInt(2 * P), Uint8Array.of(0x43));
    expect(errCode(() => ctl.reclaim({ gpa: G, size: 4 * P }))).toBe('EBUSY');
    expect(vm.guestRead(G + BigInt(2 * P), 1)).toEqual(Uint8Array.of(0x43)); // still the guest's
    ctl.relinquish({ gpa: G, size: P });
    expect(errCode(() => ctl.reclaim({ gpa: G, size: 4 * P }))).toBe('EBUSY'); // page 2 is still held: nothing reclaimed
    ctl.relinquish({ gpa: G + BigInt(2 * P), size: P });
    ctl.reclaim({ gpa: G, size: 4 * P });
    expect(vm.bindings().length).toBe(1);
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(0x42)); // reclaim does not scrub
    expect(errCode(() => ctl.reclaim({ gpa: G, size: 4 * P }))).toBe('EBUSY'); // the re-faulted page is held again
    h.close();
  });

  it('a sanitizing relinquish zeroes the pages before the host reclaims them', () => {
    const { h, vm, ctl } = setup(d, 'private');
    vm.guestWrite(G, Uint8Array.of(0x99));
    ctl.relinquish({ gpa: G, size: P }, { sanitize: true });
    ctl.reclaim({ gpa: G, size: P });
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(0));
    h.close();
  });

  it('reclaim of shared memory never fails', () => {
    const { h, vm, ctl } = setup(d, 'shared');
    vm.guestWrite(G, Uint8Array.of(7));
    ctl.reclaim({ gpa: G, size: 4 * P });
    expect(vm.guestRead(G, 1)).toEqual(Uint8Array.of(7));
    h.close();
  });
});

describe('Gunyah drivers differ by design', () => {
  const answers = (fn: (d: Driver) => unknown): Record<string, unknown> => Object.fromEntries(DRIVERS.map((d) => [d.id, fn(d)]));

  it('unbind: v17 removes the binding (MAP_MEM | UNMAP, docs/gunyah-v17.md §1.5); ACK has no removal ioctl (docs/gunyah-ack.md §4, §7): EOPNOTSUPP, binding kept', () => {
    expect(
      answers((d) => {
        const { h, vm } = setup(d, 'shared');
        const code = errCode(() => vm.bindings()[0]!.unbind());
        const left = vm.bindings().length;
        h.close();
        return [code, left];
      }),
    ).toEqual({ 'gunyah-sim': [undefined, 0], 'gunyah-ack-sim': ['EOPNOTSUPP', 1] });
  });

  it('punch of touched lent memory: v17 reclaims through the file and refuses (EBUSY, docs/gunyah-v17.md §2.9); ACK has no file to punch (EOPNOTSUPP)', () => {
    expect(
      answers((d) => {
        const { h, vm, m } = setup(d, 'private');
        vm.guestWrite(G, Uint8Array.of(1));
        const code = errCode(() => m.punchHole(0, P));
        h.close();
        return code;
      }),
    ).toEqual({ 'gunyah-sim': 'EBUSY', 'gunyah-ack-sim': 'EOPNOTSUPP' });
  });

  it('mapping a range the guest holds: v17 mmap reclaims first and fails (EBUSY, docs/gunyah-v17.md §1.6); ACK keeps the host mapping and the access takes a stage-2 fault (SIGBUS; K6 memory.rs, inference for the signal)', () => {
    expect(
      answers((d) => {
        const { h, vm, m } = setup(d, 'private');
        vm.guestWrite(G, Uint8Array.of(1));
        let mapCode: string | undefined;
        let readCode: string | undefined;
        try {
          const v = m.map({ offset: 0, length: P });
          readCode = errCode(() => v.read(0, 1));
          v.unmap();
        } catch (e) {
          mapCode = (e as GuestMemError).code;
        }
        h.close();
        return { mapCode, readCode };
      }),
    ).toEqual({ 'gunyah-sim': { mapCode: 'EBUSY', readCode: undefined }, 'gunyah-ack-sim': { mapCode: undefined, readCode: 'SIGBUS' } });
  });

  it('conversion: v17 converts by UNMAP + MAP (convert-remap); ACK fixes lend/share per region and cannot remove one (EOPNOTSUPP)', () => {
    expect(
      answers((d) => {
        const { h, vm } = setup(d, 'shared');
        const code = errCode(() => vm.convert({ gpa: G, size: P }, 'private'));
        const state = vm.memoryState.get(Number(G / 4096n));
        h.close();
        return [code, state, vm.capabilities.has('convert-remap')];
      }),
    ).toEqual({ 'gunyah-sim': [undefined, 'private', true], 'gunyah-ack-sim': ['EOPNOTSUPP', 'shared', false] });
  });

  it('capabilities say so: unbind and punch-hole on v17 only; guest-memory (a file the host cannot freely map) on v17 only', () => {
    expect(
      answers((d) => {
        const h = d.create();
        const c = ['unbind', 'punch-hole', 'guest-memory', 'private-memory', 'host-map'].map((x) => h.capabilities.has(x as never));
        h.close();
        return c;
      }),
    ).toEqual({
      'gunyah-sim': [true, true, true, true, true],
      'gunyah-ack-sim': [false, false, false, true, true],
    });
  });
});

describe('Gunyah drivers differ below the neutral API (uAPI level, where the neutral rule hides it)', () => {
  it("the host's own access to lent memory: v17's mmap reclaims a page the guest relinquished and then reads it (docs/gunyah-v17.md §1.6); ACK keeps a touched page out of the host's stage 2 until RECLAIM_REGION, whatever the guest did (K6, K7: no host-fault reclaim without a guest_memfd), while a lent page the guest never touched is still plain host memory", () => {
    // v17
    const v17 = openGunyah({ driver: 'sim' });
    const dtb = v17.createGuestMem({ flags: 0n, size: 4096n });
    const vm17 = v17.createVm();
    vm17.mapMem({
      guestAddr: 0x4000_0000n,
      flags: V17.GUNYAH_MEM_FORCE_LEND | V17.GUNYAH_MEM_ALLOW_RWX,
      guestMemFd: dtb.fd,
      offset: 0,
      size: 4096,
    });
    vm17.setDtbConfig({ guestPhysAddr: 0x4000_0000n, size: 4096 });
    vm17.start();
    const mem = v17.createGuestMem({ flags: 0n, size: BigInt(2 * P) });
    vm17.mapMem({ guestAddr: G, flags: V17.GUNYAH_MEM_FORCE_LEND | V17.GUNYAH_MEM_ALLOW_RWX, guestMemFd: mem.fd, offset: 0, size: 2 * P });
    expect(vm17.vcpu(0).write(G, Uint8Array.of(0x31)).status).toBe('done');
    vm17.vcpu(0).relinquish(G, 1);
    const view = mem.mmap({ offset: 0, length: P });
    expect(view.read(0, 1)).toEqual(Uint8Array.of(0x31));
    view.unmap();
    // ACK
    const c = new AckCell();
    const lent = c.add(G, BigInt(2 * P), 'lend');
    c.write(G, Uint8Array.of(0x31));
    c.cpu.relinquish(G, 1);
    expect(() => lent.memory.read(0, 1)).toThrow(expect.objectContaining({ code: 'SIGBUS' }));
    expect(lent.memory.read(P, 1)).toEqual(Uint8Array.of(0)); // never touched by the guest
    c.vm.reclaimRegion({ guestPhysAddr: G, size: BigInt(2 * P) });
    expect(lent.memory.read(0, 1)).toEqual(Uint8Array.of(0x31));
  });
});
