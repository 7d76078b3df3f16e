/**
 * Conformance of `GuestMemory.stats()` and `Vm.memoryReport()`: the numbers follow what was done
 * through the neutral API, on every backend. Part of {@link defineConformanceSuite}.
 */
import type { Hypervisor, Vm } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import type { ConformanceTarget } from './suite.js';

const P = 4096n;
const MiB = 1n << 20n;

export function defineStatsSuite(target: ConformanceTarget): void {
  const suite = target.skip ? describe.skip : describe;
  suite(`memory introspection: ${target.name}`, () => {
    function withVm(body: (h: Hypervisor, vm: Vm) => void): void {
      const h = target.create();
      let vm: Vm | undefined;
      try {
        vm = h.createVm();
        body(h, vm);
      } finally {
        if (vm && !vm.destroyed) vm.destroy();
        h.close();
      }
    }
    const mappable = (vm: Vm) => vm.capabilities.has('host-map') && vm.capabilities.has('initially-shared');

    it('a new object reports its size and nothing else; allocate and punch-hole move allocatedBytes page by page', () => {
      withVm((_h, vm) => {
        const mem = vm.createGuestMemory({ size: 16n * P });
        const s0 = mem.stats();
        expect(s0).toMatchObject({
          id: mem.id,
          size: 16n * P,
          allocatedBytes: 0n,
          hostMappedBytes: 0n,
          boundRanges: [],
          privatePages: 0n,
          sharedPages: 0n,
          hugeFolios: 0,
        });
        expect(['exact', 'tracked']).toContain(s0.accounting);
        mem.allocate(2n * P, 5n * P);
        expect(mem.stats().allocatedBytes).toBe(5n * P);
        expect(mem.stats().residentBytes).toBeLessThanOrEqual(5n * P);
        mem.allocate(0n, 3n * P); // overlaps the first allocation by one page
        expect(mem.stats().allocatedBytes).toBe(7n * P);
        if (!vm.capabilities.has('punch-hole')) return;
        mem.punchHole(3n * P, 2n * P);
        expect(mem.stats().allocatedBytes).toBe(5n * P);
        mem.punchHole(0n, 16n * P);
        expect(mem.stats().allocatedBytes).toBe(0n);
      });
    });

    it('host-mapped bytes count live views only', (ctx) => {
      withVm((_h, vm) => {
        if (!mappable(vm)) return ctx.skip('no host-map + initially-shared');
        const mem = vm.createGuestMemory({ size: 8n * P, hostMappable: true, initiallyShared: true });
        const a = mem.map({ length: 3 * 4096 });
        const b = mem.map({ offset: 4n * P, length: 4096 });
        expect(mem.stats().hostMappedBytes).toBe(4n * P);
        a.unmap();
        a.unmap();
        expect(mem.stats().hostMappedBytes).toBe(P);
        b.unmap();
        expect(mem.stats().hostMappedBytes).toBe(0n);
      });
    });

    it('bound ranges are listed by GPA with their offsets; shared and private pages follow conversions', () => {
      withVm((_h, vm) => {
        const mem = vm.createGuestMemory({ size: 16n * P, hostMappable: mappable(vm), initiallyShared: mappable(vm) });
        vm.bind({ memory: mem, offset: 8n * P, gpa: 0x20_0000n, size: 4n * P, access: 'shared' });
        vm.bind({ memory: mem, offset: 0n, gpa: 0x10_0000n, size: 2n * P, access: 'shared' });
        const s = mem.stats();
        expect(s.boundRanges).toEqual([
          { gpa: 0x10_0000n, size: 2n * P, offset: 0n, readOnly: false },
          { gpa: 0x20_0000n, size: 4n * P, offset: 8n * P, readOnly: false },
        ]);
        expect(s).toMatchObject({ sharedPages: 6n, privatePages: 0n });
        if (vm.capabilities.has('convert-in-place') || vm.capabilities.has('convert-remap')) {
          vm.convert({ gpa: 0x20_0000n + P, size: 2n * P }, 'private');
          expect(mem.stats()).toMatchObject({ sharedPages: 4n, privatePages: 2n });
        }
        if (!vm.capabilities.has('unbind')) return;
        vm.bindings()[0]!.unbind();
        // A remapping backend may list a converted binding as pieces; together they cover it.
        const left = mem.stats().boundRanges;
        expect(left.every((r) => r.gpa >= 0x20_0000n)).toBe(true);
        expect(left.reduce((a, r) => a + r.size, 0n)).toBe(4n * P);
      });
    });

    it("memoryReport lists this VM's open memory objects, with totals that are their sums", () => {
      const h = target.create();
      try {
        const vm = h.createVm();
        const other = h.createVm();
        const a = vm.createGuestMemory({ size: 4n * P });
        const b = vm.createGuestMemory({ size: 8n * P });
        const gone = vm.createGuestMemory({ size: 4n * P });
        other.createGuestMemory({ size: 4n * P }).allocate(0n, P);
        gone.close();
        a.allocate(0n, 2n * P);
        // Bind first: binding private memory as shared may discard its pages (nothing private shows).
        vm.bind({ memory: b, offset: 0n, gpa: 0n, size: 4n * P, access: 'shared' });
        b.allocate(0n, 3n * P);
        const r = vm.memoryReport();
        expect(r.vmId).toBe(vm.id);
        expect(r.backend).toBe(h.id);
        expect(r.memories.map((m) => m.id).sort()).toEqual([a.id, b.id].sort());
        expect(r.totals).toMatchObject({ size: 12n * P, boundBytes: 4n * P, sharedPages: 4n, privatePages: 0n });
        expect(r.totals.allocatedBytes).toBe(r.memories.reduce((t, m) => t + m.allocatedBytes, 0n));
        expect(r.memories.find((m) => m.id === a.id)!.allocatedBytes).toBe(2n * P);
        // b: the 3 allocated pages, or all 4 bound pages where binding pins memory at once (ACK generation A).
        expect([3n * P, 4n * P]).toContain(r.memories.find((m) => m.id === b.id)!.allocatedBytes);
        expect(r.totals.hostMappedBytes).toBe(0n);
      } finally {
        h.close();
      }
    });

    it('huge folios are counted where the backend has them', (ctx) => {
      withVm((_h, vm) => {
        if (!vm.capabilities.has('huge-pages')) return ctx.skip('no huge-pages');
        const mem = vm.createGuestMemory({ size: 4n * MiB, hugePages: true });
        mem.allocate(0n, 2n * MiB);
        expect(mem.stats()).toMatchObject({ allocatedBytes: 2n * MiB, hugeFolios: 1 });
        mem.allocate(2n * MiB, P);
        expect(mem.stats().hugeFolios).toBeGreaterThanOrEqual(1);
        if (!vm.capabilities.has('punch-hole')) return;
        mem.punchHole(0n, 4n * MiB);
        expect(mem.stats()).toMatchObject({ allocatedBytes: 0n, hugeFolios: 0 });
      });
    });
  });
}
