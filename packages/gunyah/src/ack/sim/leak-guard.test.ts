/**
 * The GC safety net of the simulated ACK driver (`../../sim/leak-guard.ts`): VM handles dropped
 * without close() on a host that stays open are torn down when collected — fds, VMs, bindings,
 * stage 2, parcels, pins and locked pages back at the baseline — with a warning per collection;
 * the user memory itself is named by address and lives until munmap(), as a process's mappings do.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LEAK_WARNING_CODE } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { ACK_IOCTL } from '../uapi/index.js';
import { ACK_DEVICE_FD, type AckHost, openGunyahAck } from './host.js';
import { DTB_GPA, P, RWX } from './test-helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(done: () => boolean): Promise<void> {
  for (let i = 0; i < 40 && !done(); i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

const json = (x: unknown): string => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}` : v));

/** One dropped VM: a started VM with a shared DTB page and lent RAM the guest wrote (pages pinned and in stage 2). Returns the addresses to munmap. */
function dropVm(host: AckHost): bigint[] {
  const vm = host.createVm();
  const dtb = host.current.mmap({ size: P });
  vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: dtb.address });
  vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
  const ram = host.current.mmap({ size: 4n * P });
  vm.lendUserMem({ label: 1, flags: RWX, guestPhysAddr: 0x8000_0000n, memorySize: 4n * P, userspaceAddr: ram.address });
  vm.start();
  expect(vm.vcpu().write(0x8000_0000n, Uint8Array.of(7)).status).toBe('done');
  return [dtb.address, ram.address];
}

describe('gunyah-ack-sim driver leak guard (GC exposed)', () => {
  it('30 dropped VMs are torn down at collection: fds, VMs, bindings, stage 2, parcels and locked pages back at the baseline, with a warning per collection', async () => {
    const host = openGunyahAck();
    await collect(() => false);
    const base = host.stats();
    const messages: string[] = [];
    const on = (w: Error): void => void ((w as { code?: string }).code === LEAK_WARNING_CODE && messages.push(w.message));
    process.on('warning', on);
    try {
      const addresses = Array.from({ length: 30 }, () => dropVm(host)).flat();
      const grown = host.stats();
      expect([grown.openFds, grown.vms, grown.bindings]).toEqual([base.openFds + 30, base.vms + 30, base.bindings + 60]);
      expect(grown.stage2Folios).toBeGreaterThan(base.stage2Folios);
      await collect(() => host.stats().vms === base.vms && messages.length > 0);
      const after = host.stats();
      expect(json({ ...after, folioBytes: 0n })).toBe(json({ ...base, folioBytes: 0n }));
      expect(messages.join('\n')).toContain('× gunyah-ack-sim VM fd');
      expect(messages.length).toBeLessThan(30);
      // The user memory is the process's until munmap (named by address, not a handle).
      expect(after.folioBytes).toBeGreaterThan(base.folioBytes);
      for (const a of addresses) host.current.munmap(a);
      expect(host.stats().folioBytes).toBe(base.folioBytes);
    } finally {
      process.off('warning', on);
    }
  });

  it('a dropped CMA fd gives its pool back at collection (fd closed, block freed)', async () => {
    const host = openGunyahAck({ cmaPools: { pool0: 4n * P } });
    const pool = host.cmaDevices.get('pool0');
    if (!pool) throw new Error('no pool');
    const fds = host.stats().openFds;
    (() => {
      const cma = pool.createCmaMemFd();
      cma.mmap(4n * P);
    })();
    expect(pool.allocatedBy).toBeDefined();
    await collect(() => pool.allocatedBy === undefined);
    expect(pool.allocatedBy).toBeUndefined();
    expect(host.stats().openFds).toBe(fds);
    // The pool can be taken again.
    pool.createCmaMemFd().close();
  });

  it('an fd from the raw ioctl entry point is a number only: it stays open until closed', async () => {
    const host = openGunyahAck();
    const fd = host.ioctl(ACK_DEVICE_FD, ACK_IOCTL.GH_CREATE_VM);
    await collect(() => false);
    expect(host.vm(fd)).toBeDefined();
    expect(host.stats().vms).toBe(1);
    host.vm(fd)?.close();
    expect(host.stats().vms).toBe(0);
  });
});
