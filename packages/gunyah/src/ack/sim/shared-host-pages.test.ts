/**
 * Regression (fast-check, model-free): two VMs and two host mappings, regions over the same host
 * pages in any mix of lend and share, in every generation. Found by a break program: a second
 * region over a host page a guest already held re-registered the page as shared, so the host and
 * another guest read lent data. Invariants (the ACK rules of the README, inference 10 for the
 * refusal): no byte a guest wrote through a lend region reaches the host or another VM while the
 * guest holds the page; closing every VM returns every pin, RLIMIT_MEMLOCK page, parcel and
 * stage-2 entry.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HostAccessFault } from '@guestmem/core';
import { openGunyahAck } from './host.js';
import type { AckVm } from './vm.js';
const RUNS = Number(process.env.FC_RUNS ?? 100);
const P = 4096n;
const RWX = 7;
type Op =
  | { k: 'bind'; vm: number; map: number; lend: boolean; slot: number }
  | { k: 'gw'; vm: number; slot: number; page: number; b: number }
  | { k: 'gr'; vm: number; slot: number; page: number }
  | { k: 'hr'; map: number; page: number }
  | { k: 'rel'; vm: number; slot: number }
  | { k: 'rec'; vm: number; slot: number }
  | { k: 'close'; vm: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('bind' as const), vm: fc.nat(1), map: fc.nat(1), lend: fc.boolean(), slot: fc.nat(1) }),
  fc.record({ k: fc.constant('gw' as const), vm: fc.nat(1), slot: fc.nat(1), page: fc.nat(1), b: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ k: fc.constant('gr' as const), vm: fc.nat(1), slot: fc.nat(1), page: fc.nat(1) }),
  fc.record({ k: fc.constant('hr' as const), map: fc.nat(1), page: fc.nat(1) }),
  fc.record({ k: fc.constant('rel' as const), vm: fc.nat(1), slot: fc.nat(2) }),
  fc.record({ k: fc.constant('rec' as const), vm: fc.nat(1), slot: fc.nat(2) }),
  fc.record({ k: fc.constant('close' as const), vm: fc.nat(1) }),
);
for (const gen of ['A', 'B', 'C'] as const)
  describe(`ACK generation ${gen}: one owner per host page`, () => {
    it('regression: no byte a guest wrote through a lend region reaches the host or another VM while it holds the page; teardown returns every pin and RLIMIT_MEMLOCK page [K7 gunyah_vm_provide_folio; inference 10]', () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 30 }), fc.boolean(), (ops, huge) => {
          const h = openGunyahAck({ generation: gen });
          const maps = [0, 1].map(() => h.current.mmap({ size: huge ? 2n << 20n : 4n * P, hugePages: huge }));
          const vms: AckVm[] = [];
          const slots: Array<Array<{ map: number; lend: boolean } | undefined>> = [[], []];
          for (let v = 0; v < 2; v++) {
            const vm = h.createVm();
            const d = h.current.mmap({ size: P });
            vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: 0x4000_0000n, memorySize: P, userspaceAddr: d.address });
            vm.setDtbConfig({ guestPhysAddr: 0x4000_0000n, size: P });
            vms.push(vm);
          }
          const gpa = (slot: number) => 0x8000_0000n + BigInt(slot) * (4n << 20n);
          // secret bytes written through a lend binding: (vm, map, page) -> byte
          const secrets = new Map<string, { vm: number; b: number }>();
          const heldBy = (map: number, page: number): number | undefined => {
            for (let v = 0; v < 2; v++) {
              if (vms[v]!.closed) continue;
              for (let s = 0; s < 3; s++) {
                const sl = slots[v]![s];
                if (sl?.map === map && sl.lend && vms[v]!.pageState(Number(gpa(s) / P) + page) === 'LENT_LOCKED') return v;
              }
            }
            return undefined;
          };
          for (const o of ops) {
            try {
              if (o.k === 'bind') {
                if (slots[o.vm]![o.slot] || vms[o.vm]!.closed) continue;
                const r = {
                  label: 1 + o.slot,
                  flags: RWX,
                  guestPhysAddr: gpa(o.slot),
                  memorySize: 4n * P,
                  userspaceAddr: maps[o.map]!.address,
                };
                if (o.lend) vms[o.vm]!.lendUserMem(r);
                else vms[o.vm]!.setUserMemRegion(r);
                slots[o.vm]![o.slot] = { map: o.map, lend: o.lend };
              } else if (o.k === 'gw' || o.k === 'gr') {
                const vm = vms[o.vm]!;
                if (vm.closed) continue;
                vm.start();
                const g = gpa(o.slot) + BigInt(o.page) * P;
                if (o.k === 'gw') {
                  const r = vm.vcpu().write(g, Uint8Array.of(o.b));
                  const sl = slots[o.vm]![o.slot];
                  if (r.status === 'done' && sl) {
                    if (sl.lend) secrets.set(`${sl.map}:${o.page}`, { vm: o.vm, b: o.b });
                    else secrets.delete(`${sl.map}:${o.page}`);
                  }
                } else {
                  const r = vm.vcpu().read(g, 1);
                  const sl = slots[o.vm]![o.slot];
                  if (r.status === 'done' && sl) {
                    const s = secrets.get(`${sl.map}:${o.page}`);
                    const holder = heldBy(sl.map, o.page);
                    if (s && holder !== undefined && holder !== o.vm)
                      expect(r.data![0], 'another VM read a lent page held by its owner').not.toBe(s.b);
                  }
                }
              } else if (o.k === 'hr') {
                const holder = heldBy(o.map, o.page);
                let got: Uint8Array | undefined;
                try {
                  got = h.current.read(maps[o.map]!.address + BigInt(o.page) * P, 1);
                } catch (e) {
                  if (!(e instanceof HostAccessFault)) throw e;
                }
                if (holder !== undefined) expect(got, 'host read a held lent page').toBeUndefined();
              } else if (o.k === 'rel') {
                if (!vms[o.vm]!.closed) vms[o.vm]!.vcpu().relinquish(gpa(o.slot), 4, { sanitize: false });
              } else if (o.k === 'rec') {
                if (!vms[o.vm]!.closed && gen === 'C') vms[o.vm]!.reclaimRegion({ guestPhysAddr: gpa(o.slot), size: 4n * P });
              } else if (o.k === 'close') {
                if (!vms[o.vm]!.closed) vms[o.vm]!.close();
              }
            } catch (e) {
              if (!(e && typeof e === 'object' && 'errno' in e)) throw e;
            }
          }
          for (const vm of vms) if (!vm.closed) vm.close();
          expect(h.stats()).toMatchObject({ vms: 0, stage2Folios: 0, parcels: 0, lockedPages: 0, providedFolios: 0 });
          for (const m of maps) for (let i = 0; i < m.memory.pages; i++) expect(m.memory.pinsAt(i)).toBe(0);
        }),
        {
          numRuns: RUNS,
          // The break this test was written for: VM 0 lends a host page and touches it; VM 1 binds
          // the same host page shared and reads it; the host reads it.
          examples: [
            [
              [
                { k: 'bind', vm: 0, map: 0, lend: true, slot: 0 },
                { k: 'gw', vm: 0, slot: 0, page: 0, b: 5 },
                { k: 'bind', vm: 1, map: 0, lend: false, slot: 0 },
                { k: 'gr', vm: 1, slot: 0, page: 0 },
                { k: 'hr', map: 0, page: 0 },
                { k: 'bind', vm: 0, map: 0, lend: false, slot: 1 },
                { k: 'gr', vm: 0, slot: 1, page: 0 },
                { k: 'hr', map: 0, page: 0 },
              ],
              false,
            ],
          ],
        },
      );
    });
  });
