/**
 * Codecs for the guest_memfd uAPI structs (docs/kvm-guest-memfd.md §1.2): each `encodeX(value, target?)` writes the
 * exact little-endian bytes the kernel copies in (zeroing reserved/pad fields unless you set them —
 * the kernel ignores them, tests set them to prove it), and each `decodeX(buf)` reads them back.
 *
 * Encoders write into `target` when given (the native driver reuses one preallocated buffer per
 * ioctl, so the hot path allocates nothing) and return it; otherwise they allocate a fresh Buffer.
 * 64-bit fields decode to `bigint`, 32-bit fields to `number`.
 */
import type { GuestMemError } from '@guestmem/core';
import { codecError } from './codec-error.js';
import { checkBuffer, u32, u64, type IntArg } from './codec-util.js';
import {
  SIZEOF_KVM_CREATE_GUEST_MEMFD,
  SIZEOF_KVM_MEMORY_ATTRIBUTES,
  SIZEOF_KVM_PRE_FAULT_MEMORY,
  SIZEOF_KVM_USERSPACE_MEMORY_REGION,
  SIZEOF_KVM_USERSPACE_MEMORY_REGION2,
} from './ioctl.js';

function tooMany(field: string, n: number): GuestMemError {
  return codecError({ code: 'ERANGE', op: `encode ${field}`, detail: `has ${n} entries` });
}

function target(struct: string, size: number, buf: Uint8Array | undefined): Buffer {
  if (buf === undefined) return Buffer.alloc(size);
  const b = checkBuffer(struct, buf, size);
  b.fill(0, 0, size);
  return b;
}

// ---- struct kvm_create_guest_memfd (64 B) --------------------------------------------------------
/** `struct kvm_create_guest_memfd { __u64 size; __u64 flags; __u64 reserved[6]; }`. */
export interface KvmCreateGuestMemfd {
  size: IntArg;
  flags: IntArg;
  /** Up to 6 values for `reserved[]` (+16 …); the 6.18 kernel does not check them. Default zeros. */
  reserved?: readonly IntArg[];
}
export interface KvmCreateGuestMemfdDecoded {
  size: bigint;
  flags: bigint;
  reserved: bigint[];
}
export function encodeKvmCreateGuestMemfd(v: KvmCreateGuestMemfd, buf?: Uint8Array): Buffer {
  const b = target('kvm_create_guest_memfd', SIZEOF_KVM_CREATE_GUEST_MEMFD, buf);
  b.writeBigUInt64LE(u64('size', v.size), 0);
  b.writeBigUInt64LE(u64('flags', v.flags), 8);
  const reserved = v.reserved ?? [];
  if (reserved.length > 6) throw tooMany('kvm_create_guest_memfd.reserved', 6);
  reserved.forEach((r, i) => b.writeBigUInt64LE(u64(`reserved[${i}]`, r), 16 + 8 * i));
  return b;
}
export function decodeKvmCreateGuestMemfd(buf: Uint8Array): KvmCreateGuestMemfdDecoded {
  const b = checkBuffer('kvm_create_guest_memfd', buf, SIZEOF_KVM_CREATE_GUEST_MEMFD);
  return {
    size: b.readBigUInt64LE(0),
    flags: b.readBigUInt64LE(8),
    reserved: Array.from({ length: 6 }, (_, i) => b.readBigUInt64LE(16 + 8 * i)),
  };
}

// ---- struct kvm_userspace_memory_region (32 B) ---------------------------------------------------
/**
 * `struct kvm_userspace_memory_region { __u32 slot; __u32 flags; __u64 guest_phys_addr;
 * __u64 memory_size; __u64 userspace_addr; }`. `slot` carries the address-space id in bits 16–31
 * (see `kvmSlot`).
 */
export interface KvmUserspaceMemoryRegion {
  slot: IntArg;
  flags: IntArg;
  guestPhysAddr: IntArg;
  memorySize: IntArg;
  userspaceAddr: IntArg;
}
export interface KvmUserspaceMemoryRegionDecoded {
  slot: number;
  flags: number;
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
}
function writeRegionHead(b: Buffer, v: KvmUserspaceMemoryRegion): void {
  b.writeUInt32LE(u32('slot', v.slot), 0);
  b.writeUInt32LE(u32('flags', v.flags), 4);
  b.writeBigUInt64LE(u64('guest_phys_addr', v.guestPhysAddr), 8);
  b.writeBigUInt64LE(u64('memory_size', v.memorySize), 16);
  b.writeBigUInt64LE(u64('userspace_addr', v.userspaceAddr), 24);
}
function readRegionHead(b: Buffer): KvmUserspaceMemoryRegionDecoded {
  return {
    slot: b.readUInt32LE(0),
    flags: b.readUInt32LE(4),
    guestPhysAddr: b.readBigUInt64LE(8),
    memorySize: b.readBigUInt64LE(16),
    userspaceAddr: b.readBigUInt64LE(24),
  };
}
export function encodeKvmUserspaceMemoryRegion(v: KvmUserspaceMemoryRegion, buf?: Uint8Array): Buffer {
  const b = target('kvm_userspace_memory_region', SIZEOF_KVM_USERSPACE_MEMORY_REGION, buf);
  writeRegionHead(b, v);
  return b;
}
export function decodeKvmUserspaceMemoryRegion(buf: Uint8Array): KvmUserspaceMemoryRegionDecoded {
  return readRegionHead(checkBuffer('kvm_userspace_memory_region', buf, SIZEOF_KVM_USERSPACE_MEMORY_REGION));
}

// ---- struct kvm_userspace_memory_region2 (160 B) -------------------------------------------------
/**
 * `struct kvm_userspace_memory_region2`: the v1 fields (same offsets), then `__u64 guest_memfd_offset`
 * (+32), `__u32 guest_memfd` (+40, an fd read as unsigned int), `__u32 pad1` (+44), `__u64 pad2[14]`
 * (+48). The 6.18 kernel does not check the pads.
 */
export interface KvmUserspaceMemoryRegion2 extends KvmUserspaceMemoryRegion {
  guestMemfdOffset: IntArg;
  /** An fd number; -1 is stored as 0xffffffff. */
  guestMemfd: IntArg;
  pad1?: IntArg;
  /** Up to 14 values for `pad2[]`. */
  pad2?: readonly IntArg[];
}
export interface KvmUserspaceMemoryRegion2Decoded extends KvmUserspaceMemoryRegionDecoded {
  guestMemfdOffset: bigint;
  guestMemfd: number;
  pad1: number;
  pad2: bigint[];
}
export function encodeKvmUserspaceMemoryRegion2(v: KvmUserspaceMemoryRegion2, buf?: Uint8Array): Buffer {
  const b = target('kvm_userspace_memory_region2', SIZEOF_KVM_USERSPACE_MEMORY_REGION2, buf);
  writeRegionHead(b, v);
  b.writeBigUInt64LE(u64('guest_memfd_offset', v.guestMemfdOffset), 32);
  b.writeUInt32LE(u32('guest_memfd', v.guestMemfd), 40);
  b.writeUInt32LE(u32('pad1', v.pad1 ?? 0), 44);
  const pad2 = v.pad2 ?? [];
  if (pad2.length > 14) throw tooMany('kvm_userspace_memory_region2.pad2', 14);
  pad2.forEach((p, i) => b.writeBigUInt64LE(u64(`pad2[${i}]`, p), 48 + 8 * i));
  return b;
}
export function decodeKvmUserspaceMemoryRegion2(buf: Uint8Array): KvmUserspaceMemoryRegion2Decoded {
  const b = checkBuffer('kvm_userspace_memory_region2', buf, SIZEOF_KVM_USERSPACE_MEMORY_REGION2);
  return {
    ...readRegionHead(b),
    guestMemfdOffset: b.readBigUInt64LE(32),
    guestMemfd: b.readUInt32LE(40),
    pad1: b.readUInt32LE(44),
    pad2: Array.from({ length: 14 }, (_, i) => b.readBigUInt64LE(48 + 8 * i)),
  };
}

// ---- struct kvm_memory_attributes (32 B) ---------------------------------------------------------
/** `struct kvm_memory_attributes { __u64 address; __u64 size; __u64 attributes; __u64 flags; }`. */
export interface KvmMemoryAttributes {
  address: IntArg;
  size: IntArg;
  attributes: IntArg;
  flags: IntArg;
}
export interface KvmMemoryAttributesDecoded {
  address: bigint;
  size: bigint;
  attributes: bigint;
  flags: bigint;
}
export function encodeKvmMemoryAttributes(v: KvmMemoryAttributes, buf?: Uint8Array): Buffer {
  const b = target('kvm_memory_attributes', SIZEOF_KVM_MEMORY_ATTRIBUTES, buf);
  b.writeBigUInt64LE(u64('address', v.address), 0);
  b.writeBigUInt64LE(u64('size', v.size), 8);
  b.writeBigUInt64LE(u64('attributes', v.attributes), 16);
  b.writeBigUInt64LE(u64('flags', v.flags), 24);
  return b;
}
export function decodeKvmMemoryAttributes(buf: Uint8Array): KvmMemoryAttributesDecoded {
  const b = checkBuffer('kvm_memory_attributes', buf, SIZEOF_KVM_MEMORY_ATTRIBUTES);
  return {
    address: b.readBigUInt64LE(0),
    size: b.readBigUInt64LE(8),
    attributes: b.readBigUInt64LE(16),
    flags: b.readBigUInt64LE(24),
  };
}

// ---- struct kvm_pre_fault_memory (64 B, in/out) --------------------------------------------------
/** `struct kvm_pre_fault_memory { __u64 gpa; __u64 size; __u64 flags; __u64 padding[5]; }`; the kernel updates gpa/size. */
export interface KvmPreFaultMemory {
  gpa: IntArg;
  size: IntArg;
  flags: IntArg;
  /** Up to 5 values for `padding[]`. */
  padding?: readonly IntArg[];
}
export interface KvmPreFaultMemoryDecoded {
  gpa: bigint;
  size: bigint;
  flags: bigint;
  padding: bigint[];
}
export function encodeKvmPreFaultMemory(v: KvmPreFaultMemory, buf?: Uint8Array): Buffer {
  const b = target('kvm_pre_fault_memory', SIZEOF_KVM_PRE_FAULT_MEMORY, buf);
  b.writeBigUInt64LE(u64('gpa', v.gpa), 0);
  b.writeBigUInt64LE(u64('size', v.size), 8);
  b.writeBigUInt64LE(u64('flags', v.flags), 16);
  const padding = v.padding ?? [];
  if (padding.length > 5) throw tooMany('kvm_pre_fault_memory.padding', 5);
  padding.forEach((p, i) => b.writeBigUInt64LE(u64(`padding[${i}]`, p), 24 + 8 * i));
  return b;
}
export function decodeKvmPreFaultMemory(buf: Uint8Array): KvmPreFaultMemoryDecoded {
  const b = checkBuffer('kvm_pre_fault_memory', buf, SIZEOF_KVM_PRE_FAULT_MEMORY);
  return {
    gpa: b.readBigUInt64LE(0),
    size: b.readBigUInt64LE(8),
    flags: b.readBigUInt64LE(16),
    padding: Array.from({ length: 5 }, (_, i) => b.readBigUInt64LE(24 + 8 * i)),
  };
}
