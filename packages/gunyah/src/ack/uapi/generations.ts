/**
 * The three generations of the ACK Gunyah interface as profiles of one driver (docs/gunyah-ack.md
 * §1 and §9). The branch labels are an inference (from the vendor trees'
 * kernel versions), not read from `android.googlesource.com`.
 */
import type { AckIoctlName } from './ioctl.js';

export type AckGeneration = 'A' | 'B' | 'C';

export interface AckProfile {
  readonly generation: AckGeneration;
  /** Kernel line the generation is found in (inference, docs/gunyah-ack.md §1). */
  readonly line: string;
  /** ioctls the generation's driver handles; others in its header (or not) answer ENOTTY. */
  readonly handles: ReadonlySet<AckIoctlName>;
  /** A: `pin_user_pages_fast` of the whole region at ioctl time (K4). B/C: one page per guest fault. */
  readonly pinAtIoctl: boolean;
  /** A: a region label already used in the VM is EEXIST (K4). B/C: stored, not checked (K7). */
  readonly uniqueLabels: boolean;
  /** A: every region becomes one RM parcel at VM_START. B/C: only the DTB (config image) parcel. */
  readonly parcelPerRegion: boolean;
  /** B/C: demand paging and the `GUNYAH_VCPU_EXIT_PAGE_FAULT` (3) exit. A has neither. */
  readonly demandPaging: boolean;
  /**
   * Region, reclaim, CMA ioctls and vCPU run check that the caller's mm created the VM (EPERM).
   * A follows K4, which has the check on region ioctls (K1 lacks it; docs/gunyah-ack.md §10 says pick one).
   */
  readonly creatorCheckOnRun: boolean;
  /** Errno of VM_START when no binding holds the DTB: A EINVAL (no region overlaps, K4), B/C ENOENT (K7). */
  readonly dtbMissing: 'EINVAL' | 'ENOENT';
  /**
   * C (K7 `gunyah_vm_start`): `gunyah_vm_set_protected` looks the DTB's binding up *before* the
   * status becomes LOAD, so its ENOENT frees the VMID and leaves the VM startable. B (K5) has no
   * such step: its ENOENT comes from the DTB parcel after LOAD (un-startable, ENODEV). A: after LOAD.
   */
  readonly dtbBindingCheckedBeforeLoad: boolean;
  /**
   * Which bindings VM_START hands to the RM for demand paging (`VM_SET_DEMAND_PAGING`), never
   * updated later: B (K5 `gunyah_gup_setup_demand_paging`) the lend bindings; C (K7
   * `gunyah_setup_demand_paging`) the lend bindings of a protected VM, every binding of an
   * unprotected one; the firmware binding never. A: none (no demand paging).
   */
  readonly demandPagingSet: 'none' | 'lend' | 'lend-if-protected';
}

const common: AckIoctlName[] = [
  'GH_CREATE_VM',
  'GH_VM_SET_USER_MEM_REGION',
  'GH_VM_SET_DTB_CONFIG',
  'GH_VM_START',
  'GH_VM_ADD_FUNCTION',
  'GH_VCPU_RUN',
  'GH_VCPU_MMAP_SIZE',
  'GH_VM_REMOVE_FUNCTION',
  'GH_VM_ANDROID_LEND_USER_MEM',
  'GH_VM_ANDROID_SET_FW_CONFIG',
];

/** android14-6.1 (K1–K4), in its later header revision (with LEND 0x11 and FW_CONFIG 0x12, K1/K3). */
export const ACK_GENERATION_A: AckProfile = Object.freeze({
  generation: 'A',
  line: 'android14-6.1',
  handles: new Set<AckIoctlName>([...common, 'GH_ANDROID_TENTATIVE_UAPI']),
  pinAtIoctl: true,
  uniqueLabels: true,
  parcelPerRegion: true,
  demandPaging: false,
  creatorCheckOnRun: false,
  dtbMissing: 'EINVAL',
  dtbBindingCheckedBeforeLoad: false,
  demandPagingSet: 'none',
});

/** The 6.6 line (K5, K6 ack_bindings.rs): GUP bindings and demand paging, no 0x13–0x17. */
export const ACK_GENERATION_B: AckProfile = Object.freeze({
  generation: 'B',
  line: 'android15-6.6 (inference)',
  handles: new Set<AckIoctlName>([...common, 'GUNYAH_VM_SET_BOOT_CONTEXT']),
  pinAtIoctl: false,
  uniqueLabels: false,
  parcelPerRegion: false,
  demandPaging: true,
  creatorCheckOnRun: true,
  dtbMissing: 'ENOENT',
  dtbBindingCheckedBeforeLoad: false,
  demandPagingSet: 'lend',
});

/** The 6.12 line (K7 @ 2f10437, 6.12.23): B plus RECLAIM_REGION, CMA fds, auth and CHECK_EXTENSION. */
export const ACK_GENERATION_C: AckProfile = Object.freeze({
  generation: 'C',
  line: 'android16-6.12 (inference)',
  handles: new Set<AckIoctlName>([
    ...ACK_GENERATION_B.handles,
    'GH_VM_RECLAIM_REGION',
    'GH_ANDROID_CREATE_CMA_MEM_FD',
    'GH_VM_ANDROID_MAP_CMA_MEM',
    'GH_VM_ANDROID_SET_AUTH_TYPE',
    'GH_VM_CHECK_EXTENSION',
  ]),
  pinAtIoctl: false,
  uniqueLabels: false,
  parcelPerRegion: false,
  demandPaging: true,
  creatorCheckOnRun: true,
  dtbMissing: 'ENOENT',
  dtbBindingCheckedBeforeLoad: true,
  demandPagingSet: 'lend-if-protected',
});

export const ACK_GENERATIONS: Readonly<Record<AckGeneration, AckProfile>> = Object.freeze({
  A: ACK_GENERATION_A,
  B: ACK_GENERATION_B,
  C: ACK_GENERATION_C,
});
