/**
 * ACK's own rules, one test each, with the source the rule comes from (keys of
 * docs/gunyah-ack.md §0). Generation C (the 6.12 line) unless the test says otherwise.
 */
import { describe, expect, it } from 'vitest';
import { HostAccessFault } from '@guestmem/core';
import { openGunyah } from '../../sim/device.js';
import { MAP_FLAGS_V17 } from '../../uapi/index.js';
import {
  ACK_IOCTL,
  ACK_MAP_FLAGS as F,
  V17_CREATE_GUEST_MEM,
  encodeAddressRange,
  encodeMapCmaMemArgs,
  encodeUserMemoryRegion,
} from '../uapi/index.js';
import { ACK_DEVICE_FD, openGunyahAck } from './host.js';
import { AckCell, DTB_GPA, MiB, P, RW, RWX, faultAttempt } from './test-helpers.js';

const G = 0x8000_0000n;
const sigbus = (fn: () => unknown) => expect(fn).toThrow(HostAccessFault);

describe('ACK rules (generation C unless stated)', () => {
  it('lend or share is chosen by the ioctl: LEND_USER_MEM takes the page from the host, SET_USER_MEM_REGION keeps it coherent [K7 vm_mgr.c: LEND falls through with lend = true]', () => {
    const c = new AckCell();
    const lent = c.add(G, 4n * P, 'lend');
    const shared = c.add(G + MiB, 4n * P, 'share');
    c.write(G, Uint8Array.of(1));
    c.write(G + MiB, Uint8Array.of(2));
    expect(shared.memory.read(0, 1)).toEqual(Uint8Array.of(2)); // share: the host sees the guest's write
    shared.memory.write(1, Uint8Array.of(3));
    expect(c.read(G + MiB + 1n)).toEqual(Uint8Array.of(3)); // and the guest the host's
    sigbus(() => lent.memory.read(0, 1)); // lend: stage-2 fault
    expect(c.host.rm.all().map((p) => p.kind)).toEqual(['share']); // only the DTB parcel exists; the rest is demand paged
  });

  it('the host keeps its mapping of lent pages: untouched pages stay host memory, a touched one takes a stage-2 fault (SIGBUS), reclaim gives it back with the guest data [K6 memory.rs "there would be S2 fault", K7 no lend-safety call]', () => {
    const c = new AckCell();
    const m = c.add(G, 4n * P, 'lend');
    m.memory.write(P, Uint8Array.of(0x11)); // before the guest touched it: host memory
    expect(c.read(G + P)).toEqual(Uint8Array.of(0x11)); // the guest sees what the host wrote
    c.write(G + P, Uint8Array.of(0x22));
    sigbus(() => m.memory.read(P, 1));
    expect(m.memory.read(2n * P, 1)).toEqual(Uint8Array.of(0)); // its neighbour was never faulted in
    expect(c.host.current.mm.resolve(m.address)?.memory).toBe(m.memory); // the VMA is still there
    c.cpu.relinquish(G + P, 1);
    c.vm.reclaimRegion({ guestPhysAddr: G, size: 4n * P });
    expect(m.memory.read(P, 1)).toEqual(Uint8Array.of(0x22)); // reclaim does not scrub
  });

  it('demand paging pins one page per guest fault and charges it to RLIMIT_MEMLOCK; reclaim unpins and uncharges [K7 gunyah_demand_page, __gunyah_vm_reclaim_folio_locked]', () => {
    const c = new AckCell();
    const m = c.add(G, 8n * P, 'share');
    const mm = c.host.current.mm;
    expect(mm.memlock.lockedPages).toBe(0);
    c.read(G + 3n * P);
    expect(mm.memlock.lockedPages).toBe(2); // the DTB page (parcel) + one fault
    expect(m.memory.pinsAt(3)).toBe(1);
    expect(m.memory.pinsAt(2)).toBe(0);
    c.read(G + 5n * P, 1);
    expect(mm.memlock.lockedPages).toBe(3);
    c.vm.reclaimRegion({ guestPhysAddr: G, size: 8n * P });
    expect(mm.memlock.lockedPages).toBe(1);
    expect(m.memory.pinsAt(3)).toBe(0);
    expect(c.vm.bindings().length).toBe(2); // bindings stay
  });

  it('a THP-backed range: one fault provides the whole 2 MiB folio (one pin, one page charged) [K7: provide the folio at gfn − folio_page_idx]', () => {
    const c = new AckCell();
    const m = c.add(G, 2n * MiB, 'lend', { hugePages: true });
    c.write(G + 5n * P, Uint8Array.of(9));
    expect(m.memory.folioAt(5)?.order).toBe(9);
    expect(c.host.current.mm.memlock.lockedPages).toBe(2);
    expect(c.vm.pageState(Number(G / P) + 511)).toBe('LENT_LOCKED');
    sigbus(() => m.memory.read(100n * P, 1)); // any page of the donated folio
  });

  it('RLIMIT_MEMLOCK: a fault past the limit exits PAGE_FAULT with attempt -ENOMEM; generation A refuses the whole region at the ioctl with ENOMEM [K7 account_locked_vm(1), K4 account_locked_vm(npages)]', () => {
    const c = new AckCell({ memlockLimit: 2 * 4096 });
    c.add(G, 4n * P, 'share');
    c.read(G); // DTB page + this page = 2
    expect(faultAttempt(c.cpu.read(G + P, 1))).toBe(-12);
    const a = new AckCell({ generation: 'A', memlockLimit: 4 * 4096 });
    expect(() => a.add(G, 4n * P, 'lend')).toThrow(expect.objectContaining({ code: 'ENOMEM' })); // 1 (DTB) + 4 > 4
    expect(a.vm.bindings().length).toBe(1);
    expect(a.host.current.mm.memlock.lockedPages).toBe(1);
  });

  it('only the VM creator may bind, reclaim, map CMA or run: EPERM from another process; DTB config is not checked [K7 vm_mgr.c "only allow owner task", gunyah_vcpu.c]', () => {
    const c = new AckCell({ cmaPools: { vm: 4n * MiB } });
    const m = c.add(G, 4n * P, 'share');
    const other = c.host.createProcess();
    c.vm.start();
    const r = { label: 9, flags: RWX, guestPhysAddr: G + MiB, memorySize: P, userspaceAddr: m.address };
    c.host.runAs(other, () => {
      expect(() => c.vm.setUserMemRegion(r)).toThrow(expect.objectContaining({ code: 'EPERM', errno: 1 }));
      expect(() => c.vm.lendUserMem(r)).toThrow(expect.objectContaining({ code: 'EPERM' }));
      expect(() => c.vm.reclaimRegion({ guestPhysAddr: G, size: P })).toThrow(expect.objectContaining({ code: 'EPERM' }));
      expect(() => c.vm.mapCmaMem({ label: 1, guestAddr: G + MiB, flags: 0, guestMemFd: 99, offset: 0n, size: P })).toThrow(
        expect.objectContaining({ code: 'EPERM' }),
      );
      expect(() => c.vm.vcpu().read(G, 1)).toThrow(expect.objectContaining({ code: 'EPERM', syscall: 'ioctl(GH_VCPU_RUN)' }));
      // The raw ioctl checks the owner before copy_from_user: EPERM even with no argument.
      expect(() => c.host.ioctl(c.vm.fd, ACK_IOCTL.GH_VM_SET_USER_MEM_REGION)).toThrow(expect.objectContaining({ code: 'EPERM' }));
      c.vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
    });
    expect(c.vm.bindings().length).toBe(2);
  });

  it('GH_VCPU_RUN before VM_START is ENODEV — the VM does not start implicitly — and that check comes before the owner check [K7 gunyah_vcpu.c: !vcpu->rsc → -ENODEV, then current->mm != mm_s → -EPERM]', () => {
    const c = new AckCell();
    c.add(G, P, 'share');
    expect(() => c.vm.vcpu().read(G, 1)).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'ioctl(GH_VCPU_RUN)' }));
    c.host.runAs(c.host.createProcess(), () => expect(() => c.vm.vcpu().read(G, 1)).toThrow(expect.objectContaining({ code: 'ENODEV' })));
    expect(c.vm.status).toBe('no-state');
    c.vm.start();
    expect(c.vm.vcpu().read(G, 1).status).toBe('done');
  });

  it("regression: generation A does not start the VM on GH_VCPU_RUN either — ENODEV until VM_START [the gh_-era gh_vcpu_run matching K1's uAPI (GH_VCPU_EXIT_STATUS, gh_vcpu_check_system): !vcpu->rsc → -ENODEV; only upstream PATCH v9 24/27 (Jan 2023) called gh_vm_ensure_started from RUN]", () => {
    const a = new AckCell({ generation: 'A' });
    a.add(G, P, 'share');
    expect(() => a.vm.vcpu().read(G, 1)).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'ioctl(GH_VCPU_RUN)' }));
    expect(a.vm.status).toBe('no-state');
    a.vm.start();
    expect(a.vm.vcpu().read(G, 1).status).toBe('done');
  });

  it('overlap is checked on GPAs only: the same host range twice and a repeated label are fine; a GPA overlap is EEXIST [K7 maple-tree insert, labels unchecked]', () => {
    const c = new AckCell();
    const m = c.add(G, 4n * P, 'share');
    c.vm.setUserMemRegion({ label: 1, flags: RWX, guestPhysAddr: G + MiB, memorySize: 4n * P, userspaceAddr: m.address });
    c.write(G, Uint8Array.of(5));
    // Both bindings exist, but one host page can be in the guest's stage 2 once: the second GPA's
    // fault cannot donate it again (ACK_FOLIO_HELD_ERRNO, inference) — see the regression test below.
    expect(faultAttempt(c.cpu.read(G + MiB, 1))).toBe(-22);
    expect(c.read(G + MiB + P)).toEqual(Uint8Array.of(0)); // a page the first binding never provided
    expect(() =>
      c.vm.lendUserMem({ label: 7, flags: RWX, guestPhysAddr: G + 3n * P, memorySize: 2n * P, userspaceAddr: m.address }),
    ).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(c.vm.bindings().length).toBe(3);
  });

  it('regression: a host page the hypervisor holds for a guest is never provided again — not through a second binding of the same VM, not to another VM — so the host and other guests never read lent memory [K7 gunyah_vm_provide_folio: memextent_donate from the host extent; one owner per page: inference ACK_FOLIO_HELD_ERRNO]', () => {
    // Found by a break program: the second binding's fault re-registered the folio as shared, the
    // host then read the lent page the guest held, and a second VM read the first guest's data.
    const c = new AckCell();
    const m = c.host.current.mmap({ size: P });
    c.vm.lendUserMem({ label: 5, flags: RWX, guestPhysAddr: G, memorySize: P, userspaceAddr: m.address });
    c.vm.setUserMemRegion({ label: 6, flags: RWX, guestPhysAddr: G + MiB, memorySize: P, userspaceAddr: m.address });
    c.write(G, Uint8Array.of(0x42));
    const locked = c.host.current.mm.memlock.lockedPages;
    expect(faultAttempt(c.cpu.read(G + MiB, 1))).toBe(-22);
    expect(c.host.current.mm.memlock.lockedPages).toBe(locked); // the refused fault unpinned and unaccounted
    expect(m.memory.pinsAt(0)).toBe(1);
    sigbus(() => c.host.current.read(m.address, 1));
    expect(() => c.vm.reclaimRegion({ guestPhysAddr: G + MiB, size: P })).not.toThrow(); // nothing provided there
    sigbus(() => c.host.current.read(m.address, 1));
    expect(c.vm.pageState(Number(G / P))).toBe('LENT_LOCKED');

    // A second VM over the same host page: its fault is refused too; its DTB cannot be a held page either.
    const vm2 = c.host.createVm();
    const d2 = c.host.current.mmap({ size: P });
    vm2.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: d2.address });
    vm2.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
    vm2.setUserMemRegion({ label: 1, flags: RWX, guestPhysAddr: G, memorySize: P, userspaceAddr: m.address });
    vm2.start();
    expect(faultAttempt(vm2.vcpu().read(G, 1))).toBe(-22);
    const vm3 = c.host.createVm();
    vm3.lendUserMem({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: m.address });
    vm3.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
    expect(() => vm3.start()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    vm3.close();
    vm2.close();
    sigbus(() => c.host.current.read(m.address, 1)); // closing the other VMs gave nothing of VM 1's back
    c.vm.close();
    expect(c.host.current.read(m.address, 1)).toEqual(Uint8Array.of(0x42)); // teardown reclaims it (no sanitize in ACK)
    expect(c.host.stats()).toMatchObject({ vms: 0, stage2Folios: 0, parcels: 0, lockedPages: 0 });
  });

  it('region flags: only R/W/X (0x7); 0x10 — FORCE_LEND in the ACK enum, ALLOW_READ in v17 — is EINVAL; flags 0 are accepted [K7 vm_mgr.c, docs/gunyah-ack.md §3.2]', () => {
    const c = new AckCell();
    const m = c.host.current.mmap({ size: P });
    for (const flags of [0x10, 0x17, 0x20, 0x100, 0x8]) {
      expect(() => c.vm.setUserMemRegion({ label: 1, flags, guestPhysAddr: G, memorySize: P, userspaceAddr: m.address })).toThrow(
        expect.objectContaining({ code: 'EINVAL' }),
      );
    }
    c.vm.setUserMemRegion({ label: 1, flags: 0, guestPhysAddr: G, memorySize: P, userspaceAddr: m.address });
    expect(c.vm.bindings().map((b) => b.flags)).toEqual([7, 0]);
  });

  it("the two drivers never mix up 0x10: v17 reads it as ALLOW_READ (a lend binding with read rights), ACK's CMA ioctl as FORCE_LEND, ACK's region ioctls refuse it [v17 gunyah.h; K7 gunyah.h, vm_mgr_cma_mem.c]", () => {
    const v17 = openGunyah({ driver: 'sim' });
    const mem = v17.createGuestMem({ flags: 0n, size: P });
    const vm17 = v17.createVm();
    vm17.mapMem({ guestAddr: G, flags: 0x10, guestMemFd: mem.fd, offset: 0, size: P });
    expect(vm17.bindings()[0]).toMatchObject({ lend: true, write: false });
    expect(MAP_FLAGS_V17.GUNYAH_MEM_ALLOW_READ).toBe(0x10);
    // ACK's R|W|X word (0x7) on v17 is access value 7 with no rights: EINVAL.
    expect(() => vm17.mapMem({ guestAddr: G + MiB, flags: 0x7, guestMemFd: mem.fd, offset: 0, size: P })).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    const c = new AckCell({ cmaPools: { vm: MiB } });
    const cma = c.host.cmaDevices.get('vm')!.createCmaMemFd();
    cma.mmap(MiB);
    c.vm.mapCmaMem({ label: 1, guestAddr: G, flags: 0x10, guestMemFd: cma.fd, offset: 0n, size: MiB });
    expect(c.vm.bindings().find((b) => b.kind === 'cma')).toMatchObject({
      share: 'lend',
      rights: { read: false, write: false, exec: false },
    });
  });

  it('CMA: only FORCE_LEND (0x10) lends; DEFAULT (0) and FORCE_SHARE (0x20) share — seen in the parcel the DTB makes at start [K7 vm_mgr_cma_mem.c share_type]', () => {
    for (const [flags, kind] of [
      [F.GUNYAH_MEM_FORCE_LEND | RWX, 'lend'],
      [F.GUNYAH_MEM_DEFAULT_ACCESS | RWX, 'share'],
      [F.GUNYAH_MEM_FORCE_SHARE | RWX, 'share'],
    ] as const) {
      const host = openGunyahAck({ cmaPools: { vm: MiB } });
      const vm = host.createVm();
      const cma = host.cmaDevices.get('vm')!.createCmaMemFd();
      cma.mmap(MiB);
      vm.mapCmaMem({ label: 0, guestAddr: G, flags, guestMemFd: cma.fd, offset: 0n, size: MiB });
      vm.setDtbConfig({ guestPhysAddr: G, size: P });
      vm.start();
      expect(host.rm.all().map((p) => [p.kind, p.acl.length])).toEqual([[kind, kind === 'lend' ? 1 : 2]]);
      expect(vm.isProtected).toBe(kind === 'lend');
      // The parcel pages are the guest's; the rest of the CMA binding is never demand paged.
      expect(vm.vcpu().read(G, 1).status).toBe('done');
      expect(faultAttempt(vm.vcpu().read(G + P, 1))).toBe(-95);
      expect(() => cma.read(0, 1)).toThrow(expect.objectContaining({ code: 'EACCES' })); // shared as a parcel
      vm.close();
      expect(cma.read(0, 1)).toEqual(Uint8Array.of(0));
      cma.close();
      expect(host.stats()).toMatchObject({ parcels: 0, folioBytes: 0n, stage2Folios: 0 });
    }
  });

  it('the CMA fd: EBUSY for a second fd while the pool is allocated, one mmap per fd, owner-only reads; MAP_CMA_MEM checks in order [K7 vm_mgr_cma_mem.c]', () => {
    const c = new AckCell({ cmaPools: { vm: MiB } });
    const dev = c.host.cmaDevices.get('vm')!;
    const f = dev.createCmaMemFd();
    expect(() => f.read(0, 1)).toThrow(expect.objectContaining({ code: 'EINVAL' })); // nothing allocated yet
    expect(() => f.mmap(2n * MiB)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    f.mmap(MiB);
    expect(() => f.mmap(P)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => dev.createCmaMemFd()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    c.host.runAs(c.host.createProcess(), () => expect(() => f.read(0, 1)).toThrow(expect.objectContaining({ code: 'EACCES' })));
    const args = { label: 1, guestAddr: G, flags: 0, guestMemFd: f.fd, offset: 0n, size: MiB };
    expect(() => c.vm.mapCmaMem({ ...args, size: 0n })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // overflows_type(u64 + u64, u64) never fires: a wrapping range reaches mtree_insert_range → EINVAL.
    expect(() => c.vm.mapCmaMem({ ...args, guestAddr: 0xffff_ffff_ffff_f000n, size: 2n * P })).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(() => c.vm.mapCmaMem({ ...args, guestMemFd: 77 })).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => c.vm.mapCmaMem({ ...args, offset: 0x123n })).toThrow(expect.objectContaining({ code: 'EOVERFLOW' })); // offset unchecked for alignment, but past i_size
    expect(() => c.vm.mapCmaMem({ ...args, guestAddr: DTB_GPA })).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    // regression: the i_size check adds offset + size in u64, so a wrapping sum passes it (K7
    // gunyah_vm_binding_cma_alloc); the binding is made, and its pages lie past the block.
    c.vm.mapCmaMem({ ...args, guestAddr: G + 4n * MiB, offset: 0xffff_ffff_ffff_f000n, size: P });
    expect(c.vm.bindings().filter((b) => b.kind === 'cma').length).toBe(1);
    c.vm.mapCmaMem(args);
    f.close();
    dev.createCmaMemFd().close(); // the binding holds no file reference before start… the block went with the fd
  });

  it('no unbind: RECLAIM_REGION takes the pages back and keeps the binding; the next guest access faults the same page back in [K7 RECLAIM_REGION, docs/gunyah-ack.md §5.5]', () => {
    const c = new AckCell();
    c.add(G, 4n * P, 'share');
    c.write(G + P, Uint8Array.of(0x33));
    c.vm.reclaimRegion({ guestPhysAddr: G, size: 4n * P });
    expect(c.vm.providedFolios).toBe(1); // the DTB folio
    expect(c.vm.bindings().length).toBe(2);
    expect(c.read(G + P)).toEqual(Uint8Array.of(0x33));
  });

  it('reclaim of a touched lent page fails with EBUSY until the guest relinquishes it; the call is not all-or-nothing: other folios come back [K7 reclaim_range keeps going, K13 EBUSY]', () => {
    const c = new AckCell();
    c.add(G, 4n * P, 'lend');
    c.write(G, Uint8Array.of(1));
    c.write(G + 2n * P, Uint8Array.of(2));
    c.cpu.relinquish(G + 2n * P, 1);
    expect(() => c.vm.reclaimRegion({ guestPhysAddr: G, size: 4n * P })).toThrow(
      expect.objectContaining({ code: 'EBUSY', syscall: 'ioctl(GH_VM_RECLAIM_REGION)' }),
    );
    expect(c.vm.pageState(Number(G / P))).toBe('LENT_LOCKED'); // kept
    expect(c.vm.pageState(Number(G / P) + 2)).toBe('ABSENT'); // reclaimed despite the failure
    c.cpu.relinquish(G, 1);
    c.vm.reclaimRegion({ guestPhysAddr: G, size: 4n * P });
    expect(c.vm.providedFolios).toBe(1);
  });

  it('RECLAIM_REGION: unaligned EINVAL; size 0 is not rejected and reclaims nothing (gfn > 0); ENOTTY in generation B [K7, K5]', () => {
    const c = new AckCell();
    c.add(G, 4n * P, 'share');
    c.read(G);
    expect(() => c.vm.reclaimRegion({ guestPhysAddr: G + 1n, size: P })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    c.vm.reclaimRegion({ guestPhysAddr: G, size: 0n });
    expect(c.vm.providedFolios).toBe(2);
    const b = new AckCell({ generation: 'B' });
    expect(() => b.host.ioctl(b.vm.fd, ACK_IOCTL.GH_VM_RECLAIM_REGION, encodeAddressRange({ guestPhysAddr: G, size: P }))).toThrow(
      expect.objectContaining({ code: 'ENOTTY' }),
    );
  });

  it('64-bit edges: the EOVERFLOW check is dead code (overflows_type of a u64 sum), so a wrapping region is EINVAL from the maple tree and one ending exactly at 2^64 binds; a wrapping DTB config is recorded [K7 vm_mgr_mem.c, vm_mgr.c; code reading]', () => {
    const c = new AckCell();
    const m = c.host.current.mmap({ size: 2n * P });
    const top = (1n << 64n) - 2n * P;
    expect(() =>
      c.vm.setUserMemRegion({ label: 1, flags: RWX, guestPhysAddr: top + P, memorySize: 2n * P, userspaceAddr: m.address }),
    ).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    c.vm.setUserMemRegion({ label: 1, flags: RWX, guestPhysAddr: top, memorySize: 2n * P, userspaceAddr: m.address });
    expect(c.vm.bindingAt(Number(top / P) + 1)?.nr).toBe(2);
    c.vm.setDtbConfig({ guestPhysAddr: 0xffff_ffff_ffff_f000n, size: 2n * P });
  });

  it('MAP_MEM answers ENOTTY (in the header, not in the ioctl switch) and /dev/gunyah has no CREATE_GUEST_MEM [K7 vm_mgr.c default: -ENOTTY]', () => {
    const c = new AckCell();
    expect(() => c.host.ioctl(c.vm.fd, ACK_IOCTL.GUNYAH_VM_MAP_MEM, new Uint8Array(32))).toThrow(
      expect.objectContaining({ code: 'ENOTTY', errno: 25 }),
    );
    expect(() => c.host.ioctl(ACK_DEVICE_FD, V17_CREATE_GUEST_MEM, new Uint8Array(64))).toThrow(
      expect.objectContaining({ code: 'ENOTTY' }),
    );
  });

  it('guest faults: write to a binding without ALLOW_WRITE → -EPERM, unmapped host address → -EFAULT, a regular-file mapping → -EIO; an unbound GPA is an MMIO exit [K7 gunyah_demand_page, gunyah_vcpu.c]', () => {
    const c = new AckCell();
    c.add(G, P, 'share', { flags: F.GUNYAH_MEM_ALLOW_READ });
    c.add(G + 2n * MiB, P, 'share', { kind: 'file' });
    const gone = c.add(G + MiB, P, 'share');
    c.host.current.munmap(gone.address); // last, so no later mmap reuses the address
    const w = c.cpu.write(G, Uint8Array.of(1));
    expect(faultAttempt(w)).toBe(-1);
    // The run block, byte for byte (docs/gunyah-ack.md §3.3; K7 gunyah_handle_page_fault sets resume_action FAULT):
    // exit_reason @8 = 3, phys_addr @16, attempt @24 (s32), resume_action @28.
    const run = (w as { run: Uint8Array }).run;
    expect(Buffer.from(run.subarray(8, 12)).toString('hex')).toBe('03000000');
    expect(Buffer.from(run.subarray(16, 24)).toString('hex')).toBe('0000008000000000');
    expect(Buffer.from(run.subarray(24, 28)).toString('hex')).toBe('ffffffff');
    expect(run[28]).toBe(1);
    expect(faultAttempt(c.cpu.read(G + MiB, 1))).toBe(-14);
    expect(faultAttempt(c.cpu.read(G + 2n * MiB, 1))).toBe(-5);
    const r = c.cpu.read(0x9000_0000n, 4);
    expect(r).toMatchObject({ status: 'mmio', gpa: 0x9000_0000n, isWrite: false });
  });

  it('regression: the exit kind of a failed demand page follows the RM demand-paging ranges set at VM_START — in them PAGE_FAULT with attempt, outside them (a binding added after start; B: share bindings; C protected: share bindings) the VMMIO path exits MMIO [K7 gunyah_setup_demand_paging, gunyah_handle_mmio; K5 gunyah_gup_setup_demand_paging; classification: inference as in the v17 model]', () => {
    const c = new AckCell();
    c.add(G, P, 'share', { flags: F.GUNYAH_MEM_ALLOW_READ });
    c.vm.start();
    const late = c.add(G + MiB, P, 'share', { flags: F.GUNYAH_MEM_ALLOW_READ });
    expect(faultAttempt(c.cpu.write(G, Uint8Array.of(1)))).toBe(-1);
    expect(c.cpu.write(G + MiB, Uint8Array.of(1))).toMatchObject({ status: 'mmio', gpa: G + MiB, isWrite: true });
    expect(c.cpu.read(G + MiB, 1)).toMatchObject({ status: 'done', data: Uint8Array.of(0) }); // demand paging still works there
    expect(late.memory.pinsAt(0)).toBe(1);
    for (const [generation, dtbLend] of [
      ['B', false],
      ['C', true],
    ] as const) {
      const x = new AckCell({ generation, dtbLend });
      x.add(G, P, 'share', { flags: F.GUNYAH_MEM_ALLOW_READ });
      x.add(G + MiB, P, 'lend', { flags: F.GUNYAH_MEM_ALLOW_READ });
      expect(x.cpu.write(G, Uint8Array.of(1)), `${generation}: share binding`).toMatchObject({ status: 'mmio' });
      expect(faultAttempt(x.cpu.write(G + MiB, Uint8Array.of(1)))).toBe(-1);
    }
  });

  it("protected iff the DTB binding lends: a protected VM maps shared memory RW/R only, so an instruction fetch there exits -EPERM; an unprotected VM maps it executable [K7 gunyah_vm_set_protected, access table §5.2; the -EPERM exit is the model's stand-in for a re-fault loop]", () => {
    for (const dtbLend of [true, false]) {
      const c = new AckCell({ dtbLend });
      c.add(G, P, 'share');
      c.add(G + MiB, P, 'lend');
      c.vm.start();
      expect(c.vm.isProtected).toBe(dtbLend);
      const r = c.cpu.exec(G);
      if (dtbLend) expect(faultAttempt(r)).toBe(-1);
      else expect(r.status).toBe('done');
      expect(c.cpu.exec(G + MiB).status).toBe('done');
    }
  });

  it('VM_START: a DTB smaller than a page is EINVAL (gfn(size) = 0 pages); no binding at the DTB is ENOENT; a start that failed after LOAD leaves the VM un-startable (ENODEV) [K7 gunyah_vm_start, gunyah_vm_ensure_started]', () => {
    const host = openGunyahAck();
    const vm = host.createVm();
    const m = host.current.mmap({ size: P });
    vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: m.address });
    vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: 100n });
    expect(() => vm.start()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => vm.start()).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    const vm2 = host.createVm();
    vm2.setDtbConfig({ guestPhysAddr: 0x1000_0000n, size: P });
    expect(() => vm2.start()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('regression: VM_START without a binding at the DTB (ENOENT) fails before LOAD in C, so the VM stays startable — a retry after binding the DTB starts it; B fails after LOAD [K7 gunyah_vm_start: gunyah_vm_set_protected → err_dealloc_vmid, status stays NO_STATE; ensure_started retries from NO_STATE; K5 gunyah_vm_start]', () => {
    const host = openGunyahAck();
    const vm = host.createVm();
    vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
    expect(() => vm.start()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(vm.status).toBe('no-state');
    expect(vm.vmid).toBe(0); // the VMID went back (err_dealloc_vmid)
    const m = host.current.mmap({ size: P });
    vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: m.address });
    vm.start();
    expect(vm.status).toBe('running');
    vm.close();
    expect(host.stats()).toMatchObject({ vms: 0, parcels: 0, lockedPages: 0 });
    // Generation B (K5 gunyah_vm_start) has no set_protected step: the DTB parcel's ENOENT comes after LOAD.
    const b = openGunyahAck({ generation: 'B' });
    const vmB = b.createVm();
    vmB.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
    expect(() => vmB.start()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => vmB.start()).toThrow(expect.objectContaining({ code: 'ENODEV' }));
  });

  it('VM_START: a DTB running past its user-memory binding is not refused — the pin runs on into the host memory after the binding (EFAULT only where nothing is mapped) and the guest sees those pages [K7 gunyah_gup_share_parcel has no bounds check; parcel_to_paged enters the folios by gfn]', () => {
    const h = openGunyahAck();
    const m = h.current.mmap({ size: 2n * P });
    m.memory.write(P, Uint8Array.of(0xd7));
    const vm = h.createVm();
    vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: m.address });
    vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: 2n * P });
    vm.start();
    expect(h.current.mm.memlock.lockedPages).toBe(2);
    const r = vm.vcpu().read(DTB_GPA + P, 1);
    expect(r).toMatchObject({ status: 'done', data: Uint8Array.of(0xd7) });
    vm.close();
    expect(h.stats()).toMatchObject({ lockedPages: 0, stage2Folios: 0, parcels: 0 });
    // Nothing mapped after the binding's host range: the short pin is EFAULT and the start fails.
    const top = h.current.mm.mappings.at(-1)!;
    const vm2 = h.createVm();
    vm2.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: top.end - P });
    vm2.setDtbConfig({ guestPhysAddr: DTB_GPA, size: 2n * P });
    expect(() => vm2.start()).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    vm2.close();
    expect(h.stats()).toMatchObject({ lockedPages: 0, stage2Folios: 0, parcels: 0 });
  });

  it('regression: the DTB parcel keeps one pin and one RLIMIT_MEMLOCK page per folio — a two-page DTB in one THP folio is charged 1 page, and teardown returns it to 0 [K7 gunyah_gup_share_parcel drops the non-head pins, __gunyah_vm_reclaim_folio_locked unpins and uncharges one page]', () => {
    const h = openGunyahAck();
    const m = h.current.mmap({ size: 2n * MiB, hugePages: true });
    const vm = h.createVm();
    vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: 2n * MiB, userspaceAddr: m.address });
    vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: 2n * P });
    vm.start();
    expect(h.current.mm.memlock.lockedPages).toBe(1);
    expect(m.memory.pinsAt(0)).toBe(1); // pins count per folio
    expect(vm.vcpu().read(DTB_GPA + 5n * P, 1).status).toBe('done'); // the whole folio is in the guest's stage 2
    expect(h.current.mm.memlock.lockedPages).toBe(1);
    vm.close();
    expect(h.stats()).toMatchObject({ lockedPages: 0, stage2Folios: 0, parcels: 0 });
    expect(m.memory.pinsAt(0)).toBe(0);
  });

  it('CHECK_EXTENSION: GH_CAP_VCPU_TIMER_WAKEUP (0) → 1, anything else → 0; ENOTTY in A and B [K7 @2f10437]', () => {
    const c = new AckCell();
    expect(c.host.ioctl(c.vm.fd, ACK_IOCTL.GH_VM_CHECK_EXTENSION, 0)).toBe(1);
    expect(c.vm.checkExtension(1)).toBe(0);
    expect(c.vm.checkExtension(0xffff_ffffn)).toBe(0);
    for (const generation of ['A', 'B'] as const) {
      const x = new AckCell({ generation });
      expect(() => x.host.ioctl(x.vm.fd, ACK_IOCTL.GH_VM_CHECK_EXTENSION, 0)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    }
  });

  it('raw ioctls decode the 32-byte region and 40-byte CMA structs; a short argument is EFAULT [K7; docs/gunyah-ack.md §3]', () => {
    const c = new AckCell({ cmaPools: { vm: MiB } });
    const m = c.host.current.mmap({ size: 2n * P });
    expect(
      c.host.ioctl(
        c.vm.fd,
        ACK_IOCTL.GH_VM_ANDROID_LEND_USER_MEM,
        encodeUserMemoryRegion({ label: 3, flags: RW, guestPhysAddr: G, memorySize: 2n * P, userspaceAddr: m.address }),
      ),
    ).toBe(0);
    expect(c.vm.bindingAt(Number(G / P))).toMatchObject({ share: 'lend', label: 3, flags: 3, nr: 2 });
    expect(() => c.host.ioctl(c.vm.fd, ACK_IOCTL.GH_VM_SET_USER_MEM_REGION, new Uint8Array(31))).toThrow(
      expect.objectContaining({ code: 'EFAULT' }),
    );
    const fdNo = c.host.ioctl(c.host.cmaDevices.get('vm')!.fd, ACK_IOCTL.GH_ANDROID_CREATE_CMA_MEM_FD);
    c.host.cmaFd(fdNo)!.mmap(MiB);
    c.host.ioctl(
      c.vm.fd,
      ACK_IOCTL.GH_VM_ANDROID_MAP_CMA_MEM,
      encodeMapCmaMemArgs({ label: 4, guestAddr: G + MiB, flags: 0x10 | RW, guestMemFd: fdNo, offset: 0n, size: MiB }),
    );
    expect(c.vm.bindingAt(Number((G + MiB) / P))).toMatchObject({ kind: 'cma', share: 'lend' });
    expect(() => c.host.ioctl(c.vm.fd, ACK_IOCTL.GH_VM_ADD_FUNCTION, new Uint8Array(16))).toThrow(
      expect.objectContaining({ code: 'ENOSYS' }),
    );
    expect(() => c.host.ioctl(ACK_DEVICE_FD, ACK_IOCTL.GH_CREATE_VM, 1)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('teardown reclaims, resets, unpins and unaccounts everything; the host memory keeps its data and nothing leaks [K7 _gunyah_vm_put]', () => {
    const c = new AckCell();
    const m = c.add(G, 2n * MiB, 'lend', { hugePages: true });
    c.write(G + 7n * P, Uint8Array.of(0x77));
    c.vm.close();
    expect(c.host.stats()).toMatchObject({ vms: 0, bindings: 0, providedFolios: 0, stage2Folios: 0, parcels: 0, lockedPages: 0 });
    expect(m.memory.read(7n * P, 1)).toEqual(Uint8Array.of(0x77));
    for (const x of [...c.host.current.mm.mappings]) c.host.current.munmap(x.start);
    expect(c.host.stats().folioBytes).toBe(0n);
  });
});

describe('generation A (android14-6.1): pin at ioctl, unique labels, one parcel per region at start, no demand paging [K4, K1]', () => {
  it('pins and charges the whole region at the ioctl; a short pin is EFAULT and leaves nothing', () => {
    const c = new AckCell({ generation: 'A' });
    const m = c.add(G, 4n * P, 'lend');
    expect([0, 1, 2, 3].map((i) => m.memory.pinsAt(i))).toEqual([1, 1, 1, 1]);
    expect(c.host.current.mm.memlock.lockedPages).toBe(5);
    // The highest mapping (the DTB page) has nothing mapped above it: a two-page region from there pins one page.
    const top = c.host.current.mm.mappings.at(-1)!;
    expect(top.memory.pinsAt(0)).toBe(1);
    expect(() =>
      c.vm.setUserMemRegion({ label: 50, flags: RWX, guestPhysAddr: G + MiB, memorySize: 2n * P, userspaceAddr: top.start }),
    ).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(top.memory.pinsAt(0)).toBe(1);
    expect(c.host.current.mm.memlock.lockedPages).toBe(5);
  });

  it('regression: two regions over the same host pages cannot both become parcels — start fails EINVAL and teardown still returns every pin and charge [one owner per page: inference ACK_FOLIO_HELD_ERRNO; K4 parcels at start]', () => {
    const c = new AckCell({ generation: 'A' });
    const m = c.add(G, 2n * P, 'lend');
    c.vm.setUserMemRegion({ label: 9, flags: RWX, guestPhysAddr: G + MiB, memorySize: 2n * P, userspaceAddr: m.address });
    expect(() => c.vm.start()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(c.host.stats().stage2Folios).toBe(0);
    expect(c.host.current.read(m.address, 1)).toEqual(Uint8Array.of(0));
    c.vm.close();
    expect(c.host.stats()).toMatchObject({ parcels: 0, lockedPages: 0, stage2Folios: 0 });
  });

  it('labels are unique per VM (EEXIST)', () => {
    const c = new AckCell({ generation: 'A' });
    const m = c.host.current.mmap({ size: P });
    expect(() => c.vm.setUserMemRegion({ label: 0, flags: RWX, guestPhysAddr: G, memorySize: P, userspaceAddr: m.address })).toThrow(
      expect.objectContaining({ code: 'EEXIST' }),
    );
  });

  it('VM_START lends or shares every region as one parcel; lent regions leave the host stage 2; no PAGE_FAULT exit: unbound or late regions are MMIO', () => {
    const c = new AckCell({ generation: 'A' });
    const lent = c.add(G, 4n * P, 'lend');
    c.add(G + MiB, 4n * P, 'share');
    lent.memory.write(0, Uint8Array.of(0x41)); // before start the host may write it (the boot image)
    c.vm.start();
    expect(c.host.rm.all().map((p) => p.kind)).toEqual(['share', 'lend', 'share']);
    expect(c.read(G)).toEqual(Uint8Array.of(0x41));
    sigbus(() => lent.memory.read(0, 1));
    const late = c.add(G + 2n * MiB, P, 'share'); // pinned and recorded, never sent to the RM
    expect(late.memory.pinsAt(0)).toBe(1);
    expect(c.cpu.read(G + 2n * MiB, 1).status).toBe('mmio');
    expect(c.cpu.read(0x9000_0000n, 1).status).toBe('mmio');
    c.vm.close();
    expect(c.host.stats()).toMatchObject({ parcels: 0, stage2Folios: 0, lockedPages: 0 });
  });

  it('no region overlapping the DTB is EINVAL at start; TENTATIVE_UAPI answers 0', () => {
    const host = openGunyahAck({ generation: 'A' });
    expect(host.ioctl(ACK_DEVICE_FD, ACK_IOCTL.GH_ANDROID_TENTATIVE_UAPI)).toBe(0);
    const vm = host.createVm();
    vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
    expect(() => vm.start()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => openGunyahAck({ generation: 'C' }).tentativeUapi()).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
  });
});

describe('generation B (6.6 line): C without 0x13–0x17 [K5, K6 ack_bindings.rs, K9]', () => {
  it('demand pages like C, but RECLAIM_REGION, the CMA ioctls and CHECK_EXTENSION answer ENOTTY; no CMA pool device exists', () => {
    const c = new AckCell({ generation: 'B', cmaPools: { vm: MiB } });
    const m = c.add(G, 4n * P, 'lend');
    c.write(G + P, Uint8Array.of(1));
    expect(m.memory.pinsAt(1)).toBe(1);
    expect(c.cpu.read(G + MiB, 1).status).toBe('mmio');
    expect(c.host.cmaDevices.size).toBe(0);
    for (const [req, arg] of [
      [ACK_IOCTL.GH_VM_RECLAIM_REGION, encodeAddressRange({ guestPhysAddr: G, size: P })],
      [
        ACK_IOCTL.GH_VM_ANDROID_MAP_CMA_MEM,
        encodeMapCmaMemArgs({ label: 1, guestAddr: G + MiB, flags: 0, guestMemFd: 3, offset: 0n, size: P }),
      ],
      [ACK_IOCTL.GH_VM_CHECK_EXTENSION, 0],
    ] as const) {
      expect(() => c.host.ioctl(c.vm.fd, req, arg)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    }
    expect(() => c.vm.reclaimRegion({ guestPhysAddr: G, size: P })).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
  });
});
