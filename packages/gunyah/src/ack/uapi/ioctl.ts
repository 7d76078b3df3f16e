/**
 * ioctl numbers of Gunyah's Android Common Kernel (ACK) uAPI, computed with `_IO`/`_IOW` from the
 * type letters `'G'` (0x47) and `'A'` (0x41) and the struct sizes of `structs.ts`.
 * Source: docs/gunyah-ack.md §2 (K1–K9); which generation handles which is in `generations.ts`.
 */
import { io, iow } from '../../uapi/ioctl.js';

/** `'G'`: the numbers ACK shares with the upstream series. */
export const ACK_IOCTL_TYPE_G = 0x47;
/** `'A'`: the Android-only numbers (b/268234781: "UAPI that won't be carried in kernel.org"). */
export const ACK_IOCTL_TYPE_A = 0x41;

/** Byte sizes of the ACK argument structs (LP64, docs/gunyah-ack.md §3). */
export const ACK_SIZEOF = {
  gunyah_userspace_memory_region: 32,
  gunyah_vm_dtb_config: 16,
  gunyah_vm_firmware_config: 16,
  gunyah_address_range: 16,
  gunyah_fn_desc: 16,
  gunyah_vm_boot_context: 16,
  gunyah_map_cma_mem_args: 40,
  gunyah_auth_desc: 16,
  gunyah_qtvm_auth_arg: 24,
  /** the upstream struct whose number MAP_MEM carries: ACK headers keep it, no handler reads it */
  gunyah_map_mem_args: 32,
} as const;

const G = ACK_IOCTL_TYPE_G;
const A = ACK_IOCTL_TYPE_A;
const S = ACK_SIZEOF;

/**
 * Every request number an ACK header defines, named as in the 6.12 line (generation A spells the
 * `GUNYAH_` ones `GH_`). Whether a generation *handles* one is a separate question (`generations.ts`).
 */
export const ACK_IOCTL = {
  /** /dev/gunyah; arg must be 0. */
  GH_CREATE_VM: io(G, 0x0),
  /** VM: share a host-VA range. */
  GH_VM_SET_USER_MEM_REGION: iow(G, 0x1, S.gunyah_userspace_memory_region),
  GH_VM_SET_DTB_CONFIG: iow(G, 0x2, S.gunyah_vm_dtb_config),
  GH_VM_START: io(G, 0x3),
  GH_VM_ADD_FUNCTION: iow(G, 0x4, S.gunyah_fn_desc),
  GH_VCPU_RUN: io(G, 0x5),
  GH_VCPU_MMAP_SIZE: io(G, 0x6),
  GH_VM_REMOVE_FUNCTION: iow(G, 0x7, S.gunyah_fn_desc),
  /** Upstream number; in B/C headers, but no VM ioctl case reads it: ENOTTY. */
  GUNYAH_VM_MAP_MEM: iow(G, 0x9, S.gunyah_map_mem_args),
  GUNYAH_VM_SET_BOOT_CONTEXT: iow(G, 0xa, S.gunyah_vm_boot_context),
  /** /dev/gunyah, generation A only: returns 0. (A header variant names 0x10 GH_ANDROID_CHECK_EXTENSION.) */
  GH_ANDROID_TENTATIVE_UAPI: io(A, 0x10),
  /** VM: lend a host-VA range. */
  GH_VM_ANDROID_LEND_USER_MEM: iow(A, 0x11, S.gunyah_userspace_memory_region),
  GH_VM_ANDROID_SET_FW_CONFIG: iow(A, 0x12, S.gunyah_vm_firmware_config),
  /** VM, generation C: take demand-paged pages of a GPA range back. */
  GH_VM_RECLAIM_REGION: iow(A, 0x13, S.gunyah_address_range),
  /** CMA pool misc device, generation C: returns a `[gunyah-cma]` fd. */
  GH_ANDROID_CREATE_CMA_MEM_FD: io(A, 0x14),
  GH_VM_ANDROID_MAP_CMA_MEM: iow(A, 0x15, S.gunyah_map_cma_mem_args),
  GH_VM_ANDROID_SET_AUTH_TYPE: iow(A, 0x16, S.gunyah_auth_desc),
  /** VM, newest generation C: `GH_CAP_VCPU_TIMER_WAKEUP` (0) → 1, anything else → 0. */
  GH_VM_CHECK_EXTENSION: io(A, 0x17),
} as const;

export type AckIoctlName = keyof typeof ACK_IOCTL;

/** The v17 number ACK does *not* have (`GUNYAH_CREATE_GUEST_MEM`): /dev/gunyah answers ENOTTY. */
export const V17_CREATE_GUEST_MEM = iow(G, 0x8, 64);

/** `GH_CAP_VCPU_TIMER_WAKEUP`, the one capability `GH_VM_CHECK_EXTENSION` knows. */
export const GH_CAP_VCPU_TIMER_WAKEUP = 0;

export const ackIoctlSyscall = (name: AckIoctlName): string => `ioctl(${name})`;
