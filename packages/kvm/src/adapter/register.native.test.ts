import 'reflect-metadata';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { HYPERVISOR, HYPERVISOR_REGISTRY, registerCore } from '@guestmem/core';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { probeNativeKvm } from '../native/probe.js';
import { registerKvm } from './register.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[register.native] /dev/kvm cases skipped: ${probe.reason}`);

function registry(device: string | number) {
  const c = container.createChildContainer();
  registerCore(c);
  registerKvm(c, { driver: 'native', device });
  return c.resolve(HYPERVISOR_REGISTRY);
}

describe('registerKvm({ device }) on the native driver', () => {
  it('a missing device path is unavailable with ENOENT and a hint, never a throw', () => {
    const [{ result }] = registry('/nonexistent/kvm').probeAll();
    expect(result).toMatchObject({ available: false, details: { code: 'ENOENT', device: '/nonexistent/kvm' } });
    expect(result.hint).toMatch(/load a KVM module/);
  });

  it('a device that is not KVM (/dev/null, by path or by fd) is unavailable with ENOTTY and a hint', () => {
    const [{ result }] = registry('/dev/null').probeAll();
    expect(result).toMatchObject({ available: false, details: { code: 'ENOTTY' } });
    expect(result.hint).toMatch(/not a KVM device/);
    const fd = openSync('/dev/null', 'r');
    try {
      const [{ result: byFd }] = registry(fd).probeAll();
      expect(byFd).toMatchObject({ available: false, details: { code: 'ENOTTY', device: `fd ${fd}` } });
    } finally {
      closeSync(fd);
    }
  });

  it.skipIf(!probe.available)('an already-open /dev/kvm fd drives the backend; the caller keeps its fd open', () => {
    const fd = openSync('/dev/kvm', 'r+');
    try {
      const c = container.createChildContainer();
      registerCore(c, { hypervisor: 'kvm' });
      registerKvm(c, { driver: 'native', device: fd });
      const [{ result }] = c.resolve(HYPERVISOR_REGISTRY).probeAll();
      expect(result).toMatchObject({ available: true, details: { device: `fd ${fd}` } });
      const h = c.resolve(HYPERVISOR);
      const vm = h.createVm();
      const mem = vm.createGuestMemory({ size: 4096 });
      mem.close();
      vm.destroy();
      h.close();
      expect(fstatSync(fd).isCharacterDevice()).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it.skipIf(!probe.available)('the probe names capabilities, VM types and guest_memfd flags', () => {
    expect(probe.caps.KVM_CAP_GUEST_MEMFD).toBe(1);
    expect(probe.vmTypes).toContain('KVM_X86_DEFAULT_VM');
    // Every decoded name is a flag the kernel reported in KVM_CAP_GUEST_MEMFD_FLAGS.
    expect(probe.guestMemfdFlags.length).toBe(popcount(probe.caps.KVM_CAP_GUEST_MEMFD_FLAGS!));
  });
});

function popcount(n: number): number {
  let c = 0;
  for (let x = n >>> 0; x; x &= x - 1) c++;
  return c;
}
