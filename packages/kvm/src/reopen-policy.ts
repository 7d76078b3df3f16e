import { GuestMemError } from '@guestmem/core';

/**
 * guestmem's reopen policy, shared by both drivers: `KvmGuestMemfd.reopen` takes an access mode only
 * (`O_RDONLY`, `O_WRONLY`, `O_RDWR`); other open flags are refused with EINVAL before any syscall,
 * because some of them (O_PATH, O_NOFOLLOW on the magic link) give an fd that is not a guest_memfd.
 */
export function refuseReopenFlags(access: number, backend: string): void {
  if (!Number.isInteger(access) || access < 0 || access > 2) {
    throw new GuestMemError({
      code: 'EINVAL',
      op: 'reopen',
      backend,
      detail: `access ${access} is not O_RDONLY, O_WRONLY or O_RDWR`,
      info: { access },
    });
  }
}
