/**
 * The simulated backends run the same guest programs through their own guest-access paths
 * (kvm-sim: the 6.18 kernel's fault rules; gunyah-sim and gunyah-ack-sim: GUNYAH_VCPU_RUN / GH_VCPU_RUN
 * demand paging) and must give
 * the same exits and leave the same memory. Programs are generated over the op list's domain:
 * every op, unaligned addresses and lengths, page-crossing accesses, high addresses above 4 GiB.
 */
import { GuestProgram, buildGuestImage, loadGuest, runGuest, type Hypervisor, type VcpuExit } from '@guestmem/core';
import { GunyahAckHypervisor, GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const REGIONS = [
  { gpa: 0n, size: 1 << 20 }, // image at 0x1000, data from 0x80000
  { gpa: (4n << 30n) + 0x3000n, size: 5 * 4096 }, // just above 4 GiB, unaligned to 2 MiB
];
const DATA = [
  { gpa: 0x8_0000n, size: (1 << 20) - 0x8_0000 },
  { gpa: REGIONS[1]!.gpa, size: REGIONS[1]!.size },
];

const backends: Record<string, () => Hypervisor> = {
  'kvm-sim': () => openKvmHypervisor({ driver: 'sim', profile: '6.18', swProtectedVm: false }),
  'kvm-sim (SW_PROTECTED kernel, default VM)': () => openKvmHypervisor({ driver: 'sim', profile: '6.18' }),
  'gunyah-sim': () => new GunyahHypervisor(),
  'gunyah-ack-sim': () => new GunyahAckHypervisor(),
};

type Step =
  | { t: 'store'; r: number; at: number; data: Uint8Array }
  | { t: 'load'; r: number; at: number; size: 1 | 2 | 4 }
  | { t: 'fill'; r: number; at: number; len: number; byte: number }
  | { t: 'sum'; r: number; at: number; len: number }
  | { t: 'out'; value: number }
  | { t: 'touch'; r: number; page: number; pages: number; write: boolean; value: number };

const inRegion = (r: number) => DATA[r]!.size;
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant('store' as const), r: fc.nat(1), at: fc.nat(), data: fc.uint8Array({ minLength: 0, maxLength: 40 }) }),
  fc.record({ t: fc.constant('load' as const), r: fc.nat(1), at: fc.nat(), size: fc.constantFrom(1 as const, 2 as const, 4 as const) }),
  fc.record({ t: fc.constant('fill' as const), r: fc.nat(1), at: fc.nat(), len: fc.nat(9000), byte: fc.nat(255) }),
  fc.record({ t: fc.constant('sum' as const), r: fc.nat(1), at: fc.nat(), len: fc.nat(9000) }),
  fc.record({ t: fc.constant('out' as const), value: fc.nat(255) }),
  fc.record({ t: fc.constant('touch' as const), r: fc.nat(1), page: fc.nat(), pages: fc.nat(4), write: fc.boolean(), value: fc.nat(255) }),
);

function build(steps: Step[]): GuestProgram {
  const p = new GuestProgram();
  for (const s of steps) {
    if (s.t === 'out') {
      p.out(0xe9, s.value);
      continue;
    }
    const d = DATA[s.r]!;
    const clamp = (at: number, len: number) => at % Math.max(1, d.size - len);
    if (s.t === 'store') p.store(d.gpa + BigInt(clamp(s.at, s.data.length)), s.data);
    else if (s.t === 'load') p.loadReport(d.gpa + BigInt(clamp(s.at, s.size)), s.size, 0x10);
    else if (s.t === 'fill') p.fill(d.gpa + BigInt(clamp(s.at, s.len)), s.len, s.byte);
    else if (s.t === 'sum') p.checksum(d.gpa + BigInt(clamp(s.at, s.len)), s.len, 0x11);
    else {
      const pages = Math.min(s.pages, Math.floor(inRegion(s.r) / 4096));
      const first = s.page % (Math.floor(inRegion(s.r) / 4096) - pages + 1);
      p.touch(d.gpa + BigInt(first * 4096), pages * 4096, s.write ? 'write' : 'read', s.value);
    }
  }
  return p.hlt();
}

function run(make: () => Hypervisor, p: GuestProgram): { exits: object[]; memory: string[] } {
  const h = make();
  try {
    const vm = h.createVm();
    for (const r of REGIONS) {
      const mem = vm.createGuestMemory({ size: r.size, hostMappable: true, initiallyShared: true });
      vm.bind({ memory: mem, offset: 0, gpa: r.gpa, size: r.size, access: 'shared' });
    }
    const vcpu = vm.createVcpu();
    loadGuest(vm, vcpu, buildGuestImage(p));
    const res = runGuest(vm, vcpu, { maxExits: 100_000 });
    const exits = res.exits.map(({ info: _i, ...e }: VcpuExit) => e);
    const memory = REGIONS.map((r) => Buffer.from(vm.sharedView({ gpa: r.gpa, size: r.size }).read(0, r.size)).toString('base64'));
    return { exits, memory };
  } finally {
    h.close();
  }
}

describe('simulated backends run the same guest programs identically', () => {
  it('generated programs: same exits and same memory on kvm-sim (both kernel configs), gunyah-sim and gunyah-ack-sim', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
        const p = build(steps);
        const [first, ...rest] = Object.values(backends).map((b) => run(b, p));
        for (const r of rest) expect(r).toEqual(first);
        expect((first!.exits.at(-1) as { kind: string }).kind).toBe('hlt');
      }),
      { numRuns: 40 },
    );
  });

  it('known answers: a store is read back, a checksum sums what was stored, an out carries its value', () => {
    const p = new GuestProgram()
      .store(0x8_0ffen, Uint8Array.of(1, 2, 3, 4, 5))
      .loadReport(0x8_0fffn, 4, 0x10)
      .checksum(0x8_0ff0n, 32, 0x11)
      .out(0x12, 0xbeef, 2)
      .hlt();
    for (const b of Object.values(backends)) {
      expect(run(b, p).exits).toEqual([
        { kind: 'io', port: 0x10, size: 4, direction: 'out', data: Uint8Array.of(2, 3, 4, 5) },
        { kind: 'io', port: 0x11, size: 4, direction: 'out', data: Uint8Array.of(15, 0, 0, 0) },
        { kind: 'io', port: 0x12, size: 2, direction: 'out', data: Uint8Array.of(0xef, 0xbe) },
        { kind: 'hlt' },
      ]);
    }
  });
});
