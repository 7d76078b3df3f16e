/**
 * The one place this package reaches into `@guestmem/core`'s file/folio/mapping layer, so a change
 * of core's surface touches one file.
 */
export { GuestMemFile, HostMapping, ArenaFolioAllocator, type FolioAllocator } from '@guestmem/core';
export type { GuestMemOps, PageRange, InvalidateReason, HostAccessKind, HostAccessVerdict } from '@guestmem/core';
