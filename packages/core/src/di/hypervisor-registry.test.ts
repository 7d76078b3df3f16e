import 'reflect-metadata';
import { container as rootContainer } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { makeCapabilities } from '../hypervisor/capabilities.js';
import type { Hypervisor } from '../hypervisor/interfaces.js';
import { gmErr } from '../errors/guest-mem-error.js';
import { HypervisorRegistry, type HypervisorProvider } from './hypervisor-registry.js';
import { registerCore } from './register-core.js';
import { FOLIO_ALLOCATOR, HYPERVISOR, HYPERVISOR_PROVIDER, HYPERVISOR_REGISTRY } from './tokens.js';

function provider(id: string, priority: number, available: boolean, fake = false): HypervisorProvider {
  return {
    id,
    priority,
    fake,
    description: id,
    probe: () => ({ available, reason: available ? 'ok' : `${id} missing` }),
    create: () =>
      ({
        id,
        capabilities: makeCapabilities({ backend: id, simulated: fake, caps: [], maxGuestMemorySize: 1n }),
        createVm: () => {
          throw new Error('unused');
        },
        close: () => {},
      }) satisfies Hypervisor,
  };
}

describe('HypervisorRegistry', () => {
  it('prefers an explicit id, else the highest-priority available non-fake provider', () => {
    const r = new HypervisorRegistry([provider('sim', 10, true), provider('native', 100, false), provider('fake', 1000, true, true)]);
    expect(r.select().provider.id).toBe('sim');
    expect(r.select().considered.map((c) => c.id)).toEqual(['fake', 'native', 'sim']);
    expect(r.select('fake').provider.id).toBe('fake');
    expect(r.open('sim').id).toBe('sim');
  });

  it('a backend unavailable because of an error is ENODEV with that error as cause (e.g. open("/dev/kvm") EACCES)', () => {
    const eacces = gmErr('EACCES', 'open', 'kvm', undefined, { syscall: 'open' });
    const denied: HypervisorProvider = { ...provider('kvm', 100, false), probe: () => ({ available: false, reason: 'open(/dev/kvm) failed with EACCES', cause: eacces }) };
    const r = new HypervisorRegistry([denied]);
    let explicit: unknown;
    try {
      r.select('kvm');
    } catch (e) {
      explicit = e;
    }
    expect(explicit).toMatchObject({ code: 'ENODEV', cause: eacces });
    let auto: unknown;
    try {
      r.open();
    } catch (e) {
      auto = e;
    }
    expect(auto).toMatchObject({ code: 'ENODEV', cause: eacces });
    expect(JSON.parse(JSON.stringify(auto)).cause).toMatchObject({ code: 'EACCES', errno: 13, syscall: 'open', backend: 'kvm' });
  });

  it('an unknown id fails with ENODEV naming the registered ones', () => {
    const r = new HypervisorRegistry([provider('kvm', 1, true), provider('gunyah-sim', 1, true)]);
    expect(() => r.select('xen')).toThrow(expect.objectContaining({ code: 'ENODEV', message: expect.stringMatching(/'kvm'.*'gunyah-sim'|'gunyah-sim'.*'kvm'/) }));
  });

  it('an unavailable explicit choice and an all-unavailable probe fail with the reasons', () => {
    const r = new HypervisorRegistry([provider('native', 1, false), provider('fake', 2, true, true)]);
    expect(() => r.select('native')).toThrow(/native missing/);
    expect(() => r.select()).toThrow(/native: native missing; fake: fake: never auto-selected|fake: fake: never auto-selected; native: native missing/);
  });

  it('rejects duplicate ids', () => {
    expect(() => new HypervisorRegistry([provider('a', 1, true), provider('a', 2, true)])).toThrow(expect.objectContaining({ code: 'EEXIST' }));
  });

  it('works through tsyringe: multi-registered providers, explicit tokens, cached selection', () => {
    const c = rootContainer.createChildContainer();
    registerCore(c);
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('native', 100, false) });
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('sim', 10, true) });
    expect(c.resolve(HYPERVISOR_REGISTRY).list().map((p) => p.id)).toEqual(['native', 'sim']);
    const h = c.resolve(HYPERVISOR);
    expect(h.id).toBe('sim');
    expect(c.resolve(HYPERVISOR)).toBe(h);
    expect(c.resolve(FOLIO_ALLOCATOR).stats().bytesInUse).toBe(0);
    // The class itself is injectable by token too (decorators with explicit tokens).
    expect(c.resolve(HypervisorRegistry).list().length).toBe(2);
  });

  it('an empty container gives a registry with no providers and a clear error', () => {
    const c = rootContainer.createChildContainer();
    registerCore(c);
    expect(() => c.resolve(HYPERVISOR)).toThrow(/none registered/);
  });
});
