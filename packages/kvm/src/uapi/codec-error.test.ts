import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { UAPI_CODEC_BACKEND, rebindCodecError } from './codec-error.js';
import { u64 } from './codec-util.js';
import { codecsFor } from './codecs-for.js';
import { encodeKvmCreateGuestMemfd } from './structs.js';

const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return expect.fail('no error');
};

describe('codec errors and the backend they name', () => {
  it("a codec called on its own names 'kvm-uapi'", () => {
    expect(thrown(() => u64('x', 1n << 64n))).toMatchObject({ code: 'ERANGE', backend: UAPI_CODEC_BACKEND });
  });
  it('codecsFor(id) raises the same error under id: code, op, info and message detail kept', () => {
    const plain = thrown(() => encodeKvmCreateGuestMemfd({ size: 1n << 64n, flags: 0 })) as GuestMemError;
    const bound = thrown(() => codecsFor('my-backend').encodeKvmCreateGuestMemfd({ size: 1n << 64n, flags: 0 })) as GuestMemError;
    expect(bound).toBeInstanceOf(GuestMemError);
    expect({ ...bound.toJSON(), message: undefined, backend: undefined }).toEqual({
      ...plain.toJSON(),
      message: undefined,
      backend: undefined,
    });
    expect(bound.backend).toBe('my-backend');
    expect(bound.message).toBe(plain.message.replace(/^kvm-uapi: /, 'my-backend: '));
  });
  it('leaves other errors alone', () => {
    const other = new GuestMemError({ code: 'EINVAL', op: 'x', backend: 'kvm-sim' });
    expect(rebindCodecError(other, 'kvm')).toBe(other);
    const plain = new Error('x');
    expect(rebindCodecError(plain, 'kvm')).toBe(plain);
    expect(codecsFor('k').u64('x', 5)).toBe(5n);
  });
});
