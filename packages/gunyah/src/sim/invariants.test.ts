/**
 * fast-check invariants of the simulation:
 * - the host never reads lent memory the guest holds (model-based, with the v17 reclaim rules);
 * - a shared page reads zero after punch, for guest and host;
 * - no binding outlives its VM; file data survives VM teardown; nothing leaks.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestMemError } from '@guestmem/core';
import { openGunyah } from './device.js';
import type { SimGuestMem } from './guest-mem.js';
import type { SimVm } from './vm.js';
import { HoldingCell, LEND_RW, SHARE_RW, le64, u64le } from './test-helpers.js';

const RUNS = Number(process.env.FC_RUNS ?? 1000);
const LEND_GPA = 0xa000_0000n;
const SHARE_GPA = 0xb000_0000n;
const PAGES = 8; // pages 0-3 lent, 4-7 shared
const gpaOf = (p: number) => (p < 4 ? LEND_GPA + BigInt(p) * 4096n : SHARE_GPA + BigInt(p - 4) * 4096n);

type Cmd =
  | { k: 'gw'; p: number }
  | { k: 'gr'; p: number }
  | { k: 'hr'; p: number }
  | { k: 'hw'; p: number }
  | { k: 'punch'; p: number }
  | { k: 'rel'; p: number; sanitize: boolean };

const page = fc.integer({ min: 0, max: PAGES - 1 });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ k: fc.constant('gw' as const), p: page }),
  fc.record({ k: fc.constant('gr' as const), p: page }),
  fc.record({ k: fc.constant('hr' as const), p: page }),
  fc.record({ k: fc.constant('hw' as const), p: page }),
  fc.record({ k: fc.constant('punch' as const), p: page }),
  fc.record({ k: fc.constant('rel' as const), p: page, sanitize: fc.boolean() }),
);

describe('invariants (fast-check)', () => {
  it('the host never reads lent memory the guest holds; shared pages read zero after punch', () => {
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 30 }), (cmds) => {
        const hc = new HoldingCell();
        const mem = hc.gh.createGuestMem({ flags: 0n, size: BigInt(PAGES) * 4096n });
        hc.vm.mapMem({ guestAddr: LEND_GPA, flags: LEND_RW, guestMemFd: mem.fd, offset: 0, size: 4 * 4096 });
        hc.vm.mapMem({ guestAddr: SHARE_GPA, flags: SHARE_RW, guestMemFd: mem.fd, offset: 4 * 4096, size: 4 * 4096 });
        const data = Array<bigint>(PAGES).fill(0n);
        const provided = Array<boolean>(PAGES).fill(false);
        const locked = Array<boolean>(PAGES).fill(false);
        let next = 1n;
        const lend = (p: number) => p < 4;
        const touch = (p: number) => {
          provided[p] = true;
          if (lend(p)) locked[p] = true;
        };
        // mmap of a lent page reclaims exactly the pages it covers (v17's stated intent).
        const mmapRefused = (p: number) => lend(p) && locked[p];
        const afterMmap = (p: number) => {
          if (lend(p)) provided[p] = false;
        };
        for (const c of cmds) {
          const p = c.p;
          switch (c.k) {
            case 'gw': {
              const v = next++;
              expect(hc.writeAddr(gpaOf(p), v).status).toBe('done');
              data[p] = v;
              touch(p);
              break;
            }
            case 'gr':
              expect(hc.readAddr(gpaOf(p))).toBe(data[p]);
              touch(p);
              break;
            case 'hr':
            case 'hw': {
              if (mmapRefused(p)) {
                expect(() =>
                  c.k === 'hr' ? hc.hostRead(mem, BigInt(p) * 4096n) : hc.hostWrite(mem, BigInt(p) * 4096n, u64le(1n)),
                ).toThrow(GuestMemError);
                break;
              }
              expect(!lend(p) || !locked[p]).toBe(true); // the host only gets here for pages the guest does not hold
              if (c.k === 'hr') expect(le64(hc.hostRead(mem, BigInt(p) * 4096n))).toBe(data[p]);
              else hc.hostWrite(mem, BigInt(p) * 4096n, u64le((data[p] = next++)));
              afterMmap(p);
              break;
            }
            case 'punch':
              if (lend(p) && locked[p]) {
                expect(() => hc.punch(mem, BigInt(p) * 4096n, 4096n)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
                break;
              }
              hc.punch(mem, BigInt(p) * 4096n, 4096n);
              data[p] = 0n;
              provided[p] = false;
              if (!lend(p)) {
                expect(le64(hc.hostRead(mem, BigInt(p) * 4096n))).toBe(0n);
                expect(hc.readAddr(gpaOf(p))).toBe(0n);
                touch(p);
              }
              break;
            case 'rel':
              hc.cpu.relinquish(gpaOf(p), 1, { sanitize: c.sanitize });
              if (lend(p) && provided[p]) {
                locked[p] = false;
                if (c.sanitize) data[p] = 0n;
              }
              break;
          }
          for (let q = 0; q < PAGES; q++) {
            const s = (mem as SimGuestMem).pageState(q);
            if (lend(q) && locked[q]) expect(s).toBe('LENT_LOCKED');
            if (!lend(q) && provided[q]) expect(s).toBe('PROVIDED_SHARED');
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('no binding outlives its VM; file data survives teardown; nothing leaks', () => {
    const FILE_PAGES = 16;
    const segment = fc.record({ len: fc.integer({ min: 1, max: 4 }), vm: fc.integer({ min: -1, max: 2 }), lend: fc.boolean() });
    const access = fc.record({ p: fc.integer({ min: 0, max: FILE_PAGES - 1 }), rel: fc.boolean() });
    fc.assert(
      fc.property(
        fc.array(segment, { minLength: 1, maxLength: 8 }),
        fc.array(access, { maxLength: 20 }),
        fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }),
        fc.boolean(),
        (segments, accesses, closeOrder, closeFileFirst) => {
          const gh = openGunyah({ driver: 'sim' });
          const cells = [0, 1, 2].map(() => new HoldingCell(gh));
          const mem = gh.createGuestMem({ flags: 0n, size: BigInt(FILE_PAGES) * 4096n }) as SimGuestMem;
          const owner = Array<number>(FILE_PAGES).fill(-1);
          let at = 0;
          for (const s of segments) {
            const len = Math.min(s.len, FILE_PAGES - at);
            if (len <= 0) break;
            if (s.vm >= 0) {
              // GPA = a per-VM base + file offset, so bindings in one VM never overlap in GPA.
              cells[s.vm]!.vm.mapMem({
                guestAddr: 0x1_0000_0000n + BigInt(at) * 4096n,
                flags: s.lend ? LEND_RW : SHARE_RW,
                guestMemFd: mem.fd,
                offset: BigInt(at) * 4096n,
                size: BigInt(len) * 4096n,
              });
              for (let q = at; q < at + len; q++) owner[q] = s.vm;
            }
            at += len;
          }
          const data = Array<bigint>(FILE_PAGES).fill(0n);
          let v = 1n;
          for (const a of accesses) {
            const o = owner[a.p]!;
            if (o < 0) continue;
            const g = 0x1_0000_0000n + BigInt(a.p) * 4096n;
            expect(cells[o]!.writeAddr(g, v).status).toBe('done');
            data[a.p] = v++;
            if (a.rel) cells[o]!.vm.vcpu(0).relinquish(g, 1);
          }
          const bound = (vm: SimVm) => mem.bindings.filter((b) => b.vm === vm).length;
          if (closeFileFirst) mem.close(); // bindings pin the file
          const closed = new Set<number>();
          for (const i of closeOrder) {
            const vm = cells[i]!.vm;
            const before = gh.stats().bindings;
            const mine = vm.bindingCount;
            vm.close();
            expect(bound(vm)).toBe(0);
            expect(gh.stats().bindings).toBe(before - mine);
            expect(() => vm.mapMem({ guestAddr: 0, flags: SHARE_RW, guestMemFd: mem.fd, offset: 0, size: 4096 })).toThrow(
              expect.objectContaining({ code: 'EBADF' }),
            );
            closed.add(i);
            // The model: the file is released once the caller closed it and no VM that bound it is left.
            const stillBound = owner.some((o) => o >= 0 && !closed.has(o));
            expect(mem.file.released).toBe(closeFileFirst && !stillBound);
          }
          // Every VM is gone: nothing is provided to a guest any more, whichever was closed first.
          expect(gh.stats()).toMatchObject({ vms: 0, bindings: 0, providedFolios: 0, parcels: 0 });
          if (!closeFileFirst) {
            expect(mem.file.refs).toBe(1);
            const m = mem.mmap({ offset: 0, length: FILE_PAGES * 4096 });
            for (let q = 0; q < FILE_PAGES; q++) expect(le64(m.read(BigInt(q) * 4096n, 8))).toBe(data[q]);
            m.unmap();
            mem.close();
          }
          for (const c of cells) c.dtbMem.close();
          expect(gh.stats()).toEqual({ openFds: 0, vms: 0, files: 0, bindings: 0, folioBytes: 0n, providedFolios: 0, parcels: 0 });
          expect(mem.file.released).toBe(true);
        },
      ),
      { numRuns: Math.max(200, Math.floor(RUNS / 2)) },
    );
  });
});
