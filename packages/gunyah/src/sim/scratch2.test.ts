import { describe, expect, it } from 'vitest';
import { HoldingCell, LEND_RW, SHARE_RW, DTB_GPA } from './test-helpers.js';
import { openGunyah } from './device.js';

describe('scratch v17', () => {
  it('same file range bound in two VMs', () => {
    const gh = openGunyah({ driver: 'sim' });
    const a = new HoldingCell(gh);
    const b = new HoldingCell(gh);
    const mem = gh.createGuestMem({ flags: 0n, size: 4096 });
    a.vm.mapMem({ guestAddr: 0x8000_0000n, flags: LEND_RW, guestMemFd: mem.fd, offset: 0, size: 4096 });
    let r: unknown;
    try { b.vm.mapMem({ guestAddr: 0x8000_0000n, flags: SHARE_RW, guestMemFd: mem.fd, offset: 0, size: 4096 }); r = 'ok'; } catch (e) { r = (e as any).code; }
    console.log('second VM bind same range:', r);
    a.cpu.write(0x8000_0000n, Uint8Array.of(9));
    if (r === 'ok') console.log('vm b reads:', b.cpu.read(0x8000_0000n, 1));
  });
  it('vcpu run before start, dtb rules', () => {
    const gh = openGunyah({ driver: 'sim' });
    const vm = gh.createVm();
    let r: unknown;
    try { vm.vcpu(0).read(0x1000n, 1); r='ok'; } catch (e) { r = (e as any).code; }
    console.log('run before start', r);
    try { vm.start(); r='ok'; } catch (e) { r = (e as any).code; }
    console.log('start without dtb', r);
    try { vm.start(); r='ok'; } catch (e) { r = (e as any).code; }
    console.log('start again', r);
    console.log(gh.stats());
  });
  it('memlock-like: v17 teardown frees everything', () => {
    const gh = openGunyah({ driver: 'sim' });
    for (let i = 0; i < 3; i++) {
      const c = new HoldingCell(gh);
      const m = c.addMemory(0x8000_0000n, 2n << 20n, 'lend', true);
      c.cpu.write(0x8000_1000n, Uint8Array.of(1));
      c.vm.close();
      m.close(); c.dtbMem.close();
    }
    console.log(gh.stats());
  });
});
