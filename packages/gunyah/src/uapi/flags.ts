/**
 * Gunyah v17 flag values. `GUNYAH_VM_MAP_MEM` keeps the access value in bits 0-2 and the guest
 * rights in bits 4-6; code above the uAPI works on {@link MapFlags}. The Android Common Kernel has
 * no `MAP_MEM` handler at all: its flags are a different uAPI, in `../ack/uapi/flags.ts`.
 */

/** `enum gunyah_mem_flags` (GUNYAH_CREATE_GUEST_MEM). */
export const GHMF_CLOEXEC = 1n << 0n;
/** Folios may be 2 MiB (PMD THP); bindings then need 2 MiB alignment. */
export const GHMF_ALLOW_HUGEPAGE = 1n << 1n;
export const GHMF_KNOWN = GHMF_CLOEXEC | GHMF_ALLOW_HUGEPAGE;

/** Access values (the ACCESS_MASK field), layout-independent meaning. */
export type MapAccess = 'default' | 'lend' | 'share';

/** One bit layout of `enum gunyah_map_flags`. */
export interface MapFlagLayout {
  readonly name: 'v17';
  readonly GUNYAH_MEM_DEFAULT_ACCESS: number;
  readonly GUNYAH_MEM_FORCE_LEND: number;
  readonly GUNYAH_MEM_FORCE_SHARE: number;
  readonly GUNYAH_MEM_ACCESS_MASK: number;
  readonly GUNYAH_MEM_ALLOW_READ: number;
  readonly GUNYAH_MEM_ALLOW_WRITE: number;
  readonly GUNYAH_MEM_ALLOW_EXEC: number;
  readonly GUNYAH_MEM_ALLOW_RWX: number;
  readonly GUNYAH_MEM_UNMAP: number;
}

/** Upstream v17 (`include/uapi/linux/gunyah.h` of the v17 series). */
export const MAP_FLAGS_V17: MapFlagLayout = Object.freeze({
  name: 'v17',
  GUNYAH_MEM_DEFAULT_ACCESS: 0,
  GUNYAH_MEM_FORCE_LEND: 1,
  GUNYAH_MEM_FORCE_SHARE: 2,
  GUNYAH_MEM_ACCESS_MASK: 0x7,
  GUNYAH_MEM_ALLOW_READ: 1 << 4,
  GUNYAH_MEM_ALLOW_WRITE: 1 << 5,
  GUNYAH_MEM_ALLOW_EXEC: 1 << 6,
  GUNYAH_MEM_ALLOW_RWX: 0x70,
  GUNYAH_MEM_UNMAP: 1 << 8,
});

/** Layout-independent view of a `gunyah_map_mem_args.flags` word. */
export interface MapFlags {
  access: MapAccess;
  read: boolean;
  write: boolean;
  exec: boolean;
  unmap: boolean;
}

/** Result of {@link decodeMapFlags}: the view, or why the kernel would answer EINVAL. */
export type DecodedMapFlags = { ok: true; flags: MapFlags } | { ok: false; reason: 'unknown-bits' | 'no-rights' | 'bad-access' };

/**
 * Decodes a flags word in the kernel's order of checks: unknown bits, then "no R/W/X at all",
 * then an access value other than 0/1/2 (all three are EINVAL in `gunyah_gmem_modify_mapping`).
 */
export function decodeMapFlags(raw: number, layout: MapFlagLayout = MAP_FLAGS_V17): DecodedMapFlags {
  const L = layout;
  const known = L.GUNYAH_MEM_ALLOW_RWX | L.GUNYAH_MEM_UNMAP | L.GUNYAH_MEM_ACCESS_MASK;
  if ((raw & ~known) >>> 0 !== 0) return { ok: false, reason: 'unknown-bits' };
  if ((raw & L.GUNYAH_MEM_ALLOW_RWX) === 0) return { ok: false, reason: 'no-rights' };
  const a = raw & L.GUNYAH_MEM_ACCESS_MASK;
  let access: MapAccess;
  if (a === L.GUNYAH_MEM_DEFAULT_ACCESS) access = 'default';
  else if (a === L.GUNYAH_MEM_FORCE_LEND) access = 'lend';
  else if (a === L.GUNYAH_MEM_FORCE_SHARE) access = 'share';
  else return { ok: false, reason: 'bad-access' };
  return {
    ok: true,
    flags: {
      access,
      read: (raw & L.GUNYAH_MEM_ALLOW_READ) !== 0,
      write: (raw & L.GUNYAH_MEM_ALLOW_WRITE) !== 0,
      exec: (raw & L.GUNYAH_MEM_ALLOW_EXEC) !== 0,
      unmap: (raw & L.GUNYAH_MEM_UNMAP) !== 0,
    },
  };
}

/** Encodes a {@link MapFlags} view into a raw flags word of `layout`. */
export function encodeMapFlags(f: Partial<MapFlags>, layout: MapFlagLayout = MAP_FLAGS_V17): number {
  const L = layout;
  const access =
    f.access === 'lend' ? L.GUNYAH_MEM_FORCE_LEND : f.access === 'share' ? L.GUNYAH_MEM_FORCE_SHARE : L.GUNYAH_MEM_DEFAULT_ACCESS;
  return (
    access |
    (f.read ? L.GUNYAH_MEM_ALLOW_READ : 0) |
    (f.write ? L.GUNYAH_MEM_ALLOW_WRITE : 0) |
    (f.exec ? L.GUNYAH_MEM_ALLOW_EXEC : 0) |
    (f.unmap ? L.GUNYAH_MEM_UNMAP : 0)
  );
}

/**
 * Whether a binding lends. DEFAULT_ACCESS counts as lend: the v17 code says "RM requires all VMs
 * to be protected" even though the header comment calls value 0 `GUNYAH_MEM_DEFAULT_SHARE`.
 */
export const isLend = (access: MapAccess): boolean => access !== 'share';

/** fallocate(2) mode bits. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** `gunyah_vcpu_run.exit_reason` values. */
export const GUNYAH_VCPU_EXIT = { UNKNOWN: 0, MMIO: 1, STATUS: 2, PAGE_FAULT: 3 } as const;
export const GUNYAH_VCPU_EXIT_PAGE_FAULT = GUNYAH_VCPU_EXIT.PAGE_FAULT;

/** `resume_action` values of the MMIO and PAGE_FAULT exits. */
export const GUNYAH_VCPU_RESUME = { HANDLED: 0, FAULT: 1, RETRY: 2 } as const;
export type ResumeAction = 'handled' | 'fault' | 'retry';
export const RESUME_ACTION_VALUE: Record<ResumeAction, number> = { handled: 0, fault: 1, retry: 2 };

/** `gunyah_fn_type` of ADD_FUNCTION; only the vCPU matters here. */
export const GUNYAH_FN_VCPU = 1;
