/**
 * fast-check, model-based: random guest writes and reads, host reads and writes, relinquish,
 * RECLAIM_REGION and (C) teardown over a lend and a share region, against a small model of who
 * holds each page. Invariants:
 * - the host never reads a lent page the hypervisor holds (it takes a stage-2 fault: SIGBUS);
 * - a page reads zero on first use, and otherwise what its last writer (guest or host) wrote;
 * - RECLAIM_REGION refuses exactly while a touched lent page is unrelinquished, and every page it
 *   can take back comes back (not all-or-nothing);
 * - RLIMIT_MEMLOCK pages charged = folios in the guest's stage 2; teardown leaves nothing.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import { AckCell, P } from './test-helpers.js';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const N = 6; // pages per region
const LEND = 0x8000_0000n;
const SHARE = 0x9000_0000n;

type Op =
  | { k: 'gw'; lend: boolean; i: number; b: number }
  | { k: 'gr'; lend: boolean; i: number }
  | { k: 'hw'; lend: boolean; i: number; b: number }
  | { k: 'hr'; lend: boolean; i: number }
  | { k: 'relinquish'; i: number; n: number; sanitize: boolean }
  | { k: 'reclaim'; lend: boolean; i: number; n: number };

const idx = fc.integer({ min: 0, max: N - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('gw' as const), lend: fc.boolean(), i: idx, b: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ k: fc.constant('gr' as const), lend: fc.boolean(), i: idx }),
  fc.record({ k: fc.constant('hw' as const), lend: fc.boolean(), i: idx, b: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ k: fc.constant('hr' as const), lend: fc.boolean(), i: idx }),
  fc.record({ k: fc.constant('relinquish' as const), i: idx, n: fc.integer({ min: 1, max: N }), sanitize: fc.boolean() }),
  fc.record({ k: fc.constant('reclaim' as const), lend: fc.boolean(), i: idx, n: fc.integer({ min: 1, max: N }) }),
);

/** Model state of one lent page: not in stage 2, held (touched), or relinquished (still in stage 2). */
type Held = 'host' | 'locked' | 'relinquished';

describe('ACK simulation invariants (model-based)', () => {
  it('host never reads held lent pages; data follows the last writer; reclaim refuses exactly the locked pages; accounting matches; teardown leaves nothing', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const c = new AckCell();
        const lent = c.add(LEND, BigInt(N) * P, 'lend');
        const shared = c.add(SHARE, BigInt(N) * P, 'share');
        const data = { lend: new Array<number>(N).fill(0), share: new Array<number>(N).fill(0) };
        const held: Held[] = new Array<Held>(N).fill('host');
        const sharedInStage2 = new Set<number>();
        let started = false; // the helper starts the VM before the first vCPU run: the DTB parcel's folio joins stage 2
        for (const o of ops) {
          if (o.k === 'gw' || o.k === 'gr') {
            const gpa = (o.lend ? LEND : SHARE) + BigInt(o.i) * P;
            started = true;
            if (o.k === 'gw') c.write(gpa, Uint8Array.of(o.b));
            else expect(c.read(gpa)[0]).toBe((o.lend ? data.lend : data.share)[o.i]);
            if (o.k === 'gw') (o.lend ? data.lend : data.share)[o.i] = o.b;
            if (o.lend) held[o.i] = 'locked';
            else sharedInStage2.add(o.i);
          } else if (o.k === 'hw' || o.k === 'hr') {
            const mem = (o.lend ? lent : shared).memory;
            const off = BigInt(o.i) * P;
            const blocked = o.lend && held[o.i] !== 'host';
            try {
              if (o.k === 'hw') mem.write(off, Uint8Array.of(o.b));
              else expect(mem.read(off, 1)[0]).toBe((o.lend ? data.lend : data.share)[o.i]);
              expect(blocked).toBe(false);
              if (o.k === 'hw') (o.lend ? data.lend : data.share)[o.i] = o.b;
            } catch (e) {
              if (!(e instanceof HostAccessFault)) throw e;
              expect(blocked).toBe(true);
            }
          } else if (o.k === 'relinquish') {
            c.cpu.relinquish(LEND + BigInt(o.i) * P, o.n, { sanitize: o.sanitize });
            started = true;
            for (let i = o.i; i < Math.min(N, o.i + o.n); i++) {
              if (held[i] === 'host') continue;
              held[i] = 'relinquished';
              if (o.sanitize) data.lend[i] = 0;
            }
          } else {
            const n = Math.min(o.n, N - o.i);
            let refused = false;
            try {
              c.vm.reclaimRegion({ guestPhysAddr: (o.lend ? LEND : SHARE) + BigInt(o.i) * P, size: BigInt(n) * P });
            } catch (e) {
              if (!(e instanceof GuestMemError)) throw e;
              expect(e.code).toBe('EBUSY');
              refused = true;
            }
            const range = Array.from({ length: n }, (_, k) => o.i + k);
            expect(refused).toBe(o.lend && range.some((i) => held[i] === 'locked'));
            for (const i of range) {
              if (o.lend && held[i] === 'relinquished') held[i] = 'host';
              if (!o.lend) sharedInStage2.delete(i);
            }
          }
          const inStage2 = held.filter((h) => h !== 'host').length + sharedInStage2.size + (started ? 1 : 0); // + the DTB folio
          expect(c.vm.providedFolios).toBe(inStage2);
          expect(c.host.current.mm.memlock.lockedPages).toBe(inStage2);
        }
        c.vm.close();
        expect(c.host.stats()).toMatchObject({ stage2Folios: 0, parcels: 0, lockedPages: 0, providedFolios: 0 });
        for (let i = 0; i < N; i++) expect(lent.memory.read(BigInt(i) * P, 1)[0]).toBe(data.lend[i]); // the host gets it all back, unscrubbed
      }),
      { numRuns: RUNS },
    );
  });
});
