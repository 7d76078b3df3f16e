/**
 * Gunyah v17 ioctl numbers, computed with the asm-generic `_IOC` encoding used on arm64:
 * `dir << 30 | size << 16 | type << 8 | nr`, with `_IOC_WRITE = 1`.
 *
 * All Gunyah ioctls use type `'G'` (0x47). Number 0x1 is unused upstream (ACK reuses it for
 * `GH_VM_SET_USER_MEM_REGION`).
 */
export const GUNYAH_IOCTL_TYPE = 0x47;

const IOC_NONE = 0;
const IOC_WRITE = 1;

/** `_IOC(dir, type, nr, size)` as an unsigned 32-bit number. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
/** `_IO(type, nr)`. */
export const io = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
/** `_IOW(type, nr, size)`. */
export const iow = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);

/** Byte sizes of the v17 argument structs. */
export const SIZEOF = {
  gunyah_create_mem_args: 64,
  gunyah_map_mem_args: 32,
  gunyah_vm_dtb_config: 16,
  gunyah_fn_desc: 16,
  gunyah_vm_boot_context: 16,
  gunyah_vcpu_run: 40,
} as const;

const G = GUNYAH_IOCTL_TYPE;

/** v17 ioctl request numbers (docs/gunyah-v17.md §1.2). */
export const GUNYAH_IOCTL = {
  /** on /dev/gunyah; returns a VM fd. */
  GUNYAH_CREATE_VM: io(G, 0x0),
  GUNYAH_VM_SET_DTB_CONFIG: iow(G, 0x2, SIZEOF.gunyah_vm_dtb_config),
  GUNYAH_VM_START: io(G, 0x3),
  GUNYAH_VM_ADD_FUNCTION: iow(G, 0x4, SIZEOF.gunyah_fn_desc),
  GUNYAH_VCPU_RUN: io(G, 0x5),
  GUNYAH_VCPU_MMAP_SIZE: io(G, 0x6),
  GUNYAH_VM_REMOVE_FUNCTION: iow(G, 0x7, SIZEOF.gunyah_fn_desc),
  /** on /dev/gunyah (not on a VM fd); returns a guest-memory fd. */
  GUNYAH_CREATE_GUEST_MEM: iow(G, 0x8, SIZEOF.gunyah_create_mem_args),
  /** bind, or with GUNYAH_MEM_UNMAP unbind. */
  GUNYAH_VM_MAP_MEM: iow(G, 0x9, SIZEOF.gunyah_map_mem_args),
  GUNYAH_VM_SET_BOOT_CONTEXT: iow(G, 0xa, SIZEOF.gunyah_vm_boot_context),
} as const;

export type GunyahIoctlName = keyof typeof GUNYAH_IOCTL;

/** The `syscall` string errors carry, e.g. `'ioctl(GUNYAH_VM_MAP_MEM)'`. */
export const ioctlSyscall = (name: GunyahIoctlName): string => `ioctl(${name})`;
