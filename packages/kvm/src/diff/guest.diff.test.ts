/**
 * Differential guest tests: the same GuestPrograms run on the real /dev/kvm (x86-64 long-mode code
 * in guest_memfd) and on the simulated kernel configured like this host (`swProtectedVm: false`,
 * its op list through the kernel's guest-access rules). Exits and memory must be identical.
 *
 * The released-file case is where hosts differ: on this host (PVM, every guest instruction
 * emulated, guest memory reached through `userspace_addr`) a data access gives KVM_EXIT_MMIO; a
 * hardware-virtualised host gives KVM_RUN -1 EFAULT with a KVM_EXIT_MEMORY_FAULT record. The sim's
 * `releasedMemoryExit` selects (default from `swProtectedVm: false`: this host's); both are asserted.
 */
import {
  GuestProgram,
  buildGuestImage,
  loadGuest,
  runGuest,
  type GuestMemory,
  type HostView,
  type MemoryBinding,
  type VcpuExit,
  type Vm,
} from '@guestmem/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvmBinding, type KvmHypervisor } from '../adapter/kvm-hypervisor.js';
import { openKvmHypervisor } from '../adapter/register.js';
import { openFds } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm guest diff] skipped: ${probe.reason}`);

const DATA_GPA = 0x20_0000n; // 2 MiB: right after the image memory
const DATA_SIZE = 64 * 1024;
const PORT = 0x10;

/** One side of a differential run: a VM with image memory at 0 and a data region. */
class Guest {
  readonly hv: KvmHypervisor;
  readonly vm: Vm;
  data: GuestMemory;
  dataBinding: MemoryBinding;
  readonly view: HostView;

  constructor(driver: 'native' | 'sim', opts: { releasedMemoryExit?: 'memory-fault' | 'mmio' } = {}) {
    this.hv =
      driver === 'sim'
        ? openKvmHypervisor({ driver: 'sim', profile: '6.18', swProtectedVm: false, ...opts })
        : openKvmHypervisor({ driver: 'native' });
    this.vm = this.hv.createVm();
    const low = this.vm.createGuestMemory({ size: 2 << 20, hostMappable: true, initiallyShared: true });
    this.vm.bind({ memory: low, offset: 0, gpa: 0, size: 2 << 20 });
    this.data = this.vm.createGuestMemory({ size: DATA_SIZE, hostMappable: true, initiallyShared: true });
    this.dataBinding = this.vm.bind({ memory: this.data, offset: 0, gpa: DATA_GPA, size: DATA_SIZE });
    this.view = this.data.map();
  }

  run(p: GuestProgram): { exits: object[]; stoppedBy: string } {
    const vcpu = this.vm.createVcpu();
    try {
      loadGuest(this.vm, vcpu, buildGuestImage(p));
      const r = runGuest(this.vm, vcpu, { timeoutMs: 20_000, maxExits: 64 });
      return { exits: r.exits.map(neutral), stoppedBy: r.stoppedBy };
    } finally {
      vcpu.close();
    }
  }

  close(): void {
    this.view.unmap();
    this.hv.close();
  }
}

/** The neutral fields of an exit (what must match), without the backend's raw record. */
function neutral(e: VcpuExit): object {
  const { info: _info, ...rest } = e;
  return rest;
}

/** Runs `scenario` on both drivers and returns both results. */
function both<T>(scenario: (g: Guest) => T, simOpts?: { releasedMemoryExit?: 'memory-fault' | 'mmio' }): { native: T; sim: T } {
  const n = new Guest('native');
  const s = new Guest('sim', simOpts);
  try {
    return { native: scenario(n), sim: scenario(s) };
  } finally {
    n.close();
    s.close();
  }
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const sum = (b: Uint8Array) => b.reduce((a, x) => (a + x) >>> 0, 0);
const le32 = (n: number) => Uint8Array.from([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]);

describe.skipIf(!probe.available)(`guest programs: real kernel vs simulated kernel (${probe.reason})`, () => {
  let fds: number[];
  beforeAll(() => {
    fds = openFds();
  });
  afterAll(() => {
    expect(openFds(), 'fds leaked').toEqual(fds);
  });

  it('a guest write is visible to the host through the guest_memfd mapping', () => {
    const data = bytes(4099, 7); // 8-byte stores and a 3-byte tail, across a page boundary
    const r = both((g) => ({
      run: g.run(new GuestProgram().store(DATA_GPA + 4090n, data).hlt()),
      host: g.view.read(4090, data.length),
      around: g.view.read(4080, 10),
    }));
    expect(r.sim).toEqual(r.native);
    expect(r.native.host).toEqual(data);
    expect(r.native.around).toEqual(new Uint8Array(10));
    expect(r.native.run).toEqual({ exits: [{ kind: 'hlt' }], stoppedBy: 'hlt' });
  });

  it('a host write is visible to the guest (load, checksum)', () => {
    const data = bytes(5000, 3);
    const r = both((g) => {
      g.view.write(100, data);
      return g.run(
        new GuestProgram()
          .loadReport(DATA_GPA + 100n, 4, PORT)
          .loadReport(DATA_GPA + 4094n, 2, PORT)
          .checksum(DATA_GPA + 100n, data.length, PORT + 1)
          .hlt(),
      );
    });
    expect(r.sim).toEqual(r.native);
    expect(r.native.exits).toEqual([
      { kind: 'io', port: PORT, size: 4, direction: 'out', data: data.subarray(0, 4) },
      { kind: 'io', port: PORT, size: 2, direction: 'out', data: data.subarray(3994, 3996) },
      { kind: 'io', port: PORT + 1, size: 4, direction: 'out', data: le32(sum(data)) },
      { kind: 'hlt' },
    ]);
  });

  it('after a punch-hole the guest reads zero (and the host too)', () => {
    const r = both((g) => {
      g.view.write(0, bytes(DATA_SIZE, 9));
      g.data.punchHole(4096, 8192);
      const run = g.run(
        new GuestProgram()
          .checksum(DATA_GPA + 4096n, 8192, PORT)
          .checksum(DATA_GPA, 4096, PORT)
          .hlt(),
      );
      return { run, host: sum(g.view.read(4096, 8192)) };
    });
    expect(r.sim).toEqual(r.native);
    expect(r.native.run.exits[0]).toEqual({ kind: 'io', port: PORT, size: 4, direction: 'out', data: le32(0) });
    expect(r.native.run.exits[1]).toEqual({
      kind: 'io',
      port: PORT,
      size: 4,
      direction: 'out',
      data: le32(sum(bytes(DATA_SIZE, 9).subarray(0, 4096))),
    });
    expect(r.native.host).toBe(0);
  });

  it('fill and touch: the memory the guest leaves is identical', () => {
    const r = both((g) => {
      g.run(
        new GuestProgram()
          .fill(DATA_GPA + 10n, 9000, 0xc3)
          .touch(DATA_GPA, BigInt(DATA_SIZE), 'write', 0x77)
          .touch(DATA_GPA, BigInt(DATA_SIZE), 'read')
          .hlt(),
      );
      return g.view.read(0, DATA_SIZE);
    });
    expect(r.sim).toEqual(r.native);
    expect(r.native[0]).toBe(0x77);
    expect(r.native[10]).toBe(0xc3);
    expect(r.native[9009]).toBe(0xc3);
    expect(r.native[9010]).toBe(0);
  });

  it('delete the slot and bind again: the data is kept', () => {
    const data = bytes(300, 1);
    const r = both((g) => {
      const first = g.run(new GuestProgram().store(DATA_GPA + 8n, data).hlt());
      g.dataBinding.unbind();
      g.dataBinding = g.vm.bind({ memory: g.data, offset: 0, gpa: DATA_GPA, size: DATA_SIZE });
      const again = g.run(new GuestProgram().checksum(DATA_GPA + 8n, data.length, PORT).hlt());
      return { first, again };
    });
    expect(r.sim).toEqual(r.native);
    expect(r.native.again.exits[0]).toEqual({ kind: 'io', port: PORT, size: 4, direction: 'out', data: le32(sum(data)) });
  });

  it('an address no slot backs is MMIO: the write goes to the VMM, a read takes what the VMM gives', () => {
    const hole = 0x4000_0000n;
    const r = both((g) => {
      const vcpu = g.vm.createVcpu();
      loadGuest(
        g.vm,
        vcpu,
        buildGuestImage(
          new GuestProgram()
            .store(hole, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))
            .loadReport(hole + 16n, 4, PORT)
            .hlt(),
        ),
      );
      const rr = runGuest(g.vm, vcpu, {
        onMmio: (e, v) => void (e.write ? undefined : v.completeRead(Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd))),
        maxExits: 16,
        timeoutMs: 20_000,
      });
      vcpu.close();
      return rr.exits.map(neutral);
    });
    expect(r.sim).toEqual(r.native);
    expect(r.native).toEqual([
      { kind: 'mmio', gpa: hole, size: 8, write: true, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
      { kind: 'mmio', gpa: hole + 16n, size: 4, write: false, data: new Uint8Array(4) },
      { kind: 'io', port: PORT, size: 4, direction: 'out', data: Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd) },
      { kind: 'hlt' },
    ]);
  });

  it('after the file is released the guest gets the exit this host gives: KVM_EXIT_MMIO (data accesses)', () => {
    const released = (g: Guest) => {
      g.view.write(0, bytes(64, 2));
      // The slot's userspace_addr mapping and the fd are the file's last references.
      (g.dataBinding as KvmBinding).mapping!.munmap();
      g.view.unmap();
      g.data.close();
      return g.run(new GuestProgram().loadReport(DATA_GPA, 4, PORT).hlt());
    };
    const r = both(released);
    expect(r.sim).toEqual(r.native);
    // PVM reaches guest memory through userspace_addr; with nothing mapped there the load is MMIO
    // (the VMM gives nothing: the guest reads zeros).
    expect(r.native).toEqual({
      exits: [
        { kind: 'mmio', gpa: DATA_GPA, size: 4, write: false, data: new Uint8Array(4) },
        { kind: 'io', port: PORT, size: 4, direction: 'out', data: new Uint8Array(4) },
        { kind: 'hlt' },
      ],
      stoppedBy: 'hlt',
    });
    // A hardware-virtualised host's answer, selected by the sim's profile option.
    const hw = new Guest('sim', { releasedMemoryExit: 'memory-fault' });
    try {
      expect(released(hw)).toEqual({
        exits: [{ kind: 'memory-fault', gpa: DATA_GPA, size: 4096n, access: 'shared' }],
        stoppedBy: 'unresolved-fault',
      });
    } finally {
      hw.close();
    }
  });
});
