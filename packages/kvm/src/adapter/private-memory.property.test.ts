/**
 * fast-check: random conversion / punch / access sequences on a confidential VM of the simulated
 * kernel (KVM_X86_SW_PROTECTED_VM), driven through the neutral API, against a per-page model.
 *
 * Properties checked after every step:
 * - the host never reads private memory: host reads of a gfn's backing either fail (the
 *   guest_memfd cannot even be mapped) or return only shared data — shared writes use bytes
 *   0x01–0x7f, private writes 0x80–0xff, and no host read ever returns a byte ≥ 0x80;
 * - every private read after a punch (with no private write since) returns zero, and a punch also
 *   zeroes the shared side of the punched pages;
 * - guest reads return the model's private or shared copy, following the attribute;
 * - `memoryState` listeners see every change (their replay equals the model's attributes);
 * - nothing leaks once the VM and memory are gone.
 */
import { GuestMemError, type MemoryAccess } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openKvm } from '../open.js';
import type { SimKvm } from '../sim/kvm.js';
import type { KvmBinding } from './kvm-hypervisor.js';
import { openKvmHypervisor } from './register.js';

const P = 4096;
const PAGES = 16;
/** Two bindings of one 16-page memory: file pages 0–7 at GPA_A, 8–15 at GPA_B (not contiguous). */
const GPA_A = 0x1_0000_0000n;
const GPA_B = 0x2_0000_0000n;
const gpaOf = (page: number) => (page < 8 ? GPA_A : GPA_B) + BigInt((page % 8) * P);

type Op =
  | { op: 'convert'; first: number; n: number; to: MemoryAccess; discard: boolean }
  | { op: 'punch'; first: number; n: number }
  | { op: 'guestWrite'; page: number; byte: number; at: number; len: number }
  | { op: 'guestRead'; page: number }
  | { op: 'hostRead'; page: number }
  | { op: 'hostMap' };

const page = fc.nat({ max: PAGES - 1 });
const range = fc.tuple(page, fc.integer({ min: 1, max: 8 })).map(([first, n]) => ({ first, n: Math.min(n, PAGES - first) }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({ r: range, to: fc.constantFrom<MemoryAccess>('private', 'shared'), discard: fc.boolean() })
      .map(({ r, to, discard }) => ({ op: 'convert' as const, ...r, to, discard })),
  },
  { weight: 2, arbitrary: range.map((r) => ({ op: 'punch' as const, ...r })) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('guestWrite' as const),
      page,
      byte: fc.integer({ min: 1, max: 0x7f }),
      at: fc.nat({ max: P - 1 }),
      len: fc.integer({ min: 1, max: P }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('guestRead' as const), page }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('hostRead' as const), page }) },
  { weight: 1, arbitrary: fc.constant({ op: 'hostMap' as const }) },
);

/** Per-page model: attribute, shared bytes, private bytes, and "private punched since last private write". */
class Model {
  readonly priv = new Array<boolean>(PAGES).fill(false);
  readonly shared = Array.from({ length: PAGES }, () => new Uint8Array(P));
  readonly private_ = Array.from({ length: PAGES }, () => new Uint8Array(P));
  readonly punchedClean = new Array<boolean>(PAGES).fill(false);
}

/** Byte equality without vitest's element-by-element diffing (4 KiB arrays, thousands of times). */
function same(got: Uint8Array, want: Uint8Array): boolean {
  return (
    Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(want.buffer, want.byteOffset, want.byteLength)) ===
    0
  );
}

function play(ops: Op[]): void {
  const h = openKvmHypervisor({ driver: 'sim' });
  const sim = h.kvm as SimKvm;
  const vm = h.createVm({ confidential: true });
  const mem = vm.createGuestMemory({ size: PAGES * P });
  const a = vm.bind({ memory: mem, offset: 0, gpa: GPA_A, size: 8 * P, access: 'shared' }) as KvmBinding;
  const b = vm.bind({ memory: mem, offset: 8 * P, gpa: GPA_B, size: 8 * P, access: 'shared' }) as KvmBinding;
  const views = [a.sharedView()!, b.sharedView()!];
  // Replay of the listener events, per model page.
  const heard = new Array<MemoryAccess>(PAGES).fill('shared');
  const gfnToPage = new Map<number, number>();
  for (let p = 0; p < PAGES; p++) gfnToPage.set(Number(gpaOf(p) / BigInt(P)), p);
  const off = vm.memoryState.onChange((c) => {
    for (let g = c.first; g < c.end; g++) {
      const p = gfnToPage.get(g);
      if (p !== undefined) heard[p] = c.to;
    }
  });
  const m = new Model();
  try {
    for (const o of ops) {
      switch (o.op) {
        case 'convert': {
          // Conversions are per binding here (a range never spans the two GPA windows).
          const last = Math.min(o.first + o.n, o.first < 8 ? 8 : PAGES);
          vm.convert({ gpa: gpaOf(o.first), size: (last - o.first) * P }, o.to, { discard: o.discard });
          for (let p = o.first; p < last; p++) {
            m.priv[p] = o.to === 'private';
            if (o.discard && o.to === 'shared') {
              m.private_[p]!.fill(0);
              m.punchedClean[p] = true;
            }
            if (o.discard && o.to === 'private') m.shared[p]!.fill(0);
          }
          break;
        }
        case 'punch':
          mem.punchHole(o.first * P, o.n * P);
          // A punch frees both sides the memory object owns: the guest_memfd pages and the same pages
          // of the bindings' anonymous shared side (invariant 2).
          for (let p = o.first; p < o.first + o.n; p++) {
            m.private_[p]!.fill(0);
            m.shared[p]!.fill(0);
            m.punchedClean[p] = true;
          }
          break;
        case 'guestWrite': {
          const len = Math.min(o.len, P - o.at);
          // Private data is 0x80–0xff, shared data 0x01–0x7f: a host read of ≥ 0x80 is a leak.
          const byte = m.priv[o.page] ? o.byte | 0x80 : o.byte;
          vm.guestWrite(gpaOf(o.page) + BigInt(o.at), new Uint8Array(len).fill(byte));
          (m.priv[o.page] ? m.private_ : m.shared)[o.page]!.fill(byte, o.at, o.at + len);
          if (m.priv[o.page]) m.punchedClean[o.page] = false;
          break;
        }
        case 'guestRead': {
          const got = vm.guestRead(gpaOf(o.page), P);
          expect(same(got, m.priv[o.page] ? m.private_[o.page]! : m.shared[o.page]!), `guest read of page ${o.page}`).toBe(true);
          // Every private read after a punch returns zero.
          if (m.priv[o.page] && m.punchedClean[o.page]) expect(got.every((x) => x === 0)).toBe(true);
          break;
        }
        case 'hostRead': {
          const got = views[o.page < 8 ? 0 : 1]!.read((o.page % 8) * P, P);
          expect(
            got.some((x) => x >= 0x80),
            'the host read private data',
          ).toBe(false);
          expect(same(got, m.shared[o.page]!), `host read of page ${o.page}`).toBe(true);
          break;
        }
        case 'hostMap': {
          // The private side cannot be mapped at all (flags 0 guest_memfd: ENODEV).
          let err: unknown;
          try {
            mem.map().unmap();
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(GuestMemError);
          break;
        }
      }
      expect(heard).toEqual(m.priv.map((x) => (x ? 'private' : 'shared')));
    }
  } finally {
    off();
    vm.destroy();
    mem.close();
    h.close();
  }
  expect(sim.stats()).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0, memory: { bytesInUse: 0 } });
}

describe('confidential VM on the simulated kernel: random conversion/punch/access sequences', () => {
  it('the host never reads private memory; private reads after a punch are zero; listeners see every change', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => play(ops)),
      { numRuns: Number(process.env.COCO_RUNS ?? 1000) },
    );
  });
});
