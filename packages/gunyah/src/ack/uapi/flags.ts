/**
 * ACK flag values (docs/gunyah-ack.md §3.2). Unlike v17, lend or share of a user-memory
 * region is chosen by *which ioctl* is called, never by a flag; only the CMA ioctl reads an access
 * value, and there `GUNYAH_MEM_FORCE_LEND` (0x10) lends and anything else — DEFAULT (0) included —
 * shares. Note the clash with v17, where 0x10 is `GUNYAH_MEM_ALLOW_READ`.
 */

/** Generation A (`include/uapi/linux/gunyah.h` of android14-6.1, K1): region flags. */
export const GH_MEM_FLAGS_A = Object.freeze({
  GH_MEM_ALLOW_READ: 1 << 0,
  GH_MEM_ALLOW_WRITE: 1 << 1,
  GH_MEM_ALLOW_EXEC: 1 << 2,
});

/** Generations B/C: `enum gunyah_map_flags` of the ACK header (K6 ack_bindings.rs, K7). */
export const ACK_MAP_FLAGS = Object.freeze({
  GUNYAH_MEM_ALLOW_READ: 0x1,
  GUNYAH_MEM_ALLOW_WRITE: 0x2,
  GUNYAH_MEM_ALLOW_EXEC: 0x4,
  GUNYAH_MEM_ALLOW_RWX: 0x7,
  /** the kernel-doc calls it GUNYAH_MEM_DEFAULT_SHARE; for CMA it shares */
  GUNYAH_MEM_DEFAULT_ACCESS: 0x00,
  GUNYAH_MEM_FORCE_LEND: 0x10,
  GUNYAH_MEM_FORCE_SHARE: 0x20,
  /** a `#define`, not an enumerator */
  GUNYAH_MEM_ACCESS_MASK: 0x70,
  /** only meaningful to the unhandled MAP_MEM */
  GUNYAH_MEM_UNMAP: 0x100,
});

/** The only bits a region ioctl accepts; any other bit is EINVAL ("reserved for future use"). */
export const ACK_REGION_FLAGS_ALLOWED = 0x7;

/** Guest rights of a region or CMA binding (the R/W/X bits, same in every generation). */
export interface AckRights {
  read: boolean;
  write: boolean;
  exec: boolean;
}

export const decodeAckRights = (flags: number): AckRights => ({
  read: (flags & ACK_MAP_FLAGS.GUNYAH_MEM_ALLOW_READ) !== 0,
  write: (flags & ACK_MAP_FLAGS.GUNYAH_MEM_ALLOW_WRITE) !== 0,
  exec: (flags & ACK_MAP_FLAGS.GUNYAH_MEM_ALLOW_EXEC) !== 0,
});

/** RM ACL rights of a guest entry: `GUNYAH_RM_ACL_X` BIT(0), `W` BIT(1), `R` BIT(2) (K7, K11). */
export const rmRights = (r: AckRights): number => (r.read ? 4 : 0) | (r.write ? 2 : 0) | (r.exec ? 1 : 0);

/**
 * The share type `GH_VM_ANDROID_MAP_CMA_MEM` records: LEND iff FORCE_LEND is set; anything else,
 * including DEFAULT (0) and FORCE_SHARE, is SHARE (K7 vm_mgr_cma_mem.c). `flags` is not validated.
 */
export const cmaShareType = (flags: number): 'lend' | 'share' => ((flags & ACK_MAP_FLAGS.GUNYAH_MEM_FORCE_LEND) !== 0 ? 'lend' : 'share');
