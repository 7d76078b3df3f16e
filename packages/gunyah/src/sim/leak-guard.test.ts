/**
 * The GC safety net of the simulated v17 driver itself (`leak-guard.ts`): VM, guest-memory and
 * host-mapping handles dropped without close()/unmap() on a device that stays open are closed when
 * collected — fds, VMs, files, bindings, parcels and folios back at the baseline — with a warning
 * per collection; memory a live binding uses is never released; a raw-ioctl fd is a number and stays.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LEAK_WARNING_CODE } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { GUNYAH_IOCTL } from '../uapi/index.js';
import { GUNYAH_DEVICE_FD, type SimDevice, openGunyah } from './device.js';
import { HoldingCell } from './test-helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const P = 4096n;

async function collect(done: () => boolean): Promise<void> {
  for (let i = 0; i < 40 && !done(); i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One dropped graph: a started VM with a lent DTB page and shared RAM the guest and the host wrote, and a host mapping. None closed. */
function dropGraph(gh: SimDevice): void {
  const hc = new HoldingCell(gh);
  const ram = hc.addMemory(0x8000_0000n, 4n * P, 'share');
  hc.cpu.write(0x8000_0000n, Uint8Array.of(1, 2, 3));
  const view = ram.mmap({ offset: P, length: 4096 });
  view.write(0n, Uint8Array.of(4));
}

function onLeakWarnings(): { messages: string[]; stop: () => void } {
  const messages: string[] = [];
  const on = (w: Error): void => void ((w as { code?: string }).code === LEAK_WARNING_CODE && messages.push(w.message));
  process.on('warning', on);
  return { messages, stop: () => void process.off('warning', on) };
}

describe('gunyah-sim driver leak guard (GC exposed)', () => {
  it('30 dropped VM graphs leave fds, VMs, files, bindings, parcels and folios at the baseline, with a warning per collection naming them', async () => {
    const gh = openGunyah({ driver: 'sim' });
    await collect(() => false);
    const base = gh.stats();
    const w = onLeakWarnings();
    try {
      for (let i = 0; i < 30; i++) dropGraph(gh);
      const grown = gh.stats();
      expect([grown.openFds, grown.vms, grown.files, grown.bindings]).toEqual([
        base.openFds + 30 * 4,
        base.vms + 30,
        base.files + 60,
        base.bindings + 60,
      ]);
      expect(grown.folioBytes).toBeGreaterThan(base.folioBytes);
      await collect(
        () =>
          JSON.stringify(gh.stats(), (_k, v) => (typeof v === 'bigint' ? `${v}` : v)) ===
            JSON.stringify(base, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)) && w.messages.length > 0,
      );
      expect(gh.stats()).toEqual(base);
      const text = w.messages.join('\n');
      for (const what of ['× gunyah-sim VM fd', '× gunyah-sim guest-memory fd', '× gunyah-sim host mapping']) expect(text).toContain(what);
      expect(w.messages.length).toBeLessThan(30);
    } finally {
      w.stop();
    }
  });

  it('a dropped guest-memory handle a live binding uses keeps its memory; the VM still reads it', async () => {
    const gh = openGunyah({ driver: 'sim' });
    const hc = new HoldingCell(gh);
    (() => {
      const ram = hc.addMemory(0x8000_0000n, P, 'share');
      const view = ram.mmap({ offset: 0n, length: 4096 });
      view.write(0n, Uint8Array.of(42));
      view.unmap();
    })();
    await collect(() => gh.stats().files === 1);
    // The handle was collected and its fd closed (only the DTB file's fd is left), yet the binding keeps the file.
    expect(gh.stats().files).toBe(1);
    expect(gh.stats().bindings).toBe(2);
    expect(hc.cpu.read(0x8000_0000n, 1)).toMatchObject({ data: Uint8Array.of(42) });
    hc.vm.close();
    hc.dtbMem.close();
    await collect(() => gh.stats().folioBytes === 0n);
    expect(gh.stats()).toMatchObject({ openFds: 0, vms: 0, files: 0, bindings: 0, folioBytes: 0n });
  });

  it('an fd from the raw ioctl entry point is a number only: it stays open until closed', async () => {
    const gh = openGunyah({ driver: 'sim' });
    const fd = gh.ioctl(GUNYAH_DEVICE_FD, GUNYAH_IOCTL.GUNYAH_CREATE_VM);
    await collect(() => false);
    expect(gh.vm(fd)).toBeDefined();
    expect(gh.stats().vms).toBe(1);
    gh.vm(fd)?.close();
    expect(gh.stats().vms).toBe(0);
  });
});
