import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_MEM_GUEST_MEMFD, kvmSlot, splitKvmSlot } from './constants.js';
import {
  decodeKvmCreateGuestMemfd,
  decodeKvmMemoryAttributes,
  decodeKvmPreFaultMemory,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
  encodeKvmCreateGuestMemfd,
  encodeKvmMemoryAttributes,
  encodeKvmPreFaultMemory,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
} from './structs.js';

/** Hex of a buffer, 8 bytes per group, to compare layouts readably. */
const hex = (b: Uint8Array): string =>
  Buffer.from(b)
    .toString('hex')
    .replace(/(.{16})/g, '$1 ')
    .trim();
const le64 = (v: bigint): string => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return b.toString('hex');
};
const le32 = (v: number): string => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b.toString('hex');
};
const zeros = (n: number): string => '00'.repeat(n);

describe('struct kvm_create_guest_memfd (64 B)', () => {
  it('puts size at +0, flags at +8, reserved[6] at +16..+63, little-endian', () => {
    const b = encodeKvmCreateGuestMemfd({ size: 0x1122334455667788n, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
    expect(b.length).toBe(64);
    expect(b.toString('hex')).toBe(le64(0x1122334455667788n) + le64(3n) + zeros(48));
    expect(b[0]).toBe(0x88);
  });
  it('encodes reserved values and round-trips', () => {
    const b = encodeKvmCreateGuestMemfd({ size: 4096, flags: 0, reserved: [1, 2n, 3, 4, 5, -1] });
    expect(b.readBigUInt64LE(16)).toBe(1n);
    expect(b.readBigUInt64LE(56)).toBe(0xffffffffffffffffn);
    expect(decodeKvmCreateGuestMemfd(b)).toEqual({ size: 4096n, flags: 0n, reserved: [1n, 2n, 3n, 4n, 5n, (1n << 64n) - 1n] });
  });
  it('rejects more than 6 reserved words and inexact numbers', () => {
    expect(() => encodeKvmCreateGuestMemfd({ size: 1, flags: 0, reserved: [0, 0, 0, 0, 0, 0, 0] })).toThrow(GuestMemError);
    expect(() => encodeKvmCreateGuestMemfd({ size: 2 ** 53 + 2, flags: 0 })).toThrow(/exact integer/);
    expect(() => encodeKvmCreateGuestMemfd({ size: 1.5, flags: 0 })).toThrow(GuestMemError);
    expect(() => encodeKvmCreateGuestMemfd({ size: 1n << 64n, flags: 0 })).toThrow(/64 bits/);
  });
  it("stores a negative size as its two's complement (the kernel reads it as loff_t)", () => {
    const b = encodeKvmCreateGuestMemfd({ size: -4096, flags: 0 });
    expect(b.readBigInt64LE(0)).toBe(-4096n);
  });
  it('writes into a caller buffer, clearing stale bytes', () => {
    const target = Buffer.alloc(64, 0xff);
    const out = encodeKvmCreateGuestMemfd({ size: 8192, flags: 1 }, target);
    expect(out).toBe(target);
    expect(hex(out)).toBe(hex(encodeKvmCreateGuestMemfd({ size: 8192, flags: 1 })));
  });
  it('refuses a buffer that is too small', () => {
    expect(() => decodeKvmCreateGuestMemfd(new Uint8Array(63))).toThrow(GuestMemError);
  });
});

describe('struct kvm_userspace_memory_region (32 B)', () => {
  it('u32 slot +0, u32 flags +4, gpa +8, size +16, hva +24', () => {
    const b = encodeKvmUserspaceMemoryRegion({
      slot: kvmSlot(1, 10),
      flags: 3,
      guestPhysAddr: 0xc0000000n,
      memorySize: 0x200000,
      userspaceAddr: 0x7f0000001000n,
    });
    expect(b.length).toBe(32);
    expect(b.toString('hex')).toBe(le32(0x1000a) + le32(3) + le64(0xc0000000n) + le64(0x200000n) + le64(0x7f0000001000n));
    expect(decodeKvmUserspaceMemoryRegion(b)).toEqual({
      slot: 0x1000a,
      flags: 3,
      guestPhysAddr: 0xc0000000n,
      memorySize: 0x200000n,
      userspaceAddr: 0x7f0000001000n,
    });
  });
  it('rejects a slot beyond 32 bits', () => {
    expect(() => encodeKvmUserspaceMemoryRegion({ slot: 2 ** 32, flags: 0, guestPhysAddr: 0, memorySize: 0, userspaceAddr: 0 })).toThrow(
      /32 bits/,
    );
  });
});

describe('struct kvm_userspace_memory_region2 (160 B)', () => {
  const region = {
    slot: kvmSlot(0, 7),
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: 0x1_0000_0000n,
    memorySize: 4096,
    userspaceAddr: 0,
    guestMemfdOffset: 0x7ffffffffffff000n,
    guestMemfd: 42,
  };
  it('starts with the v1 layout, then offset +32, u32 fd +40, pad1 +44, pad2[14] +48', () => {
    const b = encodeKvmUserspaceMemoryRegion2(region);
    expect(b.length).toBe(160);
    expect(b.subarray(0, 32)).toEqual(encodeKvmUserspaceMemoryRegion(region));
    expect(b.subarray(32).toString('hex')).toBe(le64(0x7ffffffffffff000n) + le32(42) + zeros(4) + zeros(112));
  });
  it('stores fd -1 as 0xffffffff and round-trips pads', () => {
    const b = encodeKvmUserspaceMemoryRegion2({ ...region, guestMemfd: -1, pad1: 5, pad2: [...Array(14).keys()].map((i) => i + 1) });
    expect(b.readUInt32LE(40)).toBe(0xffffffff);
    expect(b.readUInt32LE(44)).toBe(5);
    expect(b.readBigUInt64LE(48)).toBe(1n);
    expect(b.readBigUInt64LE(152)).toBe(14n);
    const d = decodeKvmUserspaceMemoryRegion2(b);
    expect(d.guestMemfd).toBe(0xffffffff);
    expect(d.pad2).toHaveLength(14);
    expect(d.guestMemfdOffset).toBe(0x7ffffffffffff000n);
    expect(d.slot).toBe(7);
  });
  it('rejects 15 pad2 words', () => {
    expect(() => encodeKvmUserspaceMemoryRegion2({ ...region, pad2: Array(15).fill(0) })).toThrow(GuestMemError);
  });
});

describe('slot field helpers', () => {
  it('as_id in bits 16-31, id in bits 0-15', () => {
    expect(kvmSlot(0, 10)).toBe(10);
    expect(kvmSlot(1, 0)).toBe(0x10000);
    expect(kvmSlot(0xffff, 0xffff)).toBe(0xffffffff);
    expect(splitKvmSlot(0x2000a)).toEqual({ asId: 2, id: 10 });
    expect(() => kvmSlot(0, 0x10000)).toThrow(RangeError);
  });
});

describe('struct kvm_memory_attributes (32 B)', () => {
  it('address +0, size +8, attributes +16, flags +24', () => {
    const b = encodeKvmMemoryAttributes({ address: 0xc0000000n, size: 4096, attributes: 1n << 3n, flags: 1 });
    expect(b.toString('hex')).toBe(le64(0xc0000000n) + le64(4096n) + le64(8n) + le64(1n));
    expect(decodeKvmMemoryAttributes(b)).toEqual({ address: 0xc0000000n, size: 4096n, attributes: 8n, flags: 1n });
  });
});

describe('struct kvm_pre_fault_memory (64 B)', () => {
  it('gpa +0, size +8, flags +16, padding[5] +24', () => {
    const b = encodeKvmPreFaultMemory({ gpa: 0x200000, size: 0x1000, flags: 0, padding: [9] });
    expect(b.length).toBe(64);
    expect(b.toString('hex')).toBe(le64(0x200000n) + le64(0x1000n) + zeros(8) + le64(9n) + zeros(32));
    expect(decodeKvmPreFaultMemory(b)).toEqual({ gpa: 0x200000n, size: 0x1000n, flags: 0n, padding: [9n, 0n, 0n, 0n, 0n] });
  });
  it('rejects 6 padding words', () => {
    expect(() => encodeKvmPreFaultMemory({ gpa: 0, size: 0, flags: 0, padding: Array(6).fill(0) })).toThrow(GuestMemError);
  });
});
