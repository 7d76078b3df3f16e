/**
 * The one place this package reaches into `@guestmem/core`'s file/folio/mapping layer, so a change
 * of core's surface touches one file.
 */
// TEMP: core's GuestMemFile/HostMapping/ArenaFolioAllocator are not exported yet; switch to
// '@guestmem/core' once they are.
export { GuestMemFile } from '../../../core/src/file/guest-mem-file.js';
export { HostMapping } from '../../../core/src/mapping/host-mapping.js';
export { ArenaFolioAllocator, type FolioAllocator } from '../../../core/src/folio/folio-allocator.js';
export type { GuestMemOps, PageRange, InvalidateReason, HostAccessKind, HostAccessVerdict } from '../../../core/src/file/types.js';
