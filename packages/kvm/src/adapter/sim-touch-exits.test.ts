/**
 * The interpreter's `touch` op through `GuestAccessPort.touch` (kvm-sim: `simTouch` →
 * `SimVcpu.guestTouch`) must give the exits, retries and final memory of per-page `access`.
 * Reference: the same vCPU with its fd's `guestTouch` replaced by a per-page loop.
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

type Step =
  | { t: 'touch'; page: number; pages: number; write: boolean; value: number; view: MemoryAccess | undefined }
  | { t: 'load'; page: number; view: MemoryAccess | undefined }
  | { t: 'store'; page: number; byte: number; view: MemoryAccess | undefined };

function run(swProtected: boolean, mappable: boolean, steps: Step[], bulk: boolean): unknown {
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
      report: { ...vm.memoryReport(), vmId: undefined },
    };
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
    const ref = run(true, true, steps, false) as { stats: number[] };
    expect(ref).not.toHaveProperty('refused');
    expect(run(true, true, steps, true)).toEqual(ref);
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
        expect(run(sw, mappable, steps, true)).toEqual(run(sw, mappable, steps, false));
      }),
      { numRuns: 150 },
    );
  });
});
