/**
 * The ACK uAPI byte for byte against docs/gunyah-ack.md (§2 ioctl table, §3 structs and
 * flags) and the headers it names (K1–K9), per generation. Expected values are typed in from those
 * tables, not computed.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ACK_GENERATIONS,
  ACK_IOCTL,
  ACK_MAP_FLAGS,
  ACK_REGION_FLAGS_ALLOWED,
  ACK_SIZEOF,
  GH_MEM_FLAGS_A,
  GUNYAH_AUTH_TYPE,
  V17_CREATE_GUEST_MEM,
  cmaShareType,
  decodeAddressRange,
  decodeMapCmaMemArgs,
  decodeUserMemoryRegion,
  encodeAddressRange,
  encodeAuthDesc,
  encodeMapCmaMemArgs,
  encodeQtvmAuthArg,
  encodeUserMemoryRegion,
  type AckIoctlName,
} from './index.js';
import { MAP_FLAGS_V17, decodeMapFlags } from '../../uapi/index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** §2: name, number, A, B, C ('hdr' = in the header, not handled → counts as not handled). */
const TABLE: Array<[AckIoctlName, number, boolean, boolean, boolean]> = [
  ['GH_CREATE_VM', 0x00004700, true, true, true],
  ['GH_VM_SET_USER_MEM_REGION', 0x40204701, true, true, true],
  ['GH_VM_SET_DTB_CONFIG', 0x40104702, true, true, true],
  ['GH_VM_START', 0x00004703, true, true, true],
  ['GH_VM_ADD_FUNCTION', 0x40104704, true, true, true],
  ['GH_VCPU_RUN', 0x00004705, true, true, true],
  ['GH_VCPU_MMAP_SIZE', 0x00004706, true, true, true],
  ['GH_VM_REMOVE_FUNCTION', 0x40104707, true, true, true],
  ['GUNYAH_VM_MAP_MEM', 0x40204709, false, false, false],
  ['GUNYAH_VM_SET_BOOT_CONTEXT', 0x4010470a, false, true, true],
  ['GH_ANDROID_TENTATIVE_UAPI', 0x00004110, true, false, false],
  ['GH_VM_ANDROID_LEND_USER_MEM', 0x40204111, true, true, true],
  ['GH_VM_ANDROID_SET_FW_CONFIG', 0x40104112, true, true, true],
  ['GH_VM_RECLAIM_REGION', 0x40104113, false, false, true],
  ['GH_ANDROID_CREATE_CMA_MEM_FD', 0x00004114, false, false, true],
  ['GH_VM_ANDROID_MAP_CMA_MEM', 0x40284115, false, false, true],
  ['GH_VM_ANDROID_SET_AUTH_TYPE', 0x40104116, false, false, true],
  ['GH_VM_CHECK_EXTENSION', 0x00004117, false, false, true],
];

describe('ACK ioctl numbers and which generation handles them (docs/gunyah-ack.md §2, §9)', () => {
  it.each(TABLE)('%s = %s; handled in A %s, B %s, C %s', (name, number, a, b, c) => {
    expect(ACK_IOCTL[name]).toBe(number);
    expect(ACK_GENERATIONS.A.handles.has(name)).toBe(a);
    expect(ACK_GENERATIONS.B.handles.has(name)).toBe(b);
    expect(ACK_GENERATIONS.C.handles.has(name)).toBe(c);
  });
  it('the table is complete: no other request number is defined', () => {
    expect(Object.keys(ACK_IOCTL).sort()).toEqual(TABLE.map((r) => r[0]).sort());
  });
  it("no generation has v17's GUNYAH_CREATE_GUEST_MEM (0x40404708)", () => {
    expect(V17_CREATE_GUEST_MEM).toBe(0x40404708);
    expect(Object.values(ACK_IOCTL)).not.toContain(0x40404708);
  });
  it('struct sizes (§3)', () => {
    expect(ACK_SIZEOF).toMatchObject({
      gunyah_userspace_memory_region: 32,
      gunyah_vm_dtb_config: 16,
      gunyah_vm_firmware_config: 16,
      gunyah_address_range: 16,
      gunyah_map_cma_mem_args: 40,
      gunyah_auth_desc: 16,
      gunyah_qtvm_auth_arg: 24,
      gunyah_fn_desc: 16,
      gunyah_vm_boot_context: 16,
    });
  });
  it('generation rules: A pins at ioctl time with unique labels and one parcel per region, no demand paging; B/C the reverse', () => {
    const g = ACK_GENERATIONS;
    expect([g.A.pinAtIoctl, g.A.uniqueLabels, g.A.parcelPerRegion, g.A.demandPaging]).toEqual([true, true, true, false]);
    for (const x of [g.B, g.C])
      expect([x.pinAtIoctl, x.uniqueLabels, x.parcelPerRegion, x.demandPaging]).toEqual([false, false, false, true]);
  });
});

describe('ACK flags (docs/gunyah-ack.md §3.2)', () => {
  it('A: GH_MEM_ALLOW_READ/WRITE/EXEC = 1/2/4', () => {
    expect(GH_MEM_FLAGS_A).toEqual({ GH_MEM_ALLOW_READ: 1, GH_MEM_ALLOW_WRITE: 2, GH_MEM_ALLOW_EXEC: 4 });
  });
  it('B/C: enum gunyah_map_flags', () => {
    expect(ACK_MAP_FLAGS).toEqual({
      GUNYAH_MEM_ALLOW_READ: 0x1,
      GUNYAH_MEM_ALLOW_WRITE: 0x2,
      GUNYAH_MEM_ALLOW_EXEC: 0x4,
      GUNYAH_MEM_ALLOW_RWX: 0x7,
      GUNYAH_MEM_DEFAULT_ACCESS: 0,
      GUNYAH_MEM_FORCE_LEND: 0x10,
      GUNYAH_MEM_FORCE_SHARE: 0x20,
      GUNYAH_MEM_ACCESS_MASK: 0x70,
      GUNYAH_MEM_UNMAP: 0x100,
    });
    expect(ACK_REGION_FLAGS_ALLOWED).toBe(0x7);
  });
  it("0x10 is v17's ALLOW_READ and ACK's FORCE_LEND: each driver reads its own meaning", () => {
    expect(MAP_FLAGS_V17.GUNYAH_MEM_ALLOW_READ).toBe(0x10);
    expect(ACK_MAP_FLAGS.GUNYAH_MEM_FORCE_LEND).toBe(0x10);
    // v17: 0x10 alone is "read, default access" (= lend in v17's code). ACK CMA: 0x10 is "lend, no rights".
    expect(decodeMapFlags(0x10, MAP_FLAGS_V17)).toEqual({
      ok: true,
      flags: { access: 'default', read: true, write: false, exec: false, unmap: false },
    });
    expect(cmaShareType(0x10)).toBe('lend');
    // v17's FORCE_SHARE|READ (0x12) on the ACK CMA ioctl: 0x10 set → lend, and 0x2 is WRITE, not an access value.
    expect(cmaShareType(0x12)).toBe('lend');
    expect(cmaShareType(ACK_MAP_FLAGS.GUNYAH_MEM_DEFAULT_ACCESS | 0x7)).toBe('share');
    expect(cmaShareType(ACK_MAP_FLAGS.GUNYAH_MEM_FORCE_SHARE | 0x7)).toBe('share');
  });
});

describe('ACK struct codecs (docs/gunyah-ack.md §3.1, §3.3)', () => {
  it('gunyah_userspace_memory_region: label @0 u32, flags @4 u32, gpa @8, size @16, uaddr @24, no padding', () => {
    const b = encodeUserMemoryRegion({
      label: 0x11223344,
      flags: 0x7,
      guestPhysAddr: 0x8000_0000n,
      memorySize: 0x20_0000n,
      userspaceAddr: 0x7f12_3456_0000n,
    });
    expect(b.length).toBe(32);
    expect(hex(b)).toBe('44332211' + '07000000' + '0000008000000000' + '0000200000000000' + '00005634127f0000');
    expect(decodeUserMemoryRegion(b)).toEqual({
      label: 0x11223344,
      flags: 7,
      guestPhysAddr: 0x8000_0000n,
      memorySize: 0x20_0000n,
      userspaceAddr: 0x7f12_3456_0000n,
    });
  });
  it('gunyah_address_range / dtb / fw config: gpa @0, size @8', () => {
    const b = encodeAddressRange({ guestPhysAddr: 0x8010_0000n, size: 0x3000n });
    expect(hex(b)).toBe('0000108000000000' + '0030000000000000');
    expect(decodeAddressRange(b)).toEqual({ guestPhysAddr: 0x8010_0000n, size: 0x3000n });
  });
  it('gunyah_map_cma_mem_args: label @0, 4 padding bytes, guest_addr @8, flags @16, fd @20, offset @24, size @32', () => {
    const b = encodeMapCmaMemArgs({ label: 2, guestAddr: 0x9000_0000n, flags: 0x17, guestMemFd: 9, offset: 0x1000n, size: 0x40_0000n });
    expect(b.length).toBe(40);
    expect(hex(b)).toBe('02000000' + '00000000' + '0000009000000000' + '17000000' + '09000000' + '0010000000000000' + '0000400000000000');
    expect(decodeMapCmaMemArgs(b)).toEqual({
      label: 2,
      guestAddr: 0x9000_0000n,
      flags: 0x17,
      guestMemFd: 9,
      offset: 0x1000n,
      size: 0x40_0000n,
    });
  });
  it('gunyah_auth_desc {type @0, arg_size @4, arg @8} and gunyah_qtvm_auth_arg {vm_id u16 @0, pas id @4, gpa @8, size @16}', () => {
    expect(GUNYAH_AUTH_TYPE).toEqual({ GUNYAH_ANDROID_PVM_TYPE: 0, GUNYAH_QCOM_TRUSTED_VM_TYPE: 1 });
    expect(hex(encodeAuthDesc({ type: 1, argSize: 24, arg: 0x1000n }))).toBe('01000000' + '18000000' + '0010000000000000');
    const q = encodeQtvmAuthArg({ vmId: 0x2d, peripheralId: 0x1f, guestPhysAddr: 0xe000_0000n, size: 0x10_0000n });
    expect(hex(q)).toBe('2d00' + '0000' + '1f000000' + '000000e000000000' + '0000100000000000');
  });
  it('u64 and u32 fields round-trip over their whole domain', () => {
    const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    const u32 = fc.nat({ max: 0xffffffff });
    fc.assert(
      fc.property(u32, u32, u64, u64, u64, (label, flags, g, s, a) => {
        const r = { label, flags, guestPhysAddr: g, memorySize: s, userspaceAddr: a };
        expect(decodeUserMemoryRegion(encodeUserMemoryRegion(r))).toEqual(r);
        const c = { label, guestAddr: g, flags, guestMemFd: flags, offset: s, size: a };
        expect(decodeMapCmaMemArgs(encodeMapCmaMemArgs(c))).toEqual(c);
      }),
      { numRuns: 300 },
    );
  });
});
