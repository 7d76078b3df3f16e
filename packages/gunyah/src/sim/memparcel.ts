/**
 * The Resource Manager's memory-parcel state machine (docs/gunyah-v17.md §2.2), as pure logic.
 *
 * In v17 Linux only the DTB range goes through a parcel (lent or shared at VM_START); the rest of
 * guest memory is demand paged. The RM enforces:
 * - SHARE needs the owner in the ACL plus ≥1 borrower; LEND forbids the owner; DONATE exactly one
 *   entry (Linux never donates, so DONATE is not modelled);
 * - INIT (APPEND pending) → SHARING (finalized) → SHARED (≥1 borrower accepted);
 * - RELEASE by a borrower drops `shareCount`; at 0 the parcel is SHARING again;
 * - RECLAIM (owner only) is refused with MEM_INUSE while SHARED, else deletes the parcel;
 * - VM reset releases every parcel that VM accepted.
 *
 * RM error codes reach Linux callers through `gunyah_rm_error_remap` ({@link rmErrno}); note that
 * MEM_INUSE becomes **EINVAL**, not EBUSY.
 */
import type { ErrnoCode } from '@guestmem/core';

export const RM_ERROR = {
  OK: 0x0,
  NOMEM: 0x1,
  NORESOURCE: 0x2,
  DENIED: 0x3,
  MSG_INVALID: 0x4,
  BUSY: 0x5,
  ARGUMENT_INVALID: 0x6,
  HANDLE_INVALID: 0x7,
  VALIDATE_FAILED: 0x8,
  MAP_FAILED: 0x9,
  MEM_INVALID: 0xa,
  MEM_INUSE: 0xb,
  MEM_RELEASED: 0xc,
  VMID_INVALID: 0xd,
  VM_STATE: 0x14,
  UNIMPLEMENTED: 0xffffffff,
} as const;
export type RmErrorName = keyof typeof RM_ERROR;

/** RM RPC ids (subset used by the memparcel model). */
export const RM_RPC = {
  MEM_DONATE: 0x51000010,
  MEM_ACCEPT: 0x51000011,
  MEM_LEND: 0x51000012,
  MEM_SHARE: 0x51000013,
  MEM_RELEASE: 0x51000014,
  MEM_RECLAIM: 0x51000015,
  MEM_NOTIFY: 0x51000017,
  MEM_APPEND: 0x51000018,
  VM_SET_DEMAND_PAGING: 0x56000033,
  VM_SET_ADDRESS_LAYOUT: 0x56000034,
} as const;

/** `gunyah_rm_error_remap`: RM error → Linux errno. (The kernel's EBADMSG for unknown codes cannot occur: the model only produces known codes.) */
export function rmErrno(e: RmErrorName): ErrnoCode {
  switch (e) {
    case 'OK':
      throw new RangeError('RM OK is not an error');
    case 'UNIMPLEMENTED':
      return 'EOPNOTSUPP';
    case 'NOMEM':
      return 'ENOMEM';
    case 'NORESOURCE':
      return 'ENODEV';
    case 'DENIED':
      return 'EPERM';
    case 'BUSY':
      return 'EBUSY';
    default:
      return 'EINVAL'; // INVALID/ARGUMENT/HANDLE/VALIDATE/MAP/MEM_INVALID/MEM_INUSE/MEM_RELEASED/VMID…
  }
}

export type ParcelState = 'INIT' | 'SHARING' | 'SHARED';
export type ParcelKind = 'lend' | 'share';

/** ACL entry: VM id and rights (X=1, W=2, R=4). */
export interface AclEntry {
  readonly vmid: number;
  readonly rights: number;
}
/** SGL entry: an IPA range of the owner. */
export interface SglEntry {
  readonly ipa: bigint;
  readonly size: bigint;
}

export const RM_MAX_LIST_ENTRIES = 512;
export const RM_MAX_PARCELS_PER_VM = 64;

export interface MemParcel {
  readonly handle: number;
  readonly owner: number;
  readonly kind: ParcelKind;
  readonly acl: readonly AclEntry[];
  readonly sgl: SglEntry[];
  state: ParcelState;
  readonly accepted: Set<number>;
  /** Whether create asked for sanitization (Linux v17 never does). */
  readonly sanitize: boolean;
}

export type RmResult<T> = { ok: true; value: T } | { ok: false; error: RmErrorName };
const rmOk = <T>(value: T): RmResult<T> => ({ ok: true, value });
const rmNo = <T>(error: RmErrorName): RmResult<T> => ({ ok: false, error });

/** The RM's parcel table. One instance per simulated Gunyah device. */
export class MemParcelTable {
  private readonly parcels = new Map<number, MemParcel>();
  private nextHandle = 1;

  get size(): number {
    return this.parcels.size;
  }
  get(handle: number): MemParcel | undefined {
    return this.parcels.get(handle);
  }
  all(): MemParcel[] {
    return [...this.parcels.values()];
  }

  /** MEM_LEND / MEM_SHARE. `appendPending` models the APPEND flag (more SGL entries to come → INIT). */
  create(req: {
    owner: number;
    kind: ParcelKind;
    acl: readonly AclEntry[];
    sgl: readonly SglEntry[];
    appendPending?: boolean;
    sanitize?: boolean;
  }): RmResult<number> {
    const { owner, kind, acl, sgl } = req;
    if (acl.length === 0 || acl.length > RM_MAX_LIST_ENTRIES || sgl.length > RM_MAX_LIST_ENTRIES) return rmNo('ARGUMENT_INVALID');
    const ownerIn = acl.some((e) => e.vmid === owner);
    if (kind === 'share' && (!ownerIn || acl.length < 2)) return rmNo('ARGUMENT_INVALID');
    if (kind === 'lend' && ownerIn) return rmNo('ARGUMENT_INVALID');
    if (this.all().filter((p) => p.owner === owner).length >= RM_MAX_PARCELS_PER_VM) return rmNo('NORESOURCE');
    const handle = this.nextHandle++;
    this.parcels.set(handle, {
      handle,
      owner,
      kind,
      acl: [...acl],
      sgl: [...sgl],
      state: req.appendPending ? 'INIT' : 'SHARING',
      accepted: new Set(),
      sanitize: req.sanitize ?? false,
    });
    return rmOk(handle);
  }

  /** MEM_APPEND: owner only, INIT only; `done` finalizes (→ SHARING). */
  append(caller: number, handle: number, sgl: readonly SglEntry[], done: boolean): RmResult<void> {
    const p = this.parcels.get(handle);
    if (!p) return rmNo('HANDLE_INVALID');
    if (p.owner !== caller) return rmNo('DENIED');
    if (p.state !== 'INIT') return rmNo('MEM_INVALID');
    if (sgl.length > RM_MAX_LIST_ENTRIES) return rmNo('ARGUMENT_INVALID');
    p.sgl.push(...sgl);
    if (done) p.state = 'SHARING';
    return rmOk(undefined);
  }

  /** MEM_ACCEPT by a borrower in the ACL (not the owner, not already accepted). */
  accept(caller: number, handle: number): RmResult<void> {
    const p = this.parcels.get(handle);
    if (!p) return rmNo('HANDLE_INVALID');
    if (p.state === 'INIT') return rmNo('MEM_INVALID');
    if (caller === p.owner || !p.acl.some((e) => e.vmid === caller)) return rmNo('DENIED');
    if (p.accepted.has(caller)) return rmNo('MEM_INVALID');
    p.accepted.add(caller);
    p.state = 'SHARED';
    return rmOk(undefined);
  }

  /** MEM_RELEASE by a borrower that accepted. */
  release(caller: number, handle: number): RmResult<void> {
    const p = this.parcels.get(handle);
    if (!p) return rmNo('HANDLE_INVALID');
    if (caller === p.owner) return rmNo('DENIED');
    if (!p.accepted.delete(caller)) return rmNo('MEM_RELEASED');
    if (p.accepted.size === 0) p.state = 'SHARING';
    return rmOk(undefined);
  }

  /** MEM_RECLAIM by the owner: MEM_INUSE while any borrower holds it; otherwise deletes the parcel. */
  reclaim(caller: number, handle: number): RmResult<MemParcel> {
    const p = this.parcels.get(handle);
    if (!p) return rmNo('HANDLE_INVALID');
    if (caller !== p.owner) return rmNo('DENIED');
    if (p.state === 'SHARED') return rmNo('MEM_INUSE');
    this.parcels.delete(handle);
    return rmOk(p);
  }

  /** VM reset: the RM releases every parcel `vmid` had accepted (the owner gets MEM_RELEASED). */
  vmReset(vmid: number): number[] {
    const released: number[] = [];
    for (const p of this.parcels.values()) {
      if (p.accepted.has(vmid)) {
        this.release(vmid, p.handle);
        released.push(p.handle);
      }
    }
    return released;
  }
}
