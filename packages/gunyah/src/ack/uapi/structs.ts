/**
 * Byte-exact codecs of the ACK argument structs (little-endian, LP64 natural alignment;
 * docs/gunyah-ack.md §3.1 and §3.3). `structs.test.ts` pins every offset.
 */
import { ACK_SIZEOF } from './ioctl.js';

const u64 = (v: bigint | number): bigint => BigInt.asUintN(64, BigInt(v));

function dv(buf: Uint8Array, size: number, what: string): DataView {
  if (buf.byteLength < size) throw new RangeError(`${what}: need ${size} bytes, got ${buf.byteLength}`);
  return new DataView(buf.buffer, buf.byteOffset, size);
}

/**
 * `struct gunyah_userspace_memory_region` (A: `gh_userspace_memory_region`), 32 bytes, no padding;
 * used by both `GH_VM_SET_USER_MEM_REGION` and `GH_VM_ANDROID_LEND_USER_MEM`.
 */
export interface AckUserMemoryRegion {
  /** @0 u32: A requires it unique per VM; B/C store it (label of shared parcels only). */
  label: number;
  /** @4 u32: only R/W/X (0x7) */
  flags: number;
  /** @8 u64 */
  guestPhysAddr: bigint;
  /** @16 u64 */
  memorySize: bigint;
  /** @24 u64 host virtual address */
  userspaceAddr: bigint;
}
export const USER_MEMORY_REGION = {
  label: 0,
  flags: 4,
  guestPhysAddr: 8,
  memorySize: 16,
  userspaceAddr: 24,
  SIZE: ACK_SIZEOF.gunyah_userspace_memory_region,
} as const;

export function encodeUserMemoryRegion(r: {
  label: number;
  flags: number;
  guestPhysAddr: bigint | number;
  memorySize: bigint | number;
  userspaceAddr: bigint | number;
}): Uint8Array {
  const out = new Uint8Array(USER_MEMORY_REGION.SIZE);
  const d = new DataView(out.buffer);
  d.setUint32(USER_MEMORY_REGION.label, r.label >>> 0, true);
  d.setUint32(USER_MEMORY_REGION.flags, r.flags >>> 0, true);
  d.setBigUint64(USER_MEMORY_REGION.guestPhysAddr, u64(r.guestPhysAddr), true);
  d.setBigUint64(USER_MEMORY_REGION.memorySize, u64(r.memorySize), true);
  d.setBigUint64(USER_MEMORY_REGION.userspaceAddr, u64(r.userspaceAddr), true);
  return out;
}
export function decodeUserMemoryRegion(buf: Uint8Array): AckUserMemoryRegion {
  const d = dv(buf, USER_MEMORY_REGION.SIZE, 'gunyah_userspace_memory_region');
  return {
    label: d.getUint32(USER_MEMORY_REGION.label, true),
    flags: d.getUint32(USER_MEMORY_REGION.flags, true),
    guestPhysAddr: d.getBigUint64(USER_MEMORY_REGION.guestPhysAddr, true),
    memorySize: d.getBigUint64(USER_MEMORY_REGION.memorySize, true),
    userspaceAddr: d.getBigUint64(USER_MEMORY_REGION.userspaceAddr, true),
  };
}

/**
 * The 16-byte `{u64 guest_phys_addr @0, u64 size @8}` shape of `gunyah_vm_dtb_config`,
 * `gunyah_vm_firmware_config` and `gunyah_address_range` (RECLAIM_REGION).
 */
export interface AckAddressRange {
  guestPhysAddr: bigint;
  size: bigint;
}
export const ADDRESS_RANGE = { guestPhysAddr: 0, size: 8, SIZE: ACK_SIZEOF.gunyah_address_range } as const;

export function encodeAddressRange(r: { guestPhysAddr: bigint | number; size: bigint | number }): Uint8Array {
  const out = new Uint8Array(ADDRESS_RANGE.SIZE);
  const d = new DataView(out.buffer);
  d.setBigUint64(ADDRESS_RANGE.guestPhysAddr, u64(r.guestPhysAddr), true);
  d.setBigUint64(ADDRESS_RANGE.size, u64(r.size), true);
  return out;
}
export function decodeAddressRange(buf: Uint8Array): AckAddressRange {
  const d = dv(buf, ADDRESS_RANGE.SIZE, 'gunyah_address_range');
  return { guestPhysAddr: d.getBigUint64(0, true), size: d.getBigUint64(8, true) };
}

/** `struct gunyah_map_cma_mem_args`, 40 bytes with 4 bytes of implicit padding after `label`. */
export interface AckMapCmaMemArgs {
  /** @0 u32 */
  label: number;
  /** @8 u64 */
  guestAddr: bigint;
  /** @16 u32: access (FORCE_LEND 0x10 lends, anything else shares) and R/W/X; not validated */
  flags: number;
  /** @20 u32 the CMA fd */
  guestMemFd: number;
  /** @24 u64 byte offset into the CMA fd */
  offset: bigint;
  /** @32 u64 */
  size: bigint;
}
export const MAP_CMA_MEM_ARGS = {
  label: 0,
  padding: 4,
  guestAddr: 8,
  flags: 16,
  guestMemFd: 20,
  offset: 24,
  size: 32,
  SIZE: ACK_SIZEOF.gunyah_map_cma_mem_args,
} as const;

export function encodeMapCmaMemArgs(a: {
  label: number;
  guestAddr: bigint | number;
  flags: number;
  guestMemFd: number;
  offset: bigint | number;
  size: bigint | number;
}): Uint8Array {
  const out = new Uint8Array(MAP_CMA_MEM_ARGS.SIZE);
  const d = new DataView(out.buffer);
  d.setUint32(MAP_CMA_MEM_ARGS.label, a.label >>> 0, true);
  d.setBigUint64(MAP_CMA_MEM_ARGS.guestAddr, u64(a.guestAddr), true);
  d.setUint32(MAP_CMA_MEM_ARGS.flags, a.flags >>> 0, true);
  d.setUint32(MAP_CMA_MEM_ARGS.guestMemFd, a.guestMemFd >>> 0, true);
  d.setBigUint64(MAP_CMA_MEM_ARGS.offset, u64(a.offset), true);
  d.setBigUint64(MAP_CMA_MEM_ARGS.size, u64(a.size), true);
  return out;
}
export function decodeMapCmaMemArgs(buf: Uint8Array): AckMapCmaMemArgs {
  const d = dv(buf, MAP_CMA_MEM_ARGS.SIZE, 'gunyah_map_cma_mem_args');
  return {
    label: d.getUint32(MAP_CMA_MEM_ARGS.label, true),
    guestAddr: d.getBigUint64(MAP_CMA_MEM_ARGS.guestAddr, true),
    flags: d.getUint32(MAP_CMA_MEM_ARGS.flags, true),
    guestMemFd: d.getUint32(MAP_CMA_MEM_ARGS.guestMemFd, true),
    offset: d.getBigUint64(MAP_CMA_MEM_ARGS.offset, true),
    size: d.getBigUint64(MAP_CMA_MEM_ARGS.size, true),
  };
}

/** `struct gunyah_auth_desc`, 16 bytes: {u32 type @0, u32 arg_size @4, u64 arg @8}. */
export const AUTH_DESC = { type: 0, argSize: 4, arg: 8, SIZE: ACK_SIZEOF.gunyah_auth_desc } as const;
/** `enum gunyah_auth_type` (K7; `GUNYAH_ANDROID_PVM_TYPE` = 0 only in crosvm's local header, K10). */
export const GUNYAH_AUTH_TYPE = { GUNYAH_ANDROID_PVM_TYPE: 0, GUNYAH_QCOM_TRUSTED_VM_TYPE: 1 } as const;

export function encodeAuthDesc(a: { type: number; argSize: number; arg: bigint | number }): Uint8Array {
  const out = new Uint8Array(AUTH_DESC.SIZE);
  const d = new DataView(out.buffer);
  d.setUint32(AUTH_DESC.type, a.type >>> 0, true);
  d.setUint32(AUTH_DESC.argSize, a.argSize >>> 0, true);
  d.setBigUint64(AUTH_DESC.arg, u64(a.arg), true);
  return out;
}

/** `struct gunyah_qtvm_auth_arg`, 24 bytes: {u16 vm_id @0, pad 2, u32 peripheral_id @4, u64 guest_phys_addr @8, u64 size @16}. */
export const QTVM_AUTH_ARG = { vmId: 0, peripheralId: 4, guestPhysAddr: 8, size: 16, SIZE: ACK_SIZEOF.gunyah_qtvm_auth_arg } as const;

export function encodeQtvmAuthArg(a: {
  vmId: number;
  peripheralId: number;
  guestPhysAddr: bigint | number;
  size: bigint | number;
}): Uint8Array {
  const out = new Uint8Array(QTVM_AUTH_ARG.SIZE);
  const d = new DataView(out.buffer);
  d.setUint16(QTVM_AUTH_ARG.vmId, a.vmId & 0xffff, true);
  d.setUint32(QTVM_AUTH_ARG.peripheralId, a.peripheralId >>> 0, true);
  d.setBigUint64(QTVM_AUTH_ARG.guestPhysAddr, u64(a.guestPhysAddr), true);
  d.setBigUint64(QTVM_AUTH_ARG.size, u64(a.size), true);
  return out;
}
