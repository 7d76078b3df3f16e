/**
 * The neutral adapter speaks only the uAPI of `api.ts`: driver-specific extensions come in through
 * the provider (`register.ts`), so the adapter never imports a driver.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openKvmHypervisor, simKvmProvider } from './register.js';

describe('KVM adapter boundaries', () => {
  it('kvm-hypervisor.ts imports neither the simulated kernel nor the native driver', () => {
    const src = readFileSync(new URL('./kvm-hypervisor.ts', import.meta.url), 'utf8');
    const imports = [...src.matchAll(/^import[^;]*from '([^']+)'/gm)].map((m) => m[1]);
    expect(imports.filter((p) => /\/(sim|native)\//.test(p!))).toEqual([]);
  });

  it("the simulated kernel's extensions reach the adapter through the provider and openKvmHypervisor", () => {
    for (const h of [
      simKvmProvider().create(),
      openKvmHypervisor({ driver: 'sim' }),
      openKvmHypervisor({ driver: 'sim', swProtectedVm: false }),
    ]) {
      expect(h.capabilities.has('guest-access')).toBe(true);
      expect(h.capabilities.has('poison-injection')).toBe(true);
      h.close();
    }
  });
});
