/**
 * The highest guest frame on this host, as the driver derives it (`hostMaxGpaBits`, used by its
 * diagnosis and documented in the README): `tdp_enabled ? MAXPHYADDR : 52`. The kernel must agree at
 * the boundary: a slot whose last page is just below 2^bits is accepted, one page higher is EINVAL.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openKvm } from '../open.js';
import { hostMaxGpaBits } from './diagnosis.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping the max-gfn derivation: ${probe.reason}`);

const P = 4096n;
/** The probe machine's vendor module: PVM (shadow paging, no EPT/NPT). */
const pvm = existsSync('/sys/module/kvm_pvm');
if (probe.available && !pvm) console.warn('[kvm native] not a PVM host: skipping the 52-bit pin');

describe.skipIf(!probe.available)('kvm_mmu_max_gfn() on this host', () => {
  it('the derived GPA width matches the kernel at the boundary, for new and moved slots', () => {
    const bits = hostMaxGpaBits();
    const limit = 1n << BigInt(bits);
    const kvm = openKvm({ driver: 'native' });
    const vm = kvm.createVm();
    const codeOf = (fn: () => void) => {
      try {
        fn();
        return 'ok';
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    try {
      const region = (slot: number, gpa: bigint) => ({ slot, flags: 0, guestPhysAddr: gpa, memorySize: P });
      expect(codeOf(() => vm.setUserMemoryRegion(region(0, limit - P)))).toBe('ok');
      expect(codeOf(() => vm.setUserMemoryRegion(region(1, limit)))).toBe('EINVAL');
      expect(codeOf(() => vm.setUserMemoryRegion(region(2, 0x100000n)))).toBe('ok');
      expect(codeOf(() => vm.setUserMemoryRegion(region(2, limit)))).toBe('EINVAL');
    } finally {
      vm.close();
      kvm.close();
    }
  });

  it.skipIf(!pvm)('on this PVM host (shadow MMU) the width is 52 bits, not the CPU physical-address width', () => {
    expect(hostMaxGpaBits()).toBe(52);
    const cpuBits = Number(/address sizes\s*:\s*(\d+) bits physical/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]);
    expect(cpuBits).toBeLessThan(52);
  });
});
