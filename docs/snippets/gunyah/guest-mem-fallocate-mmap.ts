// fallocate(2) and mmap(2) on a Gunyah guest-memory file: allocate, map shared, punch a hole
// (the range reads zero afterwards through every mapping).
import assert from 'node:assert/strict';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, openGunyah } from '@guestmem/gunyah';

const gh = openGunyah({ driver: 'sim' });
const mem = gh.createGuestMem({ flags: 0n, size: 4 * 4096 });
mem.fallocate(FALLOC_FL_KEEP_SIZE, 0, 4 * 4096);
const m = mem.mmap({ offset: 0, length: 4 * 4096 });
m.write(4096, new Uint8Array([0xaa, 0xbb]));
mem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 4096, 4096);
assert.deepEqual(m.read(4096, 2), new Uint8Array([0, 0]));
m.unmap();
mem.close();
