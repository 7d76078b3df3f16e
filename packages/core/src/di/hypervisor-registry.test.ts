import 'reflect-metadata';
import { container as rootContainer } from 'tsyringe';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeCapabilities } from '../hypervisor/capabilities.js';
import type { Hypervisor } from '../hypervisor/interfaces.js';
import { gmErr } from '../errors/guest-mem-error.js';
import { HypervisorRegistry, type HypervisorProvider } from './hypervisor-registry.js';
import { registerCore } from './register-core.js';
import { FOLIO_ALLOCATOR, HYPERVISOR, HYPERVISOR_PROVIDER, HYPERVISOR_REGISTRY } from './tokens.js';

const noEnv = {};

function provider(id: string, priority: number, available: boolean, fake = false, simulated = false): HypervisorProvider {
  return {
    id,
    priority,
    fake,
    simulated,
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
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });

  it('prefers an explicit id, else the highest-priority available non-fake provider', () => {
    const r = new HypervisorRegistry([provider('sim', 10, true), provider('native', 100, false), provider('fake', 1000, true, true)]);
    expect(r.select({ env: noEnv }).provider.id).toBe('sim');
    expect(r.select({ env: noEnv }).considered.map((c) => c.id)).toEqual(['fake', 'native', 'sim']);
    expect(r.select('fake').provider.id).toBe('fake');
    expect(r.open('sim').id).toBe('sim');
  });

  it('a backend unavailable because of an error is ENODEV with that error as cause (e.g. open("/dev/kvm") EACCES)', () => {
    const eacces = gmErr('EACCES', 'open', 'kvm', undefined, { syscall: 'open' });
    const denied: HypervisorProvider = {
      ...provider('kvm', 100, false),
      probe: () => ({ available: false, reason: 'open(/dev/kvm) failed with EACCES', cause: eacces }),
    };
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
    expect(() => r.select('xen')).toThrow(
      expect.objectContaining({ code: 'ENODEV', message: expect.stringMatching(/'kvm'.*'gunyah-sim'|'gunyah-sim'.*'kvm'/) }),
    );
  });

  it('an unavailable explicit choice and an all-unavailable probe fail with the reasons', () => {
    const r = new HypervisorRegistry([provider('native', 1, false), provider('fake', 2, true, true)]);
    expect(() => r.select('native')).toThrow(/native missing/);
    expect(() => r.select({ env: noEnv })).toThrow(
      /native: native missing; fake: fake: never auto-selected|fake: fake: never auto-selected; native: native missing/,
    );
  });

  it('GUESTMEM_HYPERVISOR takes precedence over probing, and an explicit option over the variable', () => {
    const r = new HypervisorRegistry([provider('kvm', 100, true), provider('gunyah-sim', 10, true, false, true)]);
    const env = { GUESTMEM_HYPERVISOR: 'gunyah-sim' };
    expect(r.select({ env })).toMatchObject({
      provider: { id: 'gunyah-sim' },
      source: 'env',
      reason: expect.stringContaining('GUESTMEM_HYPERVISOR=gunyah-sim'),
    });
    expect(r.select({ env, hypervisor: 'kvm' })).toMatchObject({ provider: { id: 'kvm' }, source: 'option' });
    expect(r.select({ env: { GUESTMEM_HYPERVISOR: '' } })).toMatchObject({ provider: { id: 'kvm' }, source: 'probe' });
    expect(() => r.select({ env: { GUESTMEM_HYPERVISOR: 'xen' } })).toThrow(
      expect.objectContaining({ code: 'ENODEV', message: expect.stringContaining('GUESTMEM_HYPERVISOR=xen') }),
    );
    // process.env is the default source, and registerCore's HYPERVISOR follows it.
    vi.stubEnv('GUESTMEM_HYPERVISOR', 'gunyah-sim');
    expect(r.select().provider.id).toBe('gunyah-sim');
    const c = rootContainer.createChildContainer();
    registerCore(c);
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('kvm', 100, true) });
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('gunyah-sim', 10, true, false, true) });
    expect(c.resolve(HYPERVISOR).id).toBe('gunyah-sim');
    const c2 = rootContainer.createChildContainer();
    registerCore(c2, { hypervisor: 'kvm' });
    c2.register(HYPERVISOR_PROVIDER, { useValue: provider('kvm', 100, true) });
    c2.register(HYPERVISOR_PROVIDER, { useValue: provider('gunyah-sim', 10, true, false, true) });
    expect(c2.resolve(HYPERVISOR).id).toBe('kvm');
  });

  it('falling back from real hardware to a simulator emits a warning with the reason; choosing one explicitly does not', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const r = new HypervisorRegistry([provider('kvm', 100, false), provider('kvm-sim', 10, true, false, true)]);
    const sel = r.select({ env: noEnv });
    expect(sel.provider.id).toBe('kvm-sim');
    expect(sel.reason).toContain('kvm missing');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/simulator 'kvm-sim' because 'kvm': kvm missing/);
    expect(warn.mock.calls[0]![1]).toMatchObject({ code: 'GUESTMEM_SIMULATOR_FALLBACK' });
    r.select({ env: noEnv, hypervisor: 'kvm-sim' });
    new HypervisorRegistry([provider('kvm', 100, true), provider('kvm-sim', 10, true, false, true)]).select({ env: noEnv });
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it('strict selection refuses simulators, explicit or probed', () => {
    const r = new HypervisorRegistry([provider('kvm', 100, false), provider('kvm-sim', 10, true, false, true)]);
    expect(() => r.select({ env: noEnv, strict: true })).toThrow(
      expect.objectContaining({ code: 'ENODEV', message: expect.stringMatching(/kvm-sim: simulator: refused by strict/) }),
    );
    expect(() => r.select({ env: noEnv, strict: true, hypervisor: 'kvm-sim' })).toThrow(/simulator, refused by strict/);
    expect(() => r.select({ env: { GUESTMEM_HYPERVISOR: 'kvm-sim' }, strict: true })).toThrow(/simulator, refused by strict/);
    const ok = new HypervisorRegistry([provider('kvm', 100, true), provider('kvm-sim', 10, true, false, true)]);
    expect(ok.select({ env: noEnv, strict: true }).provider.id).toBe('kvm');
    const c = rootContainer.createChildContainer();
    registerCore(c, { strict: true });
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('kvm-sim', 10, true, false, true) });
    expect(() => c.resolve(HYPERVISOR)).toThrow(/refused by strict/);
  });

  it('a probe that throws is reported unavailable, never thrown', () => {
    const bad: HypervisorProvider = {
      ...provider('bad', 100, true),
      probe: () => {
        throw new Error('boom');
      },
    };
    const r = new HypervisorRegistry([bad, provider('sim', 10, true)]);
    expect(r.probeAll().map((x) => [x.provider.id, x.result.available, x.result.reason])).toEqual([
      ['bad', false, 'probe failed: boom'],
      ['sim', true, 'ok'],
    ]);
    expect(r.select({ env: noEnv }).provider.id).toBe('sim');
  });

  it('rejects duplicate ids', () => {
    expect(() => new HypervisorRegistry([provider('a', 1, true), provider('a', 2, true)])).toThrow(
      expect.objectContaining({ code: 'EEXIST' }),
    );
  });

  it('works through tsyringe: multi-registered providers, explicit tokens, cached selection', () => {
    const c = rootContainer.createChildContainer();
    registerCore(c);
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('native', 100, false) });
    c.register(HYPERVISOR_PROVIDER, { useValue: provider('sim', 10, true) });
    expect(
      c
        .resolve(HYPERVISOR_REGISTRY)
        .list()
        .map((p) => p.id),
    ).toEqual(['native', 'sim']);
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
