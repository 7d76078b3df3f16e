import type { Hypervisor } from '@guestmem/core';
import { MiniVmm, type MiniVmmStats } from './mini-vmm.js';

const MiB = 1024n * 1024n;
const BASE = 0x1_0000_0000n;

/** One boot → load → balloon → convert → shutdown cycle; returns the stats before shutdown. */
export function runMiniVmm(h: Hypervisor, log: (s: string) => void): MiniVmmStats {
  const vmm = new MiniVmm(h, BASE, 16n * MiB, log);
  try {
    vmm.load(BASE, new TextEncoder().encode('kernel image'));
    const seen = vmm.peek(BASE, 12);
    const who = vmm.vm.capabilities.has('guest-access') ? 'guest sees' : 'host view shows';
    if (seen) log(`${who} "${new TextDecoder().decode(seen)}" at 0x${BASE.toString(16)}`);
    vmm.inflate(BASE + 8n * MiB, 4n * MiB);
    vmm.deflate(BASE + 8n * MiB, 2n * MiB);
    if (!vmm.convert(BASE + 2n * MiB, 2n * MiB, 'private')) log('no conversion on this backend: all RAM stays shared');
    const s = vmm.stats();
    log(`IOMMU maps ${s.dmaMappedPages} of ${Number((16n * MiB) / 4096n)} pages`);
    return s;
  } finally {
    vmm.shutdown();
  }
}
