// GUNYAH_CREATE_GUEST_MEM on /dev/gunyah (not on a VM fd): a guest-memory file any VM can bind.
import assert from 'node:assert/strict';
import { GuestMemError } from '@guestmem/core';
import { GHMF_ALLOW_HUGEPAGE, openGunyah } from '@guestmem/gunyah';

const gh = openGunyah({ driver: 'sim' });
const mem = gh.createGuestMem({ flags: 0n, size: 64 * 1024 });
assert.equal(mem.size, 64n * 1024n);
// GHMF_ALLOW_HUGEPAGE asks for 2 MiB folios where the file is aligned.
const huge = gh.createGuestMem({ flags: GHMF_ALLOW_HUGEPAGE, size: 4 * 1024 * 1024 });
// Unknown flag bits are refused.
assert.throws(
  () => gh.createGuestMem({ flags: 1n << 40n, size: 4096 }),
  (e) => e instanceof GuestMemError && e.code === 'EINVAL',
);
mem.close();
huge.close();
