/**
 * The interpreter's `touch` op through `GuestAccessPort.touch` (kvm-sim: `simTouch` →
 * `SimVcpu.guestTouch`) must give the exits, retries, statistics, memory report and final memory of
 * per-page `access`, through the whole loop (`runGuest`: MMIO exits mid-touch, memory faults served
 * by conversion and retried, unbound pages, a private/shared view declared by the program).
 * Reference: the same vCPU with its fd's `guestTouch` replaced by a per-page loop. Two layouts: one
 * binding (both VM types, host-mappable or not), and two bindings with a hole between them.
 *
 * Regression from the outside review, seen from `runGuest`: a bulk touch that re-faulted a page after
 * a conversion once left `vm.tlb` claiming the page's old kind, and a later declared private access
 * was served by `fastAccess` without the memory-fault exit (and the conversion) the per-page
 * reference gives. Needs a confidential (SW_PROTECTED) VM with host-mappable memory (gmem-only slot).
 */
import { GuestMemError, GuestProgram, buildGuestImage, loadGuest, runGuest, type MemoryAccess, type Vm } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SimVcpu } from '../sim/vcpu.js';
import { openKvmHypervisor } from './register.js';
import type { SimKvmVcpu } from './sim-vcpu.js';

const P = 4096;
const A = 0x10_0000;
/** The second binding of the two-binding layout: 8 pages after a 2-page hole. */
const B = A + 10 * P;

function perPage(fd: SimVcpu): SimVcpu['guestTouch'] {
  return (args) => {
    for (let at = args.gpa; at < args.end; at += BigInt(P)) {
      try {
        fd.guestAccess({ gpa: at, len: 1, write: args.write, data: Uint8Array.of(args.value ?? 0), private: args.private });
      } catch (error) {
        return { at, error };
      }
    }
    return { at: args.end };
  };
}

/**
 * Runs `p` on a new vCPU of `vm` (its fd's bulk touch replaced by per-page accesses unless `bulk`)
 * and collects what the loop saw: exits without their raw records, statistics, output, the report.
 */
function runProgram(vm: Vm, p: GuestProgram, bulk: boolean) {
  const vcpu = vm.createVcpu();
  if (!bulk) {
    const fd = (vcpu as SimKvmVcpu).fd;
    fd.guestTouch = perPage(fd);
  }
  loadGuest(vm, vcpu, buildGuestImage(p));
  const r = runGuest(vm, vcpu, { maxExits: 500, onMmio: () => 'continue' });
  return {
    exits: r.exits.map((e) => ({ ...e, info: undefined })),
    stoppedBy: r.stoppedBy,
    stats: [r.faults, r.conversions, r.pagesConverted, r.pagesMapped],
    output: r.output,
    report: { ...vm.memoryReport(), vmId: undefined },
  };
}

type Step =
  | { t: 'touch'; page: number; pages: number; write: boolean; value: number; view: MemoryAccess | undefined }
  | { t: 'load'; page: number; view: MemoryAccess | undefined }
  | { t: 'store'; page: number; byte: number; view: MemoryAccess | undefined };

function runOneBinding(swProtected: boolean, mappable: boolean, steps: Step[], bulk: boolean): unknown {
  const h = openKvmHypervisor({ driver: 'sim', swProtectedVm: swProtected });
  try {
    const vm: Vm = h.createVm({ confidential: swProtected });
    const img = vm.createGuestMemory({ size: 1 << 20, hostMappable: !swProtected, initiallyShared: !swProtected });
    vm.bind({ memory: img, offset: 0, gpa: 0, size: 1 << 20, access: 'shared' });
    const mem = vm.createGuestMemory({ size: 8 * P, hostMappable: mappable, initiallyShared: mappable && !swProtected });
    vm.bind({ memory: mem, offset: 0, gpa: A, size: 8 * P, access: swProtected ? 'private' : 'shared' });
    const p = new GuestProgram();
    for (const s of steps) {
      const view = s.view === 'private' && !swProtected ? undefined : s.view;
      if (s.t === 'touch') p.view(view).touch(A + s.page * P, s.pages * P, s.write ? 'write' : 'read', s.value);
      else if (s.t === 'load') p.view(view).loadReport(A + s.page * P + 5, 1, 0x20);
      else p.view(view).store(A + s.page * P + 5, Uint8Array.of(s.byte));
    }
    p.view(undefined).hlt();
    return runProgram(vm, p, bulk);
  } catch (e) {
    if (!GuestMemError.is(e)) throw e;
    return { refused: e.code, msg: e.message };
  } finally {
    h.close();
  }
}

describe('interpreter touch via port.touch = per-page access', () => {
  it('minimal (SW_PROTECTED, host-mappable private memory): private load, shared touch, private load', () => {
    const steps: Step[] = [
      { t: 'load', page: 0, view: 'private' }, // full path: tlb = page 0, private
      { t: 'touch', page: 0, pages: 1, write: false, value: 0, view: 'shared' }, // fault → convert to shared → touch
      { t: 'load', page: 0, view: 'private' }, // must fault again (the page is shared now)
    ];
    const ref = runOneBinding(true, true, steps, false) as { stats: number[] };
    expect(ref).not.toHaveProperty('refused');
    expect(runOneBinding(true, true, steps, true)).toEqual(ref);
  });

  it('property over both VM types and mappable/non-mappable memory', () => {
    const view = fc.constantFrom<MemoryAccess | undefined>(undefined, 'private', 'shared');
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({
        t: fc.constant('touch' as const),
        page: fc.integer({ min: -1, max: 8 }),
        pages: fc.integer({ min: 1, max: 10 }),
        write: fc.boolean(),
        value: fc.nat(255),
        view,
      }),
      fc.record({ t: fc.constant('load' as const), page: fc.nat(7), view }),
      fc.record({ t: fc.constant('store' as const), page: fc.nat(7), byte: fc.nat(255), view }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.array(step, { minLength: 1, maxLength: 6 }), (sw, mappable, steps) => {
        expect(runOneBinding(sw, mappable, steps, true)).toEqual(runOneBinding(sw, mappable, steps, false));
      }),
      { numRuns: 150 },
    );
  });
});

/** (`GuestProgram.touch` takes page-aligned ranges; unaligned starts are covered by guest-touch.test.ts.) */
interface Touch {
  page: number;
  pages: number;
  write: boolean;
  value: number;
  view: MemoryAccess | undefined;
}

const touch: fc.Arbitrary<Touch> = fc.record({
  page: fc.integer({ min: -1, max: 19 }),
  pages: fc.integer({ min: 1, max: 22 }),
  write: fc.boolean(),
  value: fc.nat(255),
  view: fc.constantFrom<MemoryAccess | undefined>(undefined, 'private', 'shared'),
});

/** (READONLY slots cannot hold guest_memfd: they are covered by guest-touch.test.ts on anonymous memory.) */
interface Layout {
  swProtected: boolean;
  accessA: MemoryAccess;
  accessB: MemoryAccess;
}

const layout: fc.Arbitrary<Layout> = fc.record({
  swProtected: fc.boolean(),
  accessA: fc.constantFrom<MemoryAccess>('shared', 'private'),
  accessB: fc.constantFrom<MemoryAccess>('shared', 'private'),
});

function runTwoBindings(l: Layout, touches: Touch[], bulk: boolean): unknown {
  const h = openKvmHypervisor({ driver: 'sim', swProtectedVm: l.swProtected });
  try {
    const vm: Vm = h.createVm({ confidential: l.swProtected });
    const mappable = !l.swProtected;
    const img = vm.createGuestMemory({ size: 1 << 20, hostMappable: mappable, initiallyShared: mappable });
    vm.bind({ memory: img, offset: 0, gpa: 0, size: 1 << 20, access: 'shared' });
    const bind = (gpa: number, access: MemoryAccess) => {
      const priv = access === 'private' && vm.capabilities.has('private-memory');
      const mem = vm.createGuestMemory({ size: 8 * P, hostMappable: mappable && !priv, initiallyShared: mappable && !priv });
      vm.bind({ memory: mem, offset: 0, gpa, size: 8 * P, access: priv ? 'private' : 'shared' });
    };
    bind(A, l.accessA);
    bind(B, l.accessB);
    const p = new GuestProgram();
    // A declared private access needs a VM type with private memory (else the access is EINVAL).
    for (const t of touches)
      p.view(t.view === 'private' && !l.swProtected ? undefined : t.view).touch(
        A + t.page * P,
        t.pages * P,
        t.write ? 'write' : 'read',
        t.value,
      );
    p.view(undefined)
      .checksum(A, 8 * P, 0x10)
      .checksum(B, 8 * P, 0x10)
      .hlt();
    const result = runProgram(vm, p, bulk);
    const mem: unknown[] = [];
    for (let page = 0; page < 18; page++) {
      try {
        mem.push([...vm.guestRead(A + page * P, 1)]);
      } catch (e) {
        mem.push(GuestMemError.is(e) ? e.code : String(e));
      }
    }
    return { ...result, mem };
  } catch (e) {
    if (!GuestMemError.is(e)) throw e;
    return { refused: e.code };
  } finally {
    h.close();
  }
}

describe('kvm-sim vCPU: a bulk touch gives the exits and memory of page-by-page accesses', () => {
  it('same exits, statistics, output, report and memory, with and without the bulk path', () => {
    fc.assert(
      fc.property(layout, fc.array(touch, { minLength: 1, maxLength: 4 }), (l, touches) => {
        const bulk = runTwoBindings(l, touches, true);
        expect(bulk).toEqual(runTwoBindings(l, touches, false));
      }),
      { numRuns: 150 },
    );
  });

  it('a touch across the hole between two bindings exits MMIO for every page of the hole, in order', () => {
    const l: Layout = { swProtected: false, accessA: 'shared', accessB: 'shared' };
    const t: Touch = { page: 6, pages: 6, write: true, value: 5, view: undefined };
    const r = runTwoBindings(l, [t], true) as { exits: { kind: string; gpa?: bigint }[]; mem: unknown[] };
    expect(r).toEqual(runTwoBindings(l, [t], false));
    expect(r.exits.filter((e) => e.kind === 'mmio').map((e) => e.gpa)).toEqual([BigInt(A + 8 * P), BigInt(A + 9 * P)]);
    expect(r.mem.slice(6, 12)).toEqual([[5], [5], 'EFAULT', 'EFAULT', [5], [5]]);
  });
});
