import { GuestMemError } from '@guestmem/core';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE } from './uapi/constants.js';

/**
 * guestmem's own mmap policy, shared by both drivers so they refuse identically: `MAP_FIXED`
 * (without `MAP_FIXED_NOREPLACE`) could silently replace memory of the Node process, and
 * `MAP_ANONYMOUS` would not map the file at all. Refused with EINVAL before any syscall (so
 * `syscall` is unset); use `MAP_FIXED_NOREPLACE` for a fixed address.
 */
export function refuseUnsafeMmapFlags(flags: number, backend: string): void {
  if (flags & (MAP_FIXED | MAP_ANONYMOUS) && !(flags & MAP_FIXED_NOREPLACE)) {
    throw new GuestMemError({
      code: 'EINVAL',
      op: 'mmap',
      backend,
      detail: 'MAP_FIXED and MAP_ANONYMOUS are refused by guestmem (use MAP_FIXED_NOREPLACE)',
      info: { flags },
    });
  }
}
