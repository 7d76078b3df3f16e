import { GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import { describe, expect, it } from 'vitest';
import { RAM_GPA, RAM_PAGES, runFaultDrivenGuest } from './fault-loop.js';

const quiet = () => {};

describe('examples/coco-conversions: the neutral fault-driven loop', () => {
  it('kvm-sim (SW_PROTECTED): demand paging by private memory faults, explicit and implicit conversion', () => {
    const hv = openKvmHypervisor({ driver: 'sim' });
    try {
      const r = runFaultDrivenGuest(hv, quiet);
      expect(r.run.stoppedBy).toBe('hlt');
      // 16 RAM pages in 4-page granules: 4 faults map them; page 5's shared store is the 5th fault.
      expect(r.run.exits.filter((e) => e.kind === 'memory-fault')).toEqual([
        ...[0, 4, 8, 12].map((n) => expect.objectContaining({ gpa: RAM_GPA + BigInt(n * 4096), size: 4096n, access: 'private' })),
        expect.objectContaining({ gpa: RAM_GPA + 5n * 4096n, access: 'shared' }),
      ]);
      expect({ faults: r.run.faults, pagesMapped: r.run.pagesMapped, conversions: r.run.conversions }).toEqual({
        faults: 5,
        pagesMapped: RAM_PAGES,
        conversions: 2,
      });
      expect(r.bounce).toEqual(Array(8).fill(0x42));
      expect(r.page5).toBe('"to the host"');
      expect({ priv: r.privatePages, shared: r.sharedPages }).toEqual({ priv: RAM_PAGES - 2, shared: 2 });
      expect(r.run.output).toContain('guest: shared access to private page 5');
    } finally {
      hv.close();
    }
  });

  it('gunyah-sim: demand paging by MMIO exits re-executed after binding (resume RETRY), explicit conversion; lent pages stay unreadable to the host', () => {
    const hv = new GunyahHypervisor();
    try {
      const r = runFaultDrivenGuest(hv, quiet);
      expect(r.run.stoppedBy).toBe('hlt');
      // v17: an address no binding backs is a VMMIO access (MMIO exit), never a PAGE_FAULT.
      expect(r.run.exits.filter((e) => e.kind === 'memory-fault')).toEqual([]);
      expect(r.run.exits.filter((e) => e.kind === 'mmio')).toEqual(
        [0, 4, 8, 12].map((n) => expect.objectContaining({ gpa: RAM_GPA + BigInt(n * 4096), size: 1, write: true })),
      );
      expect({ faults: r.run.faults, pagesMapped: r.run.pagesMapped, conversions: r.run.conversions }).toEqual({
        faults: 4,
        pagesMapped: RAM_PAGES,
        conversions: 1,
      });
      expect(r.bounce).toEqual(Array(8).fill(0x42));
      expect(r.page5).toBe('not readable by the host (EACCES)');
      expect({ priv: r.privatePages, shared: r.sharedPages }).toEqual({ priv: RAM_PAGES - 1, shared: 1 });
    } finally {
      hv.close();
    }
  });

  it('without backing memory the loop stops at the first fault and says why (nothing half-served)', async () => {
    const { GuestProgram, buildGuestImage, loadGuest, runGuest } = await import('@guestmem/core');
    const hv = openKvmHypervisor({ driver: 'sim' });
    try {
      const vm = hv.createVm({ confidential: true });
      const img = vm.createGuestMemory({ size: 1 << 20 });
      vm.bind({ memory: img, offset: 0, gpa: 0, size: 1 << 20, access: 'shared' });
      const vcpu = vm.createVcpu();
      loadGuest(vm, vcpu, buildGuestImage(new GuestProgram().view('private').touch(RAM_GPA, 4096, 'read')));
      const r = runGuest(vm, vcpu);
      expect(r.stoppedBy).toBe('unresolved-fault');
      expect(r.error?.code).toBe('EFAULT');
      expect(vm.bindings()).toHaveLength(1);
    } finally {
      hv.close();
    }
  });

  it('gunyah-sim without backing memory: the unbacked access is an MMIO exit left to onMmio, nothing is bound', async () => {
    const { GuestProgram, buildGuestImage, loadGuest, runGuest } = await import('@guestmem/core');
    const hv = new GunyahHypervisor();
    try {
      const vm = hv.createVm();
      const img = vm.createGuestMemory({ size: 1 << 20 });
      vm.bind({ memory: img, offset: 0, gpa: 0, size: 1 << 20, access: 'shared' });
      const vcpu = vm.createVcpu();
      loadGuest(vm, vcpu, buildGuestImage(new GuestProgram().touch(RAM_GPA, 4096, 'read')));
      const seen: bigint[] = [];
      const r = runGuest(vm, vcpu, { onMmio: (e) => void seen.push(e.gpa) });
      expect(r.stoppedBy).toBe('hlt');
      expect(seen).toEqual([RAM_GPA]);
      expect(r.faults).toBe(0);
      expect(vm.bindings()).toHaveLength(1);
    } finally {
      hv.close();
    }
  });
});
