/**
 * vCPUs on the real /dev/kvm: a real-mode guest of a few hand-assembled instructions, loaded into a
 * guest_memfd slot (MMAP|INIT_SHARED, `userspace_addr` = its own mapping, docs/kvm-guest-memfd.md §0.2), and the
 * exits KVM_RUN reports for it. Every loop is bounded by `maxRuns`, and every guest ends in `hlt`.
 */
import { GuestMemError } from '@guestmem/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openFds, type Kvm, type KvmGuestMemfd, type KvmMapping } from '../api.js';
import { openKvm } from '../open.js';
import {
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_MMIO,
  KVM_INTERNAL_ERROR_EMULATION,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { asNativeVm, type NativeVm } from './driver.js';
import { probeNativeKvm } from './probe.js';
import { enterRealMode, runVcpu, VCPU_TIMEOUT_SIGNAL } from './vcpu.js';
import { readFileSync } from 'node:fs';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping vCPU tests: ${probe.reason}`);

const PAGE = 4096;
const CODE_GPA = 0x1000;

describe.skipIf(!probe.available)('native vCPU', () => {
  let kvm: Kvm;
  let before: number[];
  let open: Array<{ vm: NativeVm; gmems: KvmGuestMemfd[]; maps: KvmMapping[] }> = [];
  beforeAll(() => {
    before = openFds();
    kvm = openKvm({ driver: 'native' });
  });
  afterEach(() => {
    for (const o of open) {
      for (const v of o.vm.vcpus) v.close();
      for (const m of o.maps) if (!m.unmapped) m.munmap();
      for (const g of o.gmems) if (!g.closed) g.close();
      if (!o.vm.closed) o.vm.close();
    }
    open = [];
  });
  afterAll(() => {
    kvm.close();
    expect(openFds(), 'fds leaked').toEqual(before);
  });

  /** A VM whose page at GPA 0x1000 is a guest_memfd holding `code`. */
  function vmWithCode(code: number[]) {
    const vm = asNativeVm(kvm.createVm());
    const g = vm.createGuestMemfd({ size: PAGE, flags: 3n });
    const m = g.mmap({ length: PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset: 0 });
    open.push({ vm, gmems: [g], maps: [m] });
    m.write(0, Uint8Array.from(code));
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: CODE_GPA,
      memorySize: PAGE,
      userspace: { mapping: m },
      guestMemfd: g.fd,
      guestMemfdOffset: 0,
    });
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, 0, CODE_GPA);
    return { vm, vcpu, code: m };
  }

  it('KVM_CREATE_VCPU maps a kvm_run area of KVM_GET_VCPU_MMAP_SIZE; the reset state is real mode at 0xf000:0xfff0', () => {
    const vm = asNativeVm(kvm.createVm());
    open.push({ vm, gmems: [], maps: [] });
    const vcpu = vm.createVcpu(0);
    expect(vcpu.runSize).toBeGreaterThanOrEqual(2352);
    expect(vcpu.runSize % PAGE).toBe(0);
    const s = vcpu.getSregs();
    expect(s.cs).toMatchObject({ base: 0xffff0000n, selector: 0xf000, limit: 0xffff });
    expect(s.cr0 & 1n).toBe(0n); // PE clear: real mode
    expect(vcpu.getRegs()).toMatchObject({ rip: 0xfff0n, rflags: 2n });
    expect(vm.vcpus).toEqual([vcpu]);
    // A second vCPU with the same id is EEXIST.
    expect(() => vm.createVcpu(0)).toThrow(expect.objectContaining({ code: 'EEXIST', syscall: 'ioctl(KVM_CREATE_VCPU)' }));
  });

  it('KVM_SET_REGS/KVM_GET_REGS and KVM_SET_SREGS/KVM_GET_SREGS round-trip', () => {
    const vm = asNativeVm(kvm.createVm());
    open.push({ vm, gmems: [], maps: [] });
    const vcpu = vm.createVcpu(1);
    vcpu.setRegs({ rax: 0x1234, rbx: 0xffff_ffffn, r15: 7, rip: 0x2000, rflags: 0x202 });
    expect(vcpu.getRegs()).toMatchObject({ rax: 0x1234n, rbx: 0xffff_ffffn, rcx: 0n, r15: 7n, rip: 0x2000n, rflags: 0x202n });
    const s = vcpu.getSregs();
    s.ds.base = 0x10000n;
    s.ds.selector = 0x1000;
    vcpu.setSregs(s);
    expect(vcpu.getSregs().ds).toMatchObject({ base: 0x10000n, selector: 0x1000 });
  });

  it('hlt gives KVM_EXIT_HLT with rip after the instruction', () => {
    const { vcpu } = vmWithCode([0xf4]);
    const exit = vcpu.run();
    expect(exit).toEqual({ reason: KVM_EXIT_HLT, reasonName: 'KVM_EXIT_HLT' });
    expect(vcpu.getRegs().rip).toBe(BigInt(CODE_GPA + 1));
  });

  it('in/out give KVM_EXIT_IO; completeRead supplies the value of an in', () => {
    // in al, 0x13 ; inc al ; out 0x14, al ; mov ax, 0xbeef ; out 0x15, ax ; hlt
    const { vcpu } = vmWithCode([0xe4, 0x13, 0xfe, 0xc0, 0xe6, 0x14, 0xb8, 0xef, 0xbe, 0xe7, 0x15, 0xf4]);
    const r = runVcpu(vcpu, {
      maxRuns: 10,
      onExit: (e, v) => {
        if (e.io?.direction === 'in') v.completeRead(e, Uint8Array.of(0x41));
        return undefined;
      },
    });
    expect(r.exhausted).toBe(false);
    expect(r.exits.map((e) => e.reasonName)).toEqual(['KVM_EXIT_IO', 'KVM_EXIT_IO', 'KVM_EXIT_IO', 'KVM_EXIT_HLT']);
    expect(r.exits[0]!.io).toMatchObject({ direction: 'in', size: 1, port: 0x13, count: 1 });
    expect(r.exits[1]!.io).toMatchObject({ direction: 'out', size: 1, port: 0x14, count: 1, data: Uint8Array.of(0x42) });
    expect(r.exits[2]!.io).toMatchObject({ direction: 'out', size: 2, port: 0x15, data: Uint8Array.of(0xef, 0xbe) });
  });

  it('accesses to a GPA no slot backs give KVM_EXIT_MMIO (write, then a read completed by the host)', () => {
    // mov ax, 0x2000 ; mov ds, ax ; mov byte [0x10], 0x5a ; mov al, [0x10] ; out 0x12, al ; hlt
    const { vcpu } = vmWithCode([0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0x5a, 0xa0, 0x10, 0x00, 0xe6, 0x12, 0xf4]);
    const r = runVcpu(vcpu, {
      maxRuns: 10,
      onExit: (e, v) => {
        if (e.mmio && !e.mmio.isWrite) v.completeRead(e, Uint8Array.of(0x77));
        return undefined;
      },
    });
    expect(r.exits.map((e) => e.reason)).toEqual([KVM_EXIT_MMIO, KVM_EXIT_MMIO, KVM_EXIT_IO, KVM_EXIT_HLT]);
    expect(r.exits[0]!.mmio).toEqual({ physAddr: 0x20010n, isWrite: true, len: 1, data: Uint8Array.of(0x5a) });
    expect(r.exits[1]!.mmio).toMatchObject({ physAddr: 0x20010n, isWrite: false, len: 1 });
    expect(r.exits[2]!.io!.data).toEqual(Uint8Array.of(0x77));
  });

  it('executing from a GPA no slot backs is KVM_EXIT_INTERNAL_ERROR (emulation)', () => {
    const { vcpu } = vmWithCode([0xea, 0x00, 0x00, 0x00, 0x30]); // jmp far 0x3000:0000
    const exit = vcpu.run();
    expect(exit.reason).toBe(KVM_EXIT_INTERNAL_ERROR);
    expect(exit.internal!.suberror).toBe(KVM_INTERNAL_ERROR_EMULATION);
  });

  it('runVcpu stops after maxRuns on a guest that never halts', () => {
    const { vcpu } = vmWithCode([0xe6, 0x10, 0xeb, 0xfc]); // l: out 0x10, al ; jmp l
    const r = runVcpu(vcpu, { maxRuns: 5 });
    expect(r.exhausted).toBe(true);
    expect(r.exits).toHaveLength(5);
    expect(r.exits.every((e) => e.io?.port === 0x10)).toBe(true);
    expect(() => runVcpu(vcpu, { maxRuns: 0 })).toThrow(RangeError);
  });

  it('run({ timeoutMs }) interrupts a guest that spins without exiting (EINTR, KVM_EXIT_INTR, timedOut)', () => {
    const { vcpu } = vmWithCode([0xeb, 0xfe]); // jmp $
    const t0 = performance.now();
    const exit = vcpu.run({ timeoutMs: 100 });
    const ms = performance.now() - t0;
    expect(exit).toMatchObject({ reason: KVM_EXIT_INTR, reasonName: 'KVM_EXIT_INTR', errno: 'EINTR', timedOut: true });
    expect(ms).toBeGreaterThanOrEqual(90);
    expect(ms).toBeLessThan(10_000);
    expect(vcpu.getRegs().rip).toBe(BigInt(CODE_GPA));
    // The vCPU can run again; runVcpu passes the timeout on and stops at the EINTR.
    const r = runVcpu(vcpu, { maxRuns: 3, timeoutMs: 20 });
    expect(r.exits).toHaveLength(1);
    expect(r.last.timedOut).toBe(true);
    expect(() => vcpu.run({ timeoutMs: 0 })).toThrow(RangeError);
  });

  it('a timed run of a guest that exits in time is an ordinary exit, and no timeout signal is left pending', () => {
    const { vcpu } = vmWithCode([0xe6, 0x10, 0xf4]); // out 0x10, al ; hlt
    expect(vcpu.run({ timeoutMs: 5_000 }).reason).toBe(KVM_EXIT_IO);
    const hlt = vcpu.run({ timeoutMs: 5_000 });
    expect(hlt.reason).toBe(KVM_EXIT_HLT);
    expect(hlt.timedOut).toBeUndefined();
    // An untimed run after timed ones still behaves (the vCPU's signal mask keeps other signals as they were).
    enterRealMode(vcpu, 0, CODE_GPA);
    expect(vcpu.run().reason).toBe(KVM_EXIT_IO);
  });

  it("timed runs leave the thread's signal mask as it was: signal 62 is not blocked afterwards (/proc/thread-self/status SigBlk)", () => {
    const sigBlk = (): bigint => BigInt(`0x${/^SigBlk:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]}`);
    const bit = 1n << BigInt(VCPU_TIMEOUT_SIGNAL - 1);
    const before = sigBlk();
    const { vcpu } = vmWithCode([0xeb, 0xfe]); // jmp $
    expect(vcpu.run({ timeoutMs: 20 }).timedOut).toBe(true);
    expect(sigBlk() & bit).toBe(0n);
    expect(sigBlk()).toBe(before);
    // A second timed run, then one that exits in time: still nothing left blocked.
    expect(vcpu.run({ timeoutMs: 20 }).timedOut).toBe(true);
    const { vcpu: v2 } = vmWithCode([0xf4]); // hlt
    expect(v2.run({ timeoutMs: 5_000 }).reason).toBe(KVM_EXIT_HLT);
    expect(sigBlk()).toBe(before);
  });

  it('close() unmaps kvm_run and closes the fd once', () => {
    const fds0 = openFds();
    const vm = asNativeVm(kvm.createVm());
    const a = vm.createVcpu(0);
    const b = vm.createVcpu(1);
    expect(openFds().length).toBe(fds0.length + 3);
    a.close();
    expect(a.closed).toBe(true);
    expect(vm.vcpus).toEqual([b]);
    for (const f of [() => a.close(), () => a.run(), () => a.getRegs()]) {
      expect(f).toThrow(GuestMemError);
      expect(f).toThrow(expect.objectContaining({ code: 'EBADF' }));
    }
    b.close();
    vm.close();
    expect(openFds()).toEqual(fds0);
  });

  it('vCPU fds outlive their VM fd, as in the kernel: after vm.close() the vCPU still runs the guest and closes cleanly', () => {
    const fds0 = openFds();
    // out 0x10, al ; hlt
    const { vm, vcpu } = vmWithCode([0xe6, 0x10, 0xf4]);
    vm.close();
    expect(vm.closed).toBe(true);
    expect(vcpu.closed).toBe(false);
    // The kernel VM lives on through the vCPU's reference: KVM_RUN still executes the guest.
    expect(runVcpu(vcpu, { maxRuns: 4, timeoutMs: 10_000 }).exits.map((e) => e.reason)).toEqual([KVM_EXIT_IO, KVM_EXIT_HLT]);
    expect(() => vcpu.close()).not.toThrow();
    expect(vcpu.closed).toBe(true);
    for (const o of open) for (const m of o.maps) m.munmap();
    for (const o of open) for (const g of o.gmems) g.close();
    open = [];
    expect(openFds()).toEqual(fds0);
  });

  it('asNativeVm refuses a simulated VM', () => {
    const sim = openKvm({ driver: 'sim' });
    const vm = sim.createVm();
    expect(() => asNativeVm(vm)).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
    vm.close();
    sim.close();
  });
});
