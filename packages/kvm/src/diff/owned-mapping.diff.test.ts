/**
 * The owned-mapping promise as a property, on both drivers: whatever sequence of mmaps, binds,
 * munmaps, slot deletions and VM closes a VMM makes through the safe API, no live mapping ever lies
 * over the address range a live slot references through another mapping, and a mapping is
 * `addressReserved` exactly while it is unmapped and a live slot references it. Each sequence runs on
 * the real kernel and on the simulated one; their traces must be equal too.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Kvm, KvmMapping, KvmVm } from '../api.js';
import { probeNativeKvm } from '../native/probe.js';
import { openKvm } from '../open.js';
import { openSimKvm } from '../sim/index.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { errorOutcome } from './trace.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm diff] skipping the owned-mapping property: ${probe.reason}`);

const P = 4096;
type Op =
  | { op: 'anon'; pages: number }
  | { op: 'gmemMap'; pages: number }
  | { op: 'bind'; slot: number; m: number; offset: number; pages: number }
  | { op: 'delete'; slot: number }
  | { op: 'munmap'; m: number }
  | { op: 'closeVm' };

/** Steps (over all runs) at which some mapping was reserved: the property must not be vacuous. */
let reservedSteps = 0;

const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('anon' as const), pages: fc.integer({ min: 1, max: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('gmemMap' as const), pages: fc.integer({ min: 1, max: 4 }) }) },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('bind' as const),
        slot: fc.nat({ max: 3 }),
        m: fc.nat({ max: 9 }),
        offset: fc.integer({ min: 0, max: 4 }),
        pages: fc.integer({ min: 0, max: 4 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), slot: fc.nat({ max: 3 }) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('munmap' as const), m: fc.nat({ max: 9 }) }) },
    { weight: 1, arbitrary: fc.constant({ op: 'closeVm' as const }) },
  ),
  { minLength: 4, maxLength: 30 },
);

/** Plays `seq` on one driver, checking the promise after every step; returns the trace of outcomes. */
function play(kvm: Kvm, seq: Op[]): unknown[] {
  const trace: unknown[] = [];
  const maps: KvmMapping[] = [];
  let vm: KvmVm | undefined = kvm.createVm();
  const gmem = vm.createGuestMemfd({ size: 16 * P, flags: 3n });
  let gmemNext = 0;
  /** Live slots of the current VM: slot id → the mapping and byte range it references. */
  const slots = new Map<number, { m: KvmMapping; from: bigint; to: bigint }>();
  const step = (fn: () => unknown) => {
    try {
      trace.push(fn() ?? 'ok');
    } catch (e) {
      trace.push(errorOutcome(e));
    }
  };
  try {
    for (const o of seq) {
      switch (o.op) {
        case 'anon':
          step(() => void maps.push(kvm.mmapAnonymous(o.pages * P)));
          break;
        case 'gmemMap':
          step(() => {
            if (gmemNext + o.pages > 16) return 'file full';
            maps.push(gmem.mmap({ length: o.pages * P, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset: gmemNext * P }));
            gmemNext += o.pages;
          });
          break;
        case 'bind': {
          const m = maps[o.m % Math.max(1, maps.length)];
          step(() => {
            if (!vm || !m) return 'no vm or mapping';
            vm.setUserMemoryRegion({
              slot: o.slot,
              flags: 0,
              guestPhysAddr: BigInt(o.slot) * 0x100000n,
              memorySize: o.pages * P,
              userspace: { mapping: m, offset: o.offset * P },
            });
            if (o.pages === 0) slots.delete(o.slot);
            else if (!slots.has(o.slot))
              slots.set(o.slot, { m, from: m.address + BigInt(o.offset * P), to: m.address + BigInt((o.offset + o.pages) * P) });
          });
          break;
        }
        case 'delete':
          step(() => {
            if (!vm) return 'no vm';
            vm.setUserMemoryRegion({ slot: o.slot, flags: 0, guestPhysAddr: 0, memorySize: 0 });
            slots.delete(o.slot);
          });
          break;
        case 'munmap':
          step(() => maps[o.m % Math.max(1, maps.length)]?.munmap());
          break;
        case 'closeVm':
          step(() => {
            if (!vm) return 'no vm';
            vm.close();
            vm = undefined;
            // The guest_memfd still pins the VM: its slots live on until the file goes (end of run).
          });
          break;
      }
      // The promise, after every step.
      if (maps.some((m) => m.addressReserved)) reservedSteps++;
      for (const m of maps) {
        const referenced = [...slots.values()].some((s) => s.m === m);
        expect(m.addressReserved, 'addressReserved iff unmapped and referenced').toBe(m.unmapped && referenced);
        if (m.unmapped) continue;
        const end = m.address + BigInt(Math.ceil(m.length / P) * P);
        for (const s of slots.values()) {
          if (s.m !== m) expect(m.address < s.to && s.from < end, 'a live mapping over another slot’s referenced range').toBe(false);
        }
      }
    }
    trace.push({ reserved: maps.map((m) => m.addressReserved) });
  } finally {
    for (const m of maps) m.munmap();
    vm?.close();
    gmem.close();
  }
  // The VM is gone with its last reference: no reservation is left behind.
  trace.push({ after: maps.map((m) => m.addressReserved) });
  expect(maps.every((m) => !m.addressReserved)).toBe(true);
  return trace;
}

describe.skipIf(!probe.available)('owned mappings: no live mapping over a live slot’s range (property, both drivers)', () => {
  test('random safe-API sequences keep the promise on the kernel and on the sim, with equal traces', () => {
    fc.assert(
      fc.property(ops, (seq) => {
        const native = openKvm({ driver: 'native' });
        const sim = openSimKvm({ profile: '6.18', swProtectedVm: false });
        try {
          expect(play(sim, seq)).toEqual(play(native, seq));
          expect(sim.stats()).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0 });
        } finally {
          native.close();
          sim.close();
        }
      }),
      { numRuns: Number(process.env.OWNED_RUNS ?? 200) },
    );
    // Reservations did happen (munmap under a live slot): a coverage floor, loose enough for any seed.
    expect(reservedSteps).toBeGreaterThan(10);
  });
});
