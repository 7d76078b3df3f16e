import { describe, expect, it } from 'vitest';
import { GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor } from '@guestmem/kvm';
import type { Hypervisor } from '@guestmem/core';
import { MiniVmm } from './mini-vmm.js';
import { runMiniVmm } from './scenario.js';

const MiB = 1024n * 1024n;
const BASE = 0x1_0000_0000n;
const PAGES = 4096;

const backends: Array<[string, () => Hypervisor]> = [
  ['kvm-sim (SW_PROTECTED)', () => openKvmHypervisor({ driver: 'sim' })],
  ['kvm-sim (default VMs only)', () => openKvmHypervisor({ driver: 'sim', swProtectedVm: false })],
  ['gunyah-sim', () => new GunyahHypervisor()],
];

describe.each(backends)('MiniVmm on %s', (_name, create) => {
  it('keeps the IOMMU equal to the shared pages through conversions, balloon frees memory', () => {
    const h = create();
    try {
      const vmm = new MiniVmm(h, BASE, 16n * MiB);
      expect(vmm.stats().dmaMappedPages).toBe(PAGES);
      vmm.load(BASE, new Uint8Array([1, 2, 3]));
      const seen = vmm.peek(BASE, 3);
      if (seen) expect(seen).toEqual(new Uint8Array([1, 2, 3]));
      vmm.load(BASE + 8n * MiB, new Uint8Array([9]));
      vmm.inflate(BASE + 8n * MiB, 4n * MiB);
      vmm.deflate(BASE + 8n * MiB, 4n * MiB);
      const back = vmm.peek(BASE + 8n * MiB, 1);
      if (back) expect(back).toEqual(new Uint8Array([0]));
      const converted = vmm.convert(BASE + 2n * MiB, 2n * MiB, 'private');
      expect(converted).toBe(h.capabilities.has('convert-in-place') || h.capabilities.has('convert-remap'));
      expect(vmm.stats().dmaMappedPages).toBe(converted ? PAGES - 512 : PAGES);
      if (converted) {
        vmm.convert(BASE + 2n * MiB, 1n * MiB, 'shared');
        expect(vmm.stats().dmaMappedPages).toBe(PAGES - 256);
      }
      vmm.shutdown();
      expect(vmm.ram.closed).toBe(true);
      expect(vmm.binding.active).toBe(false);
    } finally {
      h.close();
    }
  });

  it('runs the scripted scenario', () => {
    const h = create();
    const lines: string[] = [];
    try {
      const s = runMiniVmm(h, (l) => lines.push(l));
      expect(s.balloonedPages).toBe(512);
      expect(lines.join('\n')).toContain('shut down');
    } finally {
      h.close();
    }
  });
});
