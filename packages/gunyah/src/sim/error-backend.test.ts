/**
 * One backend id per backend, at the raw uAPI of the simulated v17 driver: a non-integer number
 * (rejected by core's argument conversion) and an exhausted folio allocator (core's shared
 * allocator) both fail naming 'gunyah-sim', not 'core'.
 */
import { ArenaFolioAllocator, GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { FALLOC_FL_KEEP_SIZE as KEEP } from '../uapi/index.js';
import { openGunyah } from './device.js';
import { BACKEND } from './errors.js';

function errorOf(call: () => unknown): GuestMemError {
  try {
    call();
  } catch (e) {
    expect(e).toBeInstanceOf(GuestMemError);
    return e as GuestMemError;
  }
  return expect.fail('the call succeeded');
}

describe("raw gunyah-sim errors name 'gunyah-sim'", () => {
  it('non-integer numbers to fallocate, mmap, ftruncate and MAP_MEM', () => {
    const gh = openGunyah({ driver: 'sim' });
    const mem = gh.createGuestMem({ flags: 0n, size: 4n * 4096n });
    const vm = gh.createVm();
    const calls: Array<[string, () => unknown]> = [
      ['fallocate offset', () => mem.fallocate(KEEP, 0.5, 4096)],
      ['fallocate len', () => mem.fallocate(KEEP, 0, Number.NaN)],
      ['mmap offset', () => mem.mmap({ offset: 0.5, length: 4096 })],
      ['mmap length', () => mem.mmap({ offset: 0, length: Number.POSITIVE_INFINITY })],
      ['ftruncate', () => mem.ftruncate(4096.5)],
      ['MAP_MEM guest_addr', () => vm.mapMem({ guestAddr: 0.5, flags: 0, guestMemFd: mem.fd, offset: 0, size: 4096 })],
    ];
    for (const [what, call] of calls) {
      const e = errorOf(call);
      expect([what, e.code, e.backend]).toEqual([what, 'EINVAL', BACKEND]);
    }
  });

  it('a host write that needs a folio beyond the memory limit', () => {
    const gh = openGunyah({ driver: 'sim', allocator: new ArenaFolioAllocator({ limitBytes: 4096 }) });
    const mem = gh.createGuestMem({ flags: 0n, size: 4n * 4096n });
    const view = mem.mmap({ offset: 0, length: 4n * 4096n });
    view.write(0n, new Uint8Array([1]));
    const e = errorOf(() => view.write(4096n, new Uint8Array([2])));
    expect([e.code, e.backend]).toEqual(['ENOMEM', BACKEND]);
    expect(e.cause).toBeInstanceOf(GuestMemError);
  });
});
