/**
 * The v17 VM-lifecycle uAPI beyond memory: VM functions (`GUNYAH_VM_ADD_FUNCTION` /
 * `GUNYAH_VM_REMOVE_FUNCTION`), the boot context, and the MMIO and STATUS arms of
 * `struct gunyah_vcpu_run`. Values and layouts: v17 15/35 "virt: gunyah: Add proxy-scheduled vCPUs"
 * and 30/35 "virt: gunyah: Add ioctl to set boot context" (`include/uapi/linux/gunyah.h`), the same
 * as Qualcomm's bindgen output (`gunyah-test-vmm` `gunyah-bindings/src/bindings.rs`).
 */
import { GUNYAH_VCPU_EXIT } from './flags.js';
import { VCPU_RUN } from './structs.js';

/** `enum gunyah_fn_type`. v17 registers VCPU (15/35); IRQFD and IOEVENTFD come with their own modules. */
export const GUNYAH_FN = { VCPU: 1, IRQFD: 2, IOEVENTFD: 3 } as const;
/** `GUNYAH_FN_MAX_ARG_SIZE`: a larger `arg_size` is EINVAL. */
export const GUNYAH_FN_MAX_ARG_SIZE = 256;

/** `struct gunyah_fn_desc`, 16 bytes: u32 type @0, u32 arg_size @4, u64 arg (user pointer) @8. */
export interface GunyahFnDesc {
  type: number;
  argSize: number;
  /** user-space address of the function's argument struct */
  arg: bigint;
}
export const FN_DESC = { type: 0, argSize: 4, arg: 8, SIZE: 16 } as const;

export function encodeFnDesc(d: GunyahFnDesc): Uint8Array {
  const out = new Uint8Array(FN_DESC.SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(FN_DESC.type, d.type >>> 0, true);
  dv.setUint32(FN_DESC.argSize, d.argSize >>> 0, true);
  dv.setBigUint64(FN_DESC.arg, BigInt.asUintN(64, d.arg), true);
  return out;
}

export function decodeFnDesc(buf: Uint8Array): GunyahFnDesc {
  const dv = new DataView(buf.buffer, buf.byteOffset, FN_DESC.SIZE);
  return { type: dv.getUint32(FN_DESC.type, true), argSize: dv.getUint32(FN_DESC.argSize, true), arg: dv.getBigUint64(FN_DESC.arg, true) };
}

/** `struct gunyah_fn_vcpu_arg`: u32 id (4 bytes; the vCPU's `arg_size` must be exactly this). */
export const SIZEOF_FN_VCPU_ARG = 4;
export function encodeFnVcpuArg(id: number): Uint8Array {
  const out = new Uint8Array(SIZEOF_FN_VCPU_ARG);
  new DataView(out.buffer).setUint32(0, id >>> 0, true);
  return out;
}

/** `enum gunyah_vm_boot_context_reg`. */
export const REG_SET = { X: 0, PC: 1, SP: 2 } as const;
/** `GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT`. */
export const GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT = 8;
/** `GUNYAH_VM_BOOT_CONTEXT_REG(reg, idx)`. */
export const bootContextReg = (set: number, idx: number): number =>
  (((set & 0xff) << GUNYAH_VM_BOOT_CONTEXT_REG_SHIFT) | (idx & 0xff)) >>> 0;

/** `struct gunyah_vm_boot_context`, 16 bytes: u32 reg @0, u32 reserved @4 (never checked), u64 value @8. */
export interface GunyahVmBootContext {
  reg: number;
  reserved?: number;
  value: bigint;
}
export const BOOT_CONTEXT = { reg: 0, reserved: 4, value: 8, SIZE: 16 } as const;

export function encodeBootContext(b: GunyahVmBootContext): Uint8Array {
  const out = new Uint8Array(BOOT_CONTEXT.SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(BOOT_CONTEXT.reg, b.reg >>> 0, true);
  dv.setUint32(BOOT_CONTEXT.reserved, (b.reserved ?? 0) >>> 0, true);
  dv.setBigUint64(BOOT_CONTEXT.value, BigInt.asUintN(64, b.value), true);
  return out;
}

export function decodeBootContext(buf: Uint8Array): Required<GunyahVmBootContext> {
  const dv = new DataView(buf.buffer, buf.byteOffset, BOOT_CONTEXT.SIZE);
  return {
    reg: dv.getUint32(BOOT_CONTEXT.reg, true),
    reserved: dv.getUint32(BOOT_CONTEXT.reserved, true),
    value: dv.getBigUint64(BOOT_CONTEXT.value, true),
  };
}

/** `enum gunyah_vm_status` (the STATUS exit's `status.status`). */
export const GUNYAH_VM_STATUS = { LOAD_FAILED: 1, EXITED: 2, CRASHED: 3 } as const;

/**
 * RM VM_EXITED `exit_type` values, passed through uninterpreted into `status.exit_info.type`.
 * v17 does not list them; these are the RM's numbers as Qualcomm's older RM driver header spells
 * them (`GH_RM_VM_EXIT_TYPE_*`: VM_EXIT 0, SYSTEM_OFF 1, SYSTEM_RESET 2, …).
 */
export const RM_VM_EXIT_TYPE = {
  VM_EXIT: 0,
  SYSTEM_OFF: 1,
  SYSTEM_RESET: 2,
  SYSTEM_RESET2: 3,
  WDT_BITE: 4,
  HYP_ERROR: 5,
  ASYNC_EXT_ABORT: 6,
  VM_STOP_FORCED: 7,
} as const;

/** `GUNYAH_VM_MAX_EXIT_REASON_SIZE`. */
export const GUNYAH_VM_MAX_EXIT_REASON_SIZE = 8;

/** Offsets of the MMIO and STATUS arms of `struct gunyah_vcpu_run` (the union starts @16). */
export const VCPU_RUN_ARMS = {
  mmio: VCPU_RUN.mmio,
  status: { status: 16, exitType: 20, exitPadding: 22, reasonSize: 24, reason: 28 },
} as const;

/** The MMIO arm. */
export interface GunyahMmioExit {
  exitReason: typeof GUNYAH_VCPU_EXIT.MMIO;
  physAddr: bigint;
  data: Uint8Array;
  len: number;
  isWrite: number;
  resumeAction: number;
}

/** The STATUS arm. */
export interface GunyahStatusExit {
  exitReason: typeof GUNYAH_VCPU_EXIT.STATUS;
  status: number;
  exitInfo: { type: number; reasonSize: number; reason: Uint8Array };
}

const dvOf = (buf: Uint8Array): DataView => {
  if (buf.byteLength < VCPU_RUN.SIZE) throw new RangeError(`gunyah_vcpu_run: need ${VCPU_RUN.SIZE} bytes, got ${buf.byteLength}`);
  return new DataView(buf.buffer, buf.byteOffset, VCPU_RUN.SIZE);
};

export function decodeVcpuRunMmio(buf: Uint8Array): GunyahMmioExit {
  const dv = dvOf(buf);
  const reason = dv.getUint32(VCPU_RUN.exitReason, true);
  if (reason !== GUNYAH_VCPU_EXIT.MMIO) throw new RangeError(`exit_reason ${reason} is not MMIO`);
  const m = VCPU_RUN.mmio;
  return {
    exitReason: GUNYAH_VCPU_EXIT.MMIO,
    physAddr: dv.getBigUint64(m.physAddr, true),
    data: buf.slice(m.data, m.data + 8),
    len: dv.getUint32(m.len, true),
    isWrite: dv.getUint8(m.isWrite),
    resumeAction: dv.getUint8(m.resumeAction),
  };
}

export function decodeVcpuRunStatus(buf: Uint8Array): GunyahStatusExit {
  const dv = dvOf(buf);
  const reason = dv.getUint32(VCPU_RUN.exitReason, true);
  if (reason !== GUNYAH_VCPU_EXIT.STATUS) throw new RangeError(`exit_reason ${reason} is not STATUS`);
  const s = VCPU_RUN_ARMS.status;
  return {
    exitReason: GUNYAH_VCPU_EXIT.STATUS,
    status: dv.getUint32(s.status, true),
    exitInfo: {
      type: dv.getUint16(s.exitType, true),
      reasonSize: dv.getUint32(s.reasonSize, true),
      reason: buf.slice(s.reason, s.reason + GUNYAH_VM_MAX_EXIT_REASON_SIZE),
    },
  };
}

/** What a VMM writes before the next RUN after an MMIO exit: `mmio.resume_action` and, for reads, `mmio.data`. */
export function setMmioResume(buf: Uint8Array, action: number, data?: Uint8Array): void {
  const dv = dvOf(buf);
  dv.setUint8(VCPU_RUN.mmio.resumeAction, action);
  if (data) buf.set(data.subarray(0, 8), VCPU_RUN.mmio.data);
}
