import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  GUNYAH_IOCTL,
  SIZEOF,
  MAP_FLAGS_V17,
  decodeMapFlags,
  encodeMapFlags,
  encodeCreateMemArgs,
  decodeCreateMemArgs,
  encodeMapMemArgs,
  decodeMapMemArgs,
  encodeDtbConfig,
  decodeDtbConfig,
  encodeVcpuRunPageFault,
  decodeVcpuRunPageFault,
  setPageFaultResumeAction,
  GHMF_ALLOW_HUGEPAGE,
  GHMF_CLOEXEC,
  GUNYAH_FN,
  GUNYAH_FN_MAX_ARG_SIZE,
  GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT,
  GUNYAH_VM_STATUS,
  REG_SET,
  bootContextReg,
  decodeBootContext,
  decodeFnDesc,
  decodeVcpuRunMmio,
  decodeVcpuRunStatus,
  encodeBootContext,
  encodeFnDesc,
  encodeFnVcpuArg,
  setMmioResume,
} from './index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('ioctl numbers (v17, computed from _IO/_IOW)', () => {
  it.each([
    ['GUNYAH_CREATE_VM', 0x00004700],
    ['GUNYAH_CREATE_GUEST_MEM', 0x40404708],
    ['GUNYAH_VM_SET_DTB_CONFIG', 0x40104702],
    ['GUNYAH_VM_START', 0x00004703],
    ['GUNYAH_VM_ADD_FUNCTION', 0x40104704],
    ['GUNYAH_VCPU_RUN', 0x00004705],
    ['GUNYAH_VCPU_MMAP_SIZE', 0x00004706],
    ['GUNYAH_VM_REMOVE_FUNCTION', 0x40104707],
    ['GUNYAH_VM_MAP_MEM', 0x40204709],
    ['GUNYAH_VM_SET_BOOT_CONTEXT', 0x4010470a],
  ] as const)('%s = %s', (name, value) => {
    expect(GUNYAH_IOCTL[name]).toBe(value);
  });
});

describe('flags', () => {
  it('create flags', () => {
    expect(GHMF_CLOEXEC).toBe(1n);
    expect(GHMF_ALLOW_HUGEPAGE).toBe(2n);
  });
  it('v17 map flag values', () => {
    expect(MAP_FLAGS_V17).toMatchObject({
      GUNYAH_MEM_DEFAULT_ACCESS: 0,
      GUNYAH_MEM_FORCE_LEND: 1,
      GUNYAH_MEM_FORCE_SHARE: 2,
      GUNYAH_MEM_ACCESS_MASK: 7,
      GUNYAH_MEM_ALLOW_READ: 0x10,
      GUNYAH_MEM_ALLOW_WRITE: 0x20,
      GUNYAH_MEM_ALLOW_EXEC: 0x40,
      GUNYAH_MEM_ALLOW_RWX: 0x70,
      GUNYAH_MEM_UNMAP: 0x100,
    });
  });
  it('v17 words: access value in bits 0-2, rights in bits 4-6', () => {
    expect(decodeMapFlags(0x11, MAP_FLAGS_V17)).toEqual({
      ok: true,
      flags: { access: 'lend', read: true, write: false, exec: false, unmap: false },
    });
    expect(decodeMapFlags(0x12, MAP_FLAGS_V17)).toMatchObject({ ok: true, flags: { access: 'share', read: true } });
  });
  it('decode checks in kernel order: unknown bits, no rights, bad access', () => {
    expect(decodeMapFlags(0x200 | 0x3)).toEqual({ ok: false, reason: 'unknown-bits' });
    expect(decodeMapFlags(0x80 | 0x10)).toEqual({ ok: false, reason: 'unknown-bits' });
    expect(decodeMapFlags(0x3)).toEqual({ ok: false, reason: 'no-rights' });
    expect(decodeMapFlags(0x13)).toEqual({ ok: false, reason: 'bad-access' });
  });
  it('encode/decode round-trip', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('default', 'lend', 'share' as const),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (access, read, write, exec, unmap) => {
          fc.pre(read || write || exec);
          const f = { access, read, write, exec, unmap };
          expect(decodeMapFlags(encodeMapFlags(f, MAP_FLAGS_V17), MAP_FLAGS_V17)).toEqual({ ok: true, flags: f });
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('struct codecs (byte offsets)', () => {
  it('sizes', () => {
    expect(SIZEOF).toEqual({
      gunyah_create_mem_args: 64,
      gunyah_map_mem_args: 32,
      gunyah_vm_dtb_config: 16,
      gunyah_fn_desc: 16,
      gunyah_vm_boot_context: 16,
      gunyah_vcpu_run: 40,
    });
  });
  it('gunyah_create_mem_args: flags @0 then size @8, reserved @16..64', () => {
    const b = encodeCreateMemArgs({ flags: 0x2n, size: 0x200000n, reserved: [0x1122334455667788n] });
    expect(b.length).toBe(64);
    expect(hex(b.subarray(0, 8))).toBe('0200000000000000');
    expect(hex(b.subarray(8, 16))).toBe('0000200000000000');
    expect(hex(b.subarray(16, 24))).toBe('8877665544332211');
    expect(b.subarray(24).every((x) => x === 0)).toBe(true);
    expect(decodeCreateMemArgs(b)).toMatchObject({ flags: 2n, size: 0x200000n });
  });
  it('gunyah_map_mem_args: guest_addr @0, flags @8 (u32), fd @12 (u32), offset @16, size @24', () => {
    const b = encodeMapMemArgs({ guestAddr: 0xa000_0000n, flags: 0x171, guestMemFd: 7, offset: 0x3000n, size: 0x1000n });
    expect(hex(b)).toBe('000000a000000000' + '71010000' + '07000000' + '0030000000000000' + '0010000000000000');
    expect(decodeMapMemArgs(b)).toEqual({ guestAddr: 0xa000_0000n, flags: 0x171, guestMemFd: 7, offset: 0x3000n, size: 0x1000n });
  });
  it('gunyah_vm_dtb_config', () => {
    const b = encodeDtbConfig({ guestPhysAddr: 0x8000_0000n, size: 0x2000n });
    expect(hex(b)).toBe('0000008000000000' + '0020000000000000');
    expect(decodeDtbConfig(b)).toEqual({ guestPhysAddr: 0x8000_0000n, size: 0x2000n });
  });
  it('gunyah_vcpu_run page_fault: exit_reason @8 = 3, phys_addr @16, attempt @24 (s32), resume_action @28', () => {
    const b = encodeVcpuRunPageFault({ immediateExit: 0, physAddr: 0xa000_1000n, attempt: -2, resumeAction: 1 });
    expect(b.length).toBe(40);
    expect(hex(b.subarray(8, 12))).toBe('03000000');
    expect(hex(b.subarray(16, 24))).toBe('001000a000000000');
    expect(hex(b.subarray(24, 28))).toBe('feffffff');
    expect(b[28]).toBe(1);
    setPageFaultResumeAction(b, 2);
    expect(decodeVcpuRunPageFault(b)).toEqual({ exitReason: 3, immediateExit: 0, physAddr: 0xa000_1000n, attempt: -2, resumeAction: 2 });
    const mmio = new Uint8Array(40);
    mmio[8] = 1;
    expect(() => decodeVcpuRunPageFault(mmio)).toThrow(RangeError);
  });
  it('u64 fields round-trip any value', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0x7fffffff }),
        (ga, off, size, flags, fd) => {
          const a = { guestAddr: ga, flags, guestMemFd: fd, offset: off, size };
          expect(decodeMapMemArgs(encodeMapMemArgs(a))).toEqual(a);
          expect(decodeCreateMemArgs(encodeCreateMemArgs({ flags: ga, size }))).toMatchObject({ flags: ga, size });
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('lifecycle structs (v17 15/35, 30/35; bindgen in gunyah-test-vmm gunyah-bindings/src/bindings.rs)', () => {
  it('gunyah_fn_desc: type @0 (u32), arg_size @4 (u32), arg @8 (u64); GUNYAH_FN_* and the 256-byte limit', () => {
    const b = encodeFnDesc({ type: GUNYAH_FN.VCPU, argSize: 4, arg: 0x7f00_0000_1000n });
    expect(hex(b)).toBe('01000000' + '04000000' + '00100000007f0000');
    expect(decodeFnDesc(b)).toEqual({ type: 1, argSize: 4, arg: 0x7f00_0000_1000n });
    expect(GUNYAH_FN).toEqual({ VCPU: 1, IRQFD: 2, IOEVENTFD: 3 });
    expect(GUNYAH_FN_MAX_ARG_SIZE).toBe(256);
    expect(hex(encodeFnVcpuArg(3))).toBe('03000000');
  });
  it('gunyah_vm_boot_context: reg @0, reserved @4, value @8; REG(set, idx) = set << 8 | idx', () => {
    expect(REG_SET).toEqual({ X: 0, PC: 1, SP: 2 });
    expect(GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT).toBe(8);
    expect(bootContextReg(REG_SET.SP, 1)).toBe(0x201);
    const b = encodeBootContext({ reg: 0x100, reserved: 9, value: 0x8000_0000n });
    expect(hex(b)).toBe('00010000' + '09000000' + '0000008000000000');
    expect(decodeBootContext(b)).toEqual({ reg: 0x100, reserved: 9, value: 0x8000_0000n });
  });
  it('gunyah_vcpu_run MMIO arm: phys_addr @16, data[8] @24, len @32, is_write @36, resume_action @37', () => {
    const run = new Uint8Array(40);
    const dv = new DataView(run.buffer);
    dv.setUint32(8, 1, true);
    dv.setBigUint64(16, 0x6000n, true);
    run.set([1, 2, 3, 4, 5, 6, 7, 8], 24);
    dv.setUint32(32, 8, true);
    run[36] = 1;
    run[37] = 2;
    expect(decodeVcpuRunMmio(run)).toEqual({
      exitReason: 1,
      physAddr: 0x6000n,
      data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
      len: 8,
      isWrite: 1,
      resumeAction: 2,
    });
    setMmioResume(run, 0, Uint8Array.of(9, 9));
    expect(run[37]).toBe(0);
    expect([...run.subarray(24, 27)]).toEqual([9, 9, 3]);
    expect(() => decodeVcpuRunStatus(run)).toThrow(RangeError);
  });
  it('gunyah_vcpu_run STATUS arm: status @16, exit_info {type u16 @20, padding @22, reason_size u32 @24, reason[8] @28}; GUNYAH_VM_STATUS_*', () => {
    expect(GUNYAH_VM_STATUS).toEqual({ LOAD_FAILED: 1, EXITED: 2, CRASHED: 3 });
    const run = new Uint8Array(40);
    const dv = new DataView(run.buffer);
    dv.setUint32(8, 2, true);
    dv.setUint32(16, 2, true);
    dv.setUint16(20, 1, true);
    dv.setUint32(24, 4, true);
    run.set([0xaa, 0xbb], 28);
    expect(decodeVcpuRunStatus(run)).toMatchObject({ exitReason: 2, status: 2, exitInfo: { type: 1, reasonSize: 4 } });
    expect(decodeVcpuRunStatus(run).exitInfo.reason.subarray(0, 2)).toEqual(Uint8Array.of(0xaa, 0xbb));
  });
});
