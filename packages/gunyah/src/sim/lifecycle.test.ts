/**
 * The v17 VM lifecycle around memory, row by row, each test naming its source: the v17 patches
 * (Message-ID `20240222-gunyah-v17-<n>-1e9da6763d38@quicinc.com`, cited as "v17 n/35") and
 * Qualcomm's test VMM (`quic/gunyah-test-vmm`). Driven through the raw ioctls where the row is
 * about the uAPI.
 */
import { describe, expect, it } from 'vitest';
import {
  BOOT_CONTEXT,
  GUNYAH_FN,
  GUNYAH_IOCTL,
  GUNYAH_VCPU_EXIT,
  GUNYAH_VCPU_RESUME,
  GUNYAH_VM_STATUS,
  REG_SET,
  RM_VM_EXIT_TYPE,
  SIZEOF_FN_VCPU_ARG,
  VCPU_RUN,
  bootContextReg,
  decodeVcpuRunMmio,
  decodeVcpuRunPageFault,
  decodeVcpuRunStatus,
  encodeBootContext,
  encodeDtbConfig,
  encodeFnDesc,
  encodeFnVcpuArg,
  encodeMapMemArgs,
  setMmioResume,
  setPageFaultResumeAction,
  MAP_FLAGS_V17 as F,
} from '../uapi/index.js';
import { openGunyah, type SimDevice } from './device.js';
import { CMD_PORT, ERR_PORT, TestVmm, command, holdingCellGuest } from './test-vmm.js';
import { DTB_GPA, HoldingCell, LEND_RW, SHARE_RW, le64, u64le } from './test-helpers.js';
import type { SimVm } from './vm.js';

const code = (c: string, syscall?: string) =>
  expect.objectContaining(syscall ? { code: c, syscall, backend: 'gunyah-sim' } : { code: c, backend: 'gunyah-sim' });
const RUN = 'ioctl(GUNYAH_VCPU_RUN)';
const START = 'ioctl(GUNYAH_VM_START)';
const IMAGE = 0x8000_0000n;
const RWX_LEND = F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_RWX;

/**
 * The holding cell's VM as `HoldingCell::new_with_options` builds it: one LEND RWX binding at
 * 0x8000_0000 holding [binary][dtb][stack], the DTB config pointing inside it, boot PC and SP.
 */
function holdingCellVm(gh: SimDevice = openGunyah({ driver: 'sim' }), opts: { dtbShare?: boolean; dtbSize?: bigint } = {}) {
  const vmFd = gh.ioctl(3, GUNYAH_IOCTL.GUNYAH_CREATE_VM);
  const vm = gh.vm(vmFd)!;
  const mem = gh.createGuestMem({ flags: 0n, size: 4n * 4096n });
  const flags = opts.dtbShare ? F.GUNYAH_MEM_FORCE_SHARE | F.GUNYAH_MEM_ALLOW_RWX : RWX_LEND;
  gh.ioctl(
    vmFd,
    GUNYAH_IOCTL.GUNYAH_VM_MAP_MEM,
    encodeMapMemArgs({ guestAddr: IMAGE, flags, guestMemFd: mem.fd, offset: 0n, size: 4n * 4096n }),
  );
  const vmm = new TestVmm(gh, vmFd);
  const dtbStart = IMAGE + 4096n; // binary rounded up to one page, then the DTB
  // write_slice of the binary and the DTB before start: mmap, write, munmap.
  const m = mem.mmap({ offset: 0, length: 2 * 4096 });
  m.write(0, u64le(0xd503_201f_d503_201fn)); // "the binary"
  m.write(4096, Uint8Array.of(0xd0, 0x0d, 0xfe, 0xed)); // FDT magic
  m.unmap();
  gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_SET_DTB_CONFIG, encodeDtbConfig({ guestPhysAddr: dtbStart, size: opts.dtbSize ?? 4096n }));
  gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_SET_BOOT_CONTEXT, encodeBootContext({ reg: bootContextReg(REG_SET.PC, 0), value: IMAGE }));
  gh.ioctl(
    vmFd,
    GUNYAH_IOCTL.GUNYAH_VM_SET_BOOT_CONTEXT,
    encodeBootContext({ reg: bootContextReg(REG_SET.SP, 1), value: dtbStart + 8192n }),
  );
  gh.vcpu(vmm.vcpuFd)!.setGuest(holdingCellGuest());
  return { gh, vmFd, vm, mem, vmm, dtbStart };
}

describe('v17 lifecycle: VM_START and vCPU run', () => {
  it('a vCPU run before VM_START is ENODEV and does not start the VM [v17 15/35 gunyah_vcpu_run: "if (!vcpu->rsc) ret = -ENODEV"; the resource comes from gunyah_vm_start; v17 10/35 commit text]', () => {
    const { gh, vmFd, vm, vmm } = holdingCellVm();
    expect(() => gh.ioctl(vmm.vcpuFd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('ENODEV', RUN));
    expect(() => vm.vcpu(0).read(IMAGE, 8)).toThrow(code('ENODEV', RUN));
    expect(vm.status).toBe('no-state');
    expect(vm.vmid).toBe(0);
    expect(gh.stats()).toMatchObject({ parcels: 0, providedFolios: 0 });
    // The explicit start gives the vCPU its resource; then it runs (first exit: the command port).
    expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toBe(0);
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(decodeVcpuRunMmio(vmm.run)).toMatchObject({ physAddr: CMD_PORT, isWrite: 0, len: 8 }); // basic.rs holding_cell_reads
  });

  it('VM_START while running returns 0 (the test VMM starts before every run_test) [v17 10/35 gunyah_vm_ensure_started]', () => {
    const { gh, vmFd, vmm } = holdingCellVm();
    for (let i = 0; i < 3; i++) expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toBe(0);
    expect(vmm.runImmediately(0, [])).toBe(0n); // basic.rs ok
    expect(vmm.runImmediately(1, [])).toBe((1n << 64n) - 1n); // basic.rs nok
  });

  it('VM_START after a failed start is ENODEV and the VM stays in LOAD [v17 10/35: gunyah_vm_start sets LOAD after VMID allocation, ensure_started starts only from NO_STATE, else -ENODEV]', () => {
    const { gh, vmFd, vm } = holdingCellVm(undefined, { dtbShare: true });
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('ENOMEM', START));
    expect(vm.status).toBe('load');
    expect(vm.vmid).toBeGreaterThan(0);
    // Fixing the cause does not help: this VM cannot be started again.
    const mem = gh.createGuestMem({ flags: 0n, size: 4096n });
    vm.mapMem({ guestAddr: 0x1_0000_0000n, flags: LEND_RW, guestMemFd: mem.fd, offset: 0, size: 4096 });
    vm.setDtbConfig({ guestPhysAddr: 0x1_0000_0000n, size: 4096n });
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('ENODEV', START));
    expect(vm.status).toBe('load');
    // Teardown still frees the VMID and leaves no parcel.
    vm.close();
    expect(gh.stats()).toMatchObject({ vms: 0, parcels: 0 });
  });

  it('a failure after VM_INIT leaves INIT_FAILED, after the RM VM_START leaves READY; a vCPU of the READY VM gets a STATUS exit CRASHED [v17 10/35 gunyah_vm_start; 15/35 remap_vm_status]', () => {
    const a = holdingCellVm();
    a.gh.injectFault('vm-init');
    expect(() => a.gh.ioctl(a.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('EINVAL', START));
    expect(a.vm.status).toBe('init-failed');
    expect(() => a.gh.ioctl(a.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('ENODEV', START));
    expect(() => a.vmm.runOnce()).toThrow(code('ENODEV', RUN)); // resources come after VM_INIT
    const b = holdingCellVm();
    b.gh.injectFault('vm-start');
    expect(() => b.gh.ioctl(b.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('EINVAL', START));
    expect(b.vm.status).toBe('ready');
    expect(b.gh.stats().providedFolios).toBe(0); // parcel_to_paged rolled back
    expect(b.vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.STATUS);
    expect(decodeVcpuRunStatus(b.vmm.run)).toMatchObject({ status: GUNYAH_VM_STATUS.CRASHED });
  });
});

describe('v17 lifecycle: the DTB', () => {
  it('a DTB smaller than one page is EINVAL at VM_START; the size is truncated to whole pages [v17 26/35 "parcel_pages = size >> PAGE_SHIFT"; 25/35 gunyah_gmem_share_parcel "if (!*nr) return -EINVAL"]', () => {
    for (const size of [1n, 100n, 4095n]) {
      const { gh, vmFd, vm } = holdingCellVm(undefined, { dtbSize: size });
      expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('EINVAL', START));
      expect(vm.status).toBe('load');
    }
    const { gh, vmFd } = holdingCellVm(undefined, { dtbSize: 4097n });
    expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toBe(0);
    expect(gh.rm.all()[0]!.sgl).toEqual([{ ipa: IMAGE + 4096n, size: 4096n }]); // one page, not two
  });

  it('a DTB in a share binding fails with ENOMEM; the same binding lent works [v17 25/35: n_acl_entries is set only "if (lend)", then "if (!parcel->n_acl_entries) ret = -ENOMEM"]', () => {
    const shared = holdingCellVm(undefined, { dtbShare: true });
    expect(() => shared.gh.ioctl(shared.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('ENOMEM', START));
    expect(shared.gh.stats().parcels).toBe(0);
    const lent = holdingCellVm();
    expect(lent.gh.ioctl(lent.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toBe(0);
    expect(lent.gh.rm.all()[0]).toMatchObject({ kind: 'lend', acl: [{ vmid: lent.vm.vmid, rights: 7 }] });
  });

  it("Qualcomm's test VMM sequence: image and DTB in one LEND binding, DTB config inside it, boot PC/SP, start, commands over MMIO [gunyah-test-vmm holding_cell/mod.rs new_with_options + run_test; basic.rs read_addr, loopback]", () => {
    const { gh, vmFd, vm, vmm, dtbStart } = holdingCellVm();
    expect(vm.bootRegisters.get(bootContextReg(REG_SET.PC, 0))).toBe(IMAGE);
    expect(vm.bootRegisters.get(bootContextReg(REG_SET.SP, 1))).toBe(dtbStart + 8192n);
    // read_addr of the first word of the binary: demand-paged from the lend binding.
    expect(vmm.runImmediately(2, [IMAGE])).toBe(0xd503_201f_d503_201fn);
    // The DTB page went to the RM as one lent parcel, which the VM accepted.
    expect(gh.rm.all()).toEqual([expect.objectContaining({ kind: 'lend', state: 'SHARED', sgl: [{ ipa: dtbStart, size: 4096n }] })]);
    expect(vmm.runImmediately(4, [0x1234_5678n])).toBe(0x1234_5678n);
    // write_addr then read_addr of the stack page.
    expect(vmm.runImmediately(3, [dtbStart + 4096n, 0xf00dn])).toBe(0n);
    expect(vmm.runImmediately(2, [dtbStart + 4096n])).toBe(0xf00dn);
    // The boot context is frozen once the VM left NO_STATE [v17 30/35].
    expect(() =>
      gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_SET_BOOT_CONTEXT, encodeBootContext({ reg: bootContextReg(REG_SET.PC, 0), value: 0n })),
    ).toThrow(code('EINVAL'));
  });
});

describe('v17 lifecycle: MMIO and PAGE_FAULT exits', () => {
  it('an access to an unbound, non-lent address exits as MMIO (not PAGE_FAULT -ENOENT); HANDLED completes it with mmio.data [v17 28/35 gunyah_handle_mmio: demand paging first, else GUNYAH_VCPU_EXIT_MMIO with resume HANDLED; 15/35 gunyah_handle_mmio_resume]', () => {
    const { vmm } = holdingCellVm();
    // The command port (0x6000) is such an address: every command goes through it.
    vmm.gh.ioctl(vmm.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START);
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(decodeVcpuRunMmio(vmm.run)).toEqual({
      exitReason: 1,
      physAddr: CMD_PORT,
      data: expect.any(Uint8Array),
      len: 8,
      isWrite: 0,
      resumeAction: GUNYAH_VCPU_RESUME.HANDLED,
    });
    vmm.provideRead(CMD_PORT, command(4, 1));
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    vmm.provideRead(CMD_PORT, u64le(77n));
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(decodeVcpuRunMmio(vmm.run)).toMatchObject({ physAddr: CMD_PORT, isWrite: 1, len: 8, data: u64le(77n) });
    // The same through the shortcut API: a read of an unbound address is an MMIO exit too.
    const hc = new HoldingCell();
    const r = hc.cpu.read(0x5000_0000n, 8);
    expect(r).toMatchObject({ status: 'mmio', exit: { physAddr: 0x5000_0000n, len: 8, isWrite: 0 } });
    expect(r.status === 'mmio' && r.resume('handled', u64le(0xabcn))).toEqual({ status: 'done', data: u64le(0xabcn) });
  });

  it("partial_unmap_memory1/2: once the VMM unmaps and punches part of a share binding, the guest's access there is an MMIO exit the VMM serves (read_io); the rest keeps its data [gunyah-test-vmm holding_cell/memory.rs; v17 28/35]", () => {
    for (const [cut, kept] of [
      [0n, 1n],
      [1n, 0n],
    ] as const) {
      const { gh, vm, vmm } = holdingCellVm();
      const ADDRESS = 0x0008_0000n;
      const mem = gh.createGuestMem({ flags: 0n, size: 5n * 4096n });
      vm.mapMem({ guestAddr: ADDRESS, flags: SHARE_RW, guestMemFd: mem.fd, offset: 0, size: 5 * 4096 });
      const w = mem.mmap({ offset: 0, length: 2 * 4096 });
      w.write(0, u64le(1n));
      w.write(4096, u64le(2n));
      w.unmap();
      expect(vmm.runImmediately(2, [ADDRESS])).toBe(1n);
      expect(vmm.runImmediately(2, [ADDRESS + 4096n])).toBe(2n);
      // The VMM's punch_hole: UNMAP the piece (head, or the tail from page 1 on), punch it.
      const off = cut * 4096n;
      const size = cut === 0n ? 4096n : 4n * 4096n;
      vm.mapMem({ guestAddr: ADDRESS + off, flags: SHARE_RW | F.GUNYAH_MEM_UNMAP, guestMemFd: mem.fd, offset: off, size });
      mem.fallocate(0x3, off, size);
      expect(vmm.readIo(ADDRESS + off, 0xf00dn)).toBe(0xf00dn);
      expect(vmm.runImmediately(2, [ADDRESS + kept * 4096n])).toBe(kept + 1n);
    }
  });

  it('MMIO FAULT injects an abort into the guest; RETRY demand-pages and re-executes (after a binding was added); another resume_action is EINVAL and changes nothing [v17 15/35 + 28/35 gunyah_handle_mmio_resume]', () => {
    const { gh, vmFd, vmm } = holdingCellVm();
    gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START);
    // read_addr of an unbound address: the guest's own read exits as MMIO at that address.
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    vmm.provideRead(CMD_PORT, command(2, 1));
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    vmm.provideRead(CMD_PORT, u64le(0x9000_0000n));
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(decodeVcpuRunMmio(vmm.run)).toMatchObject({ physAddr: 0x9000_0000n, isWrite: 0 });
    // A resume_action outside 0..2 is EINVAL and leaves the exit pending.
    setMmioResume(vmm.run, 7);
    expect(() => gh.ioctl(vmm.vcpuFd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('EINVAL', RUN));
    // FAULT: the guest takes a synchronous abort and reports ESR, then FAR, on its error port.
    setMmioResume(vmm.run, GUNYAH_VCPU_RESUME.FAULT);
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(decodeVcpuRunMmio(vmm.run)).toMatchObject({ physAddr: ERR_PORT, isWrite: 1 });
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(le64(decodeVcpuRunMmio(vmm.run).data)).toBe(0x9000_0000n);
    // RETRY after binding memory there: the access is demand-paged and completes without an exit.
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO); // next command
    vmm.provideRead(CMD_PORT, command(2, 1));
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    vmm.provideRead(CMD_PORT, u64le(0x9000_0000n));
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    const mem = gh.createGuestMem({ flags: 0n, size: 4096n });
    const w = mem.mmap({ offset: 0, length: 4096 });
    w.write(0, u64le(0x5eedn));
    w.unmap();
    gh.vm(vmFd)!.mapMem({ guestAddr: 0x9000_0000n, flags: SHARE_RW, guestMemFd: mem.fd, offset: 0, size: 4096 });
    setMmioResume(vmm.run, GUNYAH_VCPU_RESUME.RETRY);
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    expect(decodeVcpuRunMmio(vmm.run)).toMatchObject({ physAddr: CMD_PORT, isWrite: 1, data: u64le(0x5eedn) });
  });

  it('a lent range of the start is demand-paged: its unresolvable faults are PAGE_FAULT exits with attempt; a share binding or an unbound address gives MMIO [v17 28/35 gunyah_gmem_setup_demand_paging lists the LEND bindings; 20/35 maps lend PRIVATE, share VMMIO]', () => {
    const hc = new HoldingCell();
    hc.addMemory(0xa000_0000n, 4096n, 'lend', false, F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ);
    hc.addMemory(0xb000_0000n, 4096n, 'share', false, F.GUNYAH_MEM_FORCE_SHARE | F.GUNYAH_MEM_ALLOW_READ);
    expect(hc.cpu.write(0xa000_0000n, u64le(1n))).toMatchObject({
      status: 'page-fault',
      exit: { exitReason: 3, attempt: -1, physAddr: 0xa000_0000n },
    });
    expect(hc.cpu.write(0xb000_0000n, u64le(1n))).toMatchObject({
      status: 'mmio',
      exit: { exitReason: 1, isWrite: 1, physAddr: 0xb000_0000n, data: u64le(1n) },
    });
    // A lend binding added after the start is not in the RM's demand-paging list: VMMIO path.
    hc.addMemory(0xc000_0000n, 4096n, 'lend', false, F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ);
    expect(hc.cpu.read(0xc000_0000n, 8).status).toBe('done'); // demand-paged through the VMMIO path
    expect(hc.cpu.write(0xc000_0000n, u64le(1n))).toMatchObject({ status: 'mmio', exit: { isWrite: 1 } });
  });

  it('PAGE_FAULT: v17 never reads resume_action back — any value, even an invalid one, re-executes the access [v17 15/35: gunyah_handle_page_fault sets the exit but not vcpu->state, so the next run starts from READY]', () => {
    const hc = new HoldingCell();
    hc.addMemory(0xa000_0000n, 4096n, 'lend', false, F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ);
    hc.vm.start();
    const v0 = hc.vm.vcpu(0);
    const r = v0.write(0xa000_0000n, u64le(9n));
    expect(r.status).toBe('page-fault');
    if (r.status !== 'page-fault') return;
    for (const action of [GUNYAH_VCPU_RESUME.HANDLED, GUNYAH_VCPU_RESUME.FAULT, GUNYAH_VCPU_RESUME.RETRY, 7]) {
      setPageFaultResumeAction(r.run, action);
      expect(hc.gh.ioctl(v0.fd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toBe(0);
      expect(decodeVcpuRunPageFault(r.run)).toMatchObject({
        exitReason: 3,
        attempt: -1,
        physAddr: 0xa000_0000n,
        resumeAction: GUNYAH_VCPU_RESUME.FAULT,
      });
    }
  });

  it("PAGE_FAULT with pageFaultResume 'proposed': HANDLED skips, FAULT aborts, RETRY re-executes, other values EINVAL [the header's documented meaning, v17 15/35 enum gunyah_vcpu_resume_action]", () => {
    const hc = new HoldingCell(openGunyah({ driver: 'sim', pageFaultResume: 'proposed' }));
    const mem = hc.addMemory(0xa000_0000n, 4096n, 'lend');
    const m = mem.mmap({ offset: 0, length: 4096 }); // lend-safety: the guest's fault gets -EPERM
    const fault = () => {
      const r = hc.cpu.write(0xa000_0000n, u64le(9n));
      expect(r).toMatchObject({ status: 'page-fault', exit: { attempt: -1 } });
      return r as Extract<typeof r, { status: 'page-fault' }>;
    };
    expect(fault().resume('handled')).toEqual({ status: 'handled' });
    expect(fault().resume('fault')).toEqual({ status: 'guest-abort', gpa: 0xa000_0000n, attempt: -1 });
    expect(fault().resume('retry')).toMatchObject({ status: 'page-fault' });
    const r = fault();
    setPageFaultResumeAction(r.run, 7);
    expect(() => hc.gh.ioctl(hc.vm.vcpu(0).fd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('EINVAL', RUN));
    m.unmap();
    expect(r.resume('retry')).toEqual({ status: 'done' });
    expect(hc.readAddr(0xa000_0000n)).toBe(9n);
  });

  it('immediate_exit makes RUN return EINTR before the guest runs [v17 15/35 "if (vcpu->vcpu_run->immediate_exit) ret = -EINTR"]', () => {
    const { gh, vmFd, vmm } = holdingCellVm();
    gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START);
    vmm.run[VCPU_RUN.immediateExit] = 1;
    expect(() => gh.ioctl(vmm.vcpuFd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('EINTR', RUN));
    vmm.run[VCPU_RUN.immediateExit] = 0;
    expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
  });
});

describe('v17 lifecycle: the VM exits', () => {
  it('after PSCI SYSTEM_OFF the vCPU exits with STATUS EXITED and the RM exit info, on every later run; VM_START is ENODEV [v17 15/35 gunyah_vcpu_check_system, remap_vm_status; 10/35 VM_EXITED notification; gunyah-test-vmm mod.rs power_off, multicore.rs unclaimed_vcpu_exit]', () => {
    const { gh, vmFd, vm, vmm } = holdingCellVm();
    expect(vmm.runImmediately(0, [])).toBe(0n);
    // A vCPU created while the VM runs is accepted (unclaimed_vcpu_exit) but has no resource.
    const late = new TestVmm(gh, vmFd, 1);
    expect(() => late.runOnce()).toThrow(code('ENODEV', RUN));
    // power_off: the smccc command with PSCI SYSTEM_OFF; run_immediately then fails (no MMIO exit).
    expect(() => vmm.runImmediately(6, [0x8400_0008n, 0n, 0n, 0n, 0n])).toThrow();
    expect(vm.status).toBe('exited');
    for (let i = 0; i < 2; i++) {
      expect(vmm.runOnce()).toBe(GUNYAH_VCPU_EXIT.STATUS);
      expect(decodeVcpuRunStatus(vmm.run)).toMatchObject({
        status: GUNYAH_VM_STATUS.EXITED,
        exitInfo: { type: RM_VM_EXIT_TYPE.SYSTEM_OFF, reasonSize: 0 },
      });
    }
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('ENODEV', START));
    // The shortcut API reports the same exit.
    expect(vm.vcpu(0).read(IMAGE, 8)).toMatchObject({ status: 'vm-exited', exit: { status: GUNYAH_VM_STATUS.EXITED } });
  });
});

describe('v17 lifecycle: VM functions, boot context, vCPU fd (raw ioctl)', () => {
  const vcpuDesc = (gh: SimDevice, id: number, argSize = SIZEOF_FN_VCPU_ARG, type: number = GUNYAH_FN.VCPU) =>
    encodeFnDesc({ type, argSize, arg: gh.userMem.put(encodeFnVcpuArg(id)) });

  it('ADD_FUNCTION: arg_size > 256 EINVAL, unreadable arg EFAULT, unknown type ENOENT, vCPU arg_size ≠ 4 EINVAL, duplicate id EEXIST; returns a vCPU fd [v17 13/35 gunyah_vm_add_function_instance, gunyah_vm_get_function; 15/35 gunyah_vcpu_bind; gunyah_vm_add_resource_ticket]', () => {
    const gh = openGunyah({ driver: 'sim' });
    const vmFd = gh.ioctl(3, GUNYAH_IOCTL.GUNYAH_CREATE_VM);
    const S = 'ioctl(GUNYAH_VM_ADD_FUNCTION)';
    const add = (d: Uint8Array) => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_ADD_FUNCTION, d);
    expect(() => add(new Uint8Array(8))).toThrow(code('EFAULT', S));
    expect(() => add(vcpuDesc(gh, 0, 257))).toThrow(code('EINVAL', S));
    expect(() => add(encodeFnDesc({ type: GUNYAH_FN.VCPU, argSize: 4, arg: 0x1234n }))).toThrow(code('EFAULT', S));
    expect(() => add(vcpuDesc(gh, 0, 4, 99))).toThrow(code('ENOENT', S));
    expect(() => add(vcpuDesc(gh, 0, 4, GUNYAH_FN.IRQFD))).toThrow(code('ENOENT', S)); // not modelled: as if its module were absent
    expect(() => add(vcpuDesc(gh, 0, 8))).toThrow(code('EINVAL', S));
    const fd = add(vcpuDesc(gh, 0));
    expect(fd).toBeGreaterThan(vmFd);
    expect(() => add(vcpuDesc(gh, 0))).toThrow(code('EEXIST', S));
    expect(add(vcpuDesc(gh, 1))).toBe(fd + 1);
    expect(gh.stats().openFds).toBe(3);
  });

  it('VCPU_MMAP_SIZE is PAGE_SIZE; the mmapped block starts with exit_reason UNKNOWN; other ioctls on a vCPU fd are ENOTTY [v17 15/35 gunyah_vcpu_ioctl; gunyah-test-vmm gunyah/src/vcpu.rs mmap test]', () => {
    const gh = openGunyah({ driver: 'sim' });
    const vmFd = gh.ioctl(3, GUNYAH_IOCTL.GUNYAH_CREATE_VM);
    const fd = gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_ADD_FUNCTION, vcpuDesc(gh, 0));
    expect(gh.ioctl(fd, GUNYAH_IOCTL.GUNYAH_VCPU_MMAP_SIZE)).toBe(4096);
    const run = gh.mmapVcpu(fd);
    expect(run.length).toBe(4096);
    expect(new DataView(run.buffer).getUint32(VCPU_RUN.exitReason, true)).toBe(GUNYAH_VCPU_EXIT.UNKNOWN);
    expect(() => gh.ioctl(fd, GUNYAH_IOCTL.GUNYAH_VM_START)).toThrow(code('ENOTTY'));
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('ENOTTY'));
    expect(() => gh.mmapVcpu(vmFd)).toThrow(code('EBADF'));
  });

  it('REMOVE_FUNCTION: removes the matching vCPU (its fd then answers ENODEV to RUN), ENOENT when none matches; the id can be added again and gets the resource back [v17 13/35 gunyah_vm_rm_function_instance; 15/35 gunyah_vcpu_compare, gunyah_vcpu_unbind]', () => {
    const { gh, vmFd, vmm } = holdingCellVm();
    const S = 'ioctl(GUNYAH_VM_REMOVE_FUNCTION)';
    gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_START);
    expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_REMOVE_FUNCTION, vcpuDesc(gh, 0))).toBe(0);
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_REMOVE_FUNCTION, vcpuDesc(gh, 0))).toThrow(code('ENOENT', S));
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_REMOVE_FUNCTION, vcpuDesc(gh, 5))).toThrow(code('ENOENT', S));
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_REMOVE_FUNCTION, vcpuDesc(gh, 0, 8))).toThrow(code('ENOENT', S));
    expect(() => vmm.runOnce()).toThrow(code('ENODEV', RUN));
    const again = new TestVmm(gh, vmFd, 0);
    again.gh.vcpu(again.vcpuFd)!.setGuest(holdingCellGuest());
    expect(again.runImmediately(4, [5n])).toBe(5n);
  });

  it("closing a vCPU fd keeps its function: the id stays taken (EEXIST) until REMOVE_FUNCTION [v17 15/35 gunyah_vcpu_release drops only the fd's references]", () => {
    const gh = openGunyah({ driver: 'sim' });
    const vmFd = gh.ioctl(3, GUNYAH_IOCTL.GUNYAH_CREATE_VM);
    const fd = gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_ADD_FUNCTION, vcpuDesc(gh, 2));
    gh.vcpu(fd)!.close();
    expect(() => gh.ioctl(fd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('EBADF'));
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_ADD_FUNCTION, vcpuDesc(gh, 2))).toThrow(code('EEXIST'));
    expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_REMOVE_FUNCTION, vcpuDesc(gh, 2))).toBe(0);
    expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_ADD_FUNCTION, vcpuDesc(gh, 2))).toBe(fd);
  });

  it('SET_BOOT_CONTEXT: X index ≤ 31, PC index 0, SP index ≤ 2, else EINVAL; EINVAL after start; short argument EFAULT [v17 30/35 gunyah_vm_set_boot_context]', () => {
    const gh = openGunyah({ driver: 'sim' });
    const vmFd = gh.ioctl(3, GUNYAH_IOCTL.GUNYAH_CREATE_VM);
    const vm = gh.vm(vmFd) as SimVm;
    const S = 'ioctl(GUNYAH_VM_SET_BOOT_CONTEXT)';
    const set = (set: number, idx: number, value = 1n) =>
      gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_SET_BOOT_CONTEXT, encodeBootContext({ reg: bootContextReg(set, idx), value }));
    expect(set(REG_SET.X, 31)).toBe(0);
    expect(set(REG_SET.PC, 0, 0x8000_0000n)).toBe(0);
    expect(set(REG_SET.SP, 2)).toBe(0);
    for (const [s, i] of [
      [REG_SET.X, 32],
      [REG_SET.PC, 1],
      [REG_SET.SP, 3],
      [3, 0],
      [0xff, 0],
    ] as const)
      expect(() => set(s, i)).toThrow(code('EINVAL', S));
    expect(() => gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_SET_BOOT_CONTEXT, new Uint8Array(BOOT_CONTEXT.SIZE - 1))).toThrow(code('EFAULT', S));
    // Bits 16..31 of reg and the reserved word are not checked.
    expect(gh.ioctl(vmFd, GUNYAH_IOCTL.GUNYAH_VM_SET_BOOT_CONTEXT, encodeBootContext({ reg: 0x1_0100, reserved: 7, value: 2n }))).toBe(0);
    expect(vm.bootRegisters.get(bootContextReg(REG_SET.PC, 0))).toBe(0x8000_0000n);
    const mem = gh.createGuestMem({ flags: 0n, size: 4096n });
    vm.mapMem({ guestAddr: DTB_GPA, flags: LEND_RW, guestMemFd: mem.fd, offset: 0, size: 4096 });
    vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: 4096n });
    vm.start();
    expect(() => set(REG_SET.PC, 0)).toThrow(code('EINVAL', S));
  });

  it('closing the VM removes its vCPU functions and closes their fds; nothing leaks [v17 10/35 _gunyah_vm_put → gunyah_vm_remove_functions]', () => {
    const { gh, vm, vmm } = holdingCellVm();
    expect(vmm.runImmediately(0, [])).toBe(0n);
    vm.close();
    expect(gh.vcpu(vmm.vcpuFd)).toBeUndefined();
    expect(() => gh.ioctl(vmm.vcpuFd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toThrow(code('EBADF'));
    expect(gh.stats()).toMatchObject({ vms: 0, bindings: 0, parcels: 0, providedFolios: 0 });
  });
});
