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
      GUNYAH_MEM_DEFAULT_ACCESS: 0, GUNYAH_MEM_FORCE_LEND: 1, GUNYAH_MEM_FORCE_SHARE: 2, GUNYAH_MEM_ACCESS_MASK: 7,
      GUNYAH_MEM_ALLOW_READ: 0x10, GUNYAH_MEM_ALLOW_WRITE: 0x20, GUNYAH_MEM_ALLOW_EXEC: 0x40, GUNYAH_MEM_ALLOW_RWX: 0x70,
      GUNYAH_MEM_UNMAP: 0x100,
    });
  });
  it('v17 words: access value in bits 0-2, rights in bits 4-6', () => {
    expect(decodeMapFlags(0x11, MAP_FLAGS_V17)).toEqual({ ok: true, flags: { access: 'lend', read: true, write: false, exec: false, unmap: false } });
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
        fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(),
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
      gunyah_create_mem_args: 64, gunyah_map_mem_args: 32, gunyah_vm_dtb_config: 16,
      gunyah_fn_desc: 16, gunyah_vm_boot_context: 16, gunyah_vcpu_run: 40,
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
    expect(hex(b)).toBe(
      '000000a000000000' + '71010000' + '07000000' + '0030000000000000' + '0010000000000000',
    );
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
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat({ max: 0xffffffff }), fc.nat({ max: 0x7fffffff }),
        (ga, off, size, flags, fd) => {
          const a = { guestAddr: ga, flags, guestMemFd: fd, offset: off, size };
          expect(decodeMapMemArgs(encodeMapMemArgs(a))).toEqual(a);
          expect(decodeCreateMemArgs(encodeCreateMemArgs({ flags: ga, size }))).toMatchObject({ flags: ga, size });
        }),
      { numRuns: 300 },
    );
  });
});
