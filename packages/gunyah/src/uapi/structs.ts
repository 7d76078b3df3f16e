/**
 * Byte-exact codecs for the v17 argument structs (little-endian, arm64 natural alignment).
 * Offsets are the kernel's; `structs.test.ts` pins every one of them.
 */
import { SIZEOF } from './ioctl.js';
import { GUNYAH_VCPU_EXIT } from './flags.js';

const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

function view(buf: Uint8Array, size: number, what: string): DataView {
  if (buf.byteLength < size) throw new RangeError(`${what}: need ${size} bytes, got ${buf.byteLength}`);
  return new DataView(buf.buffer, buf.byteOffset, size);
}

/** `struct gunyah_create_mem_args` — note **flags before size** (KVM's struct is size, flags). */
export interface GunyahCreateMemArgs {
  /** @0 u64 `GHMF_*` */
  flags: bigint;
  /** @8 u64 file size in bytes */
  size: bigint;
  /** @16 u64[6]; the v17 code never checks it */
  reserved?: readonly bigint[];
}

export const CREATE_MEM_ARGS = { flags: 0, size: 8, reserved: 16, SIZE: SIZEOF.gunyah_create_mem_args } as const;

export function encodeCreateMemArgs(a: GunyahCreateMemArgs): Uint8Array {
  const out = new Uint8Array(CREATE_MEM_ARGS.SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(CREATE_MEM_ARGS.flags, u64(a.flags), true);
  dv.setBigUint64(CREATE_MEM_ARGS.size, u64(a.size), true);
  (a.reserved ?? []).slice(0, 6).forEach((r, i) => dv.setBigUint64(CREATE_MEM_ARGS.reserved + 8 * i, u64(r), true));
  return out;
}

export function decodeCreateMemArgs(buf: Uint8Array): Required<GunyahCreateMemArgs> {
  const dv = view(buf, CREATE_MEM_ARGS.SIZE, 'gunyah_create_mem_args');
  return {
    flags: dv.getBigUint64(CREATE_MEM_ARGS.flags, true),
    size: dv.getBigUint64(CREATE_MEM_ARGS.size, true),
    reserved: Array.from({ length: 6 }, (_, i) => dv.getBigUint64(CREATE_MEM_ARGS.reserved + 8 * i, true)),
  };
}

/** `struct gunyah_map_mem_args`, 32 bytes. */
export interface GunyahMapMemArgs {
  /** @0 u64 guest physical address (IPA) */
  guestAddr: bigint;
  /** @8 u32 `gunyah_map_flags` */
  flags: number;
  /** @12 u32 fd from GUNYAH_CREATE_GUEST_MEM */
  guestMemFd: number;
  /** @16 u64 byte offset into the file */
  offset: bigint;
  /** @24 u64 byte length */
  size: bigint;
}

export const MAP_MEM_ARGS = { guestAddr: 0, flags: 8, guestMemFd: 12, offset: 16, size: 24, SIZE: SIZEOF.gunyah_map_mem_args } as const;

export function encodeMapMemArgs(a: GunyahMapMemArgs): Uint8Array {
  const out = new Uint8Array(MAP_MEM_ARGS.SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(MAP_MEM_ARGS.guestAddr, u64(a.guestAddr), true);
  dv.setUint32(MAP_MEM_ARGS.flags, a.flags >>> 0, true);
  dv.setUint32(MAP_MEM_ARGS.guestMemFd, a.guestMemFd >>> 0, true);
  dv.setBigUint64(MAP_MEM_ARGS.offset, u64(a.offset), true);
  dv.setBigUint64(MAP_MEM_ARGS.size, u64(a.size), true);
  return out;
}

export function decodeMapMemArgs(buf: Uint8Array): GunyahMapMemArgs {
  const dv = view(buf, MAP_MEM_ARGS.SIZE, 'gunyah_map_mem_args');
  return {
    guestAddr: dv.getBigUint64(MAP_MEM_ARGS.guestAddr, true),
    flags: dv.getUint32(MAP_MEM_ARGS.flags, true),
    guestMemFd: dv.getUint32(MAP_MEM_ARGS.guestMemFd, true),
    offset: dv.getBigUint64(MAP_MEM_ARGS.offset, true),
    size: dv.getBigUint64(MAP_MEM_ARGS.size, true),
  };
}

/** `struct gunyah_vm_dtb_config`, 16 bytes. */
export interface GunyahVmDtbConfig {
  guestPhysAddr: bigint;
  size: bigint;
}
export const DTB_CONFIG = { guestPhysAddr: 0, size: 8, SIZE: SIZEOF.gunyah_vm_dtb_config } as const;

export function encodeDtbConfig(a: GunyahVmDtbConfig): Uint8Array {
  const out = new Uint8Array(DTB_CONFIG.SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(DTB_CONFIG.guestPhysAddr, u64(a.guestPhysAddr), true);
  dv.setBigUint64(DTB_CONFIG.size, u64(a.size), true);
  return out;
}
export function decodeDtbConfig(buf: Uint8Array): GunyahVmDtbConfig {
  const dv = view(buf, DTB_CONFIG.SIZE, 'gunyah_vm_dtb_config');
  return { guestPhysAddr: dv.getBigUint64(0, true), size: dv.getBigUint64(8, true) };
}

/**
 * `struct gunyah_vcpu_run`, 40 bytes, mmapped from the vCPU fd:
 * u8 immediate_exit @0, u8 padding[7], u32 exit_reason @8, union @16.
 */
export const VCPU_RUN = {
  immediateExit: 0,
  exitReason: 8,
  union: 16,
  pageFault: { physAddr: 16, attempt: 24, resumeAction: 28 },
  mmio: { physAddr: 16, data: 24, len: 32, isWrite: 36, resumeAction: 37 },
  SIZE: SIZEOF.gunyah_vcpu_run,
} as const;

/** The PAGE_FAULT arm of `gunyah_vcpu_run`. */
export interface GunyahPageFaultExit {
  exitReason: typeof GUNYAH_VCPU_EXIT.PAGE_FAULT;
  immediateExit: number;
  /** guest physical address of the fault */
  physAddr: bigint;
  /** negative errno the kernel hit resolving the fault itself (-ENOENT, -EPERM, -ENOMEM…) */
  attempt: number;
  /** what the kernel does on the next RUN: 0 HANDLED, 1 FAULT (inject), 2 RETRY */
  resumeAction: number;
}

export function encodeVcpuRunPageFault(e: Omit<GunyahPageFaultExit, 'exitReason'>): Uint8Array {
  const out = new Uint8Array(VCPU_RUN.SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint8(VCPU_RUN.immediateExit, e.immediateExit);
  dv.setUint32(VCPU_RUN.exitReason, GUNYAH_VCPU_EXIT.PAGE_FAULT, true);
  dv.setBigUint64(VCPU_RUN.pageFault.physAddr, u64(e.physAddr), true);
  dv.setInt32(VCPU_RUN.pageFault.attempt, e.attempt, true);
  dv.setUint8(VCPU_RUN.pageFault.resumeAction, e.resumeAction);
  return out;
}

/** Decodes a run block whose exit_reason is PAGE_FAULT; throws on another exit reason. */
export function decodeVcpuRunPageFault(buf: Uint8Array): GunyahPageFaultExit {
  const dv = view(buf, VCPU_RUN.SIZE, 'gunyah_vcpu_run');
  const reason = dv.getUint32(VCPU_RUN.exitReason, true);
  if (reason !== GUNYAH_VCPU_EXIT.PAGE_FAULT) throw new RangeError(`exit_reason ${reason} is not PAGE_FAULT`);
  return {
    exitReason: GUNYAH_VCPU_EXIT.PAGE_FAULT,
    immediateExit: dv.getUint8(VCPU_RUN.immediateExit),
    physAddr: dv.getBigUint64(VCPU_RUN.pageFault.physAddr, true),
    attempt: dv.getInt32(VCPU_RUN.pageFault.attempt, true),
    resumeAction: dv.getUint8(VCPU_RUN.pageFault.resumeAction),
  };
}

/** Sets the page-fault `resume_action` in a run block (what a VMM writes before the next RUN). */
export function setPageFaultResumeAction(buf: Uint8Array, action: number): void {
  view(buf, VCPU_RUN.SIZE, 'gunyah_vcpu_run').setUint8(VCPU_RUN.pageFault.resumeAction, action);
}
