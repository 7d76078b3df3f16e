/**
 * The neutral kvm-sim vCPU runs a `GuestProgram`'s `touch` through the simulated kernel's bulk
 * `guestTouch`. Through the whole loop (`runGuest`: MMIO exits mid-touch, memory faults served by
 * conversion and retried, READONLY and unbound pages, a private/shared view declared by the program)
 * it must give what page-by-page accesses give: the same programs run twice, once with the vCPU
 * fd's bulk touch replaced by one-byte accesses, and the exits, the loop's statistics, the output,
 * the memory report and the guest's memory must be equal.
 */
import { GuestMemError, GuestProgram, buildGuestImage, loadGuest, runGuest, type MemoryAccess, type Vm } from '@guestmem/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SimVcpu } from '../sim/vcpu.js';
import { openKvmHypervisor } from './register.js';
import type { SimKvmVcpu } from './sim-vcpu.js';

const P = 4096;
/** Two 8-page bindings from 1 MiB with a 2-page hole between them; the image at 0. */
const A = 0x10_0000;
const B = A + 10 * P;

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

function run(l: Layout, touches: Touch[], bulk: boolean): unknown {
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
    const vcpu = vm.createVcpu();
    if (!bulk) {
      const fd = (vcpu as SimKvmVcpu).fd;
      fd.guestTouch = perPage(fd);
    }
    loadGuest(vm, vcpu, buildGuestImage(p));
    const r = runGuest(vm, vcpu, { maxExits: 500, onMmio: () => 'continue' });
    const mem: unknown[] = [];
    for (let page = 0; page < 18; page++) {
      try {
        mem.push([...vm.guestRead(A + page * P, 1)]);
      } catch (e) {
        mem.push(GuestMemError.is(e) ? e.code : String(e));
      }
    }
    return {
      exits: r.exits.map((e) => ({ ...e, info: undefined })),
      stoppedBy: r.stoppedBy,
      stats: [r.faults, r.conversions, r.pagesConverted, r.pagesMapped],
      output: r.output,
      report: { ...vm.memoryReport(), vmId: undefined },
      mem,
    };
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
        const bulk = run(l, touches, true);
        expect(bulk).toEqual(run(l, touches, false));
      }),
      { numRuns: 150 },
    );
  });

  it('a touch across the hole between two bindings exits MMIO for every page of the hole, in order', () => {
    const l: Layout = { swProtected: false, accessA: 'shared', accessB: 'shared' };
    const t: Touch = { page: 6, pages: 6, write: true, value: 5, view: undefined };
    const r = run(l, [t], true) as { exits: { kind: string; gpa?: bigint }[]; mem: unknown[] };
    expect(r).toEqual(run(l, [t], false));
    expect(r.exits.filter((e) => e.kind === 'mmio').map((e) => e.gpa)).toEqual([BigInt(A + 8 * P), BigInt(A + 9 * P)]);
    expect(r.mem.slice(6, 12)).toEqual([[5], [5], 'EFAULT', 'EFAULT', [5], [5]]);
  });
});
