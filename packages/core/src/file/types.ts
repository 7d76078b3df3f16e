import type { GuestMemError } from '../errors/guest-mem-error.js';
import type { GuestMemFile } from './guest-mem-file.js';

/** A half-open range of page indices `[first, end)`. */
export interface PageRange {
  readonly first: number;
  readonly end: number;
}

/** Why a range is being invalidated: the hook may treat them differently (KVM orphans slots on release). */
export type InvalidateReason = 'punch' | 'release' | 'poison';

/** Kind of host access, for {@link GuestMemOps.hostAccess}. */
export type HostAccessKind = 'read' | 'write';

/**
 * The backend's verdict on one host access:
 * - `'allow'`: fault the page in (creating and zeroing it if needed) and perform the access;
 * - `'sigbus'`: refuse; the mapping throws a {@link HostAccessFault} (the kernel would raise SIGBUS).
 */
export type HostAccessVerdict = 'allow' | 'sigbus';

/**
 * Hooks a backend gives a {@link GuestMemFile} — the never-merged upstream "guest_memfd library"
 * idea: core owns pages, folios, bindings and lifetime; the backend owns policy.
 *
 * Every hook is optional; a missing hook means "nothing to do" / "allow".
 */
export interface GuestMemOps<Owner = unknown> {
  /** Backend id used in errors raised by core on this file's behalf (`'kvm-sim'`, `'gunyah-sim'`). */
  readonly backend: string;
  /**
   * Called before pages of `range` are removed (punch, release) or made unusable (poison): zap guest
   * mappings of every binding that intersects it. The file's bindings are still in place.
   */
  invalidateBegin?(file: GuestMemFile<Owner>, range: PageRange, reason: InvalidateReason): void;
  /** Called after the removal. */
  invalidateEnd?(file: GuestMemFile<Owner>, range: PageRange, reason: InvalidateReason): void;
  /**
   * Asked before a punch-hole (or any reclaim core performs) of `range`: return `null` to allow, or
   * a {@link GuestMemError} to refuse — the operation then throws it and changes nothing.
   * Gunyah refuses when lent pages the guest touched cannot be reclaimed.
   */
  mayReclaim?(file: GuestMemFile<Owner>, range: PageRange): GuestMemError | null;
  /**
   * Arch/backend prepare hook, called once when a folio becomes uptodate (after core zeroed it),
   * like `kvm_arch_gmem_prepare`. May throw a GuestMemError; the folio then stays not-uptodate.
   */
  prepare?(file: GuestMemFile<Owner>, index: number, folio: number): void;
  /** Asked before every host access to page `index` (inside EOF). Missing hook: `'allow'`. */
  hostAccess?(file: GuestMemFile<Owner>, index: number, kind: HostAccessKind): HostAccessVerdict;
  /** Called when a binding is dropped because the file is released (before `release`). */
  bindingDropped?(file: GuestMemFile<Owner>, owner: Owner, range: PageRange): void;
  /** Last reference gone: everything is freed; the backend drops what the file pinned (KVM: the VM). */
  release?(file: GuestMemFile<Owner>): void;
}

/** Options of {@link GuestMemFile.allocate}. */
export interface AllocateOptions {
  /** Aborting it stops the allocation with `EINTR`; folios already allocated stay (as the kernel does). */
  signal?: AbortSignal;
  /** Folio order to allocate: 0 (4 KiB, default) or 9 (2 MiB; the range must then be 2 MiB-aligned per folio). */
  order?: 0 | 9;
}

/** Options of {@link GuestMemFile.getFolio}. */
export interface GetFolioOptions {
  /** Allocate when absent (default true). With false, an absent page gives `-1`. */
  create?: boolean;
  /** Zero the folio and mark it uptodate if it is not (default true), calling `ops.prepare`. */
  prepare?: boolean;
  /** Order to use when the folio must be created (default: the file's `defaultOrder`). */
  order?: 0 | 9;
}

/** One binding in a file's bindings index. */
export interface FileBinding<Owner> {
  readonly owner: Owner;
  readonly first: number;
  readonly end: number;
}
