import { describe, expect, it } from 'vitest';
import { GuestMemError, HostAccessFault, gmErr } from './guest-mem-error.js';

describe('GuestMemError as JSON', () => {
  it('JSON.stringify writes every field, bigints as strings, and the cause chain', () => {
    const inner = new HostAccessFault({ op: 'mapping.read', backend: 'kvm-sim', offset: 1n << 63n, info: { len: 4096n } });
    const e = gmErr('EIO', 'convert', 'kvm-sim', 'discard failed', {
      syscall: 'fallocate',
      info: { gpa: 0xffff_f000n, nested: { sizes: [1n, 2] } },
      cause: inner,
    });
    const json = JSON.parse(JSON.stringify(e));
    expect(json).toEqual({
      name: 'GuestMemError',
      message: e.message,
      code: 'EIO',
      errno: 5,
      op: 'convert',
      backend: 'kvm-sim',
      syscall: 'fallocate',
      info: { gpa: '4294963200', nested: { sizes: ['1', 2] } },
      cause: {
        name: 'HostAccessFault',
        message: inner.message,
        code: 'SIGBUS',
        errno: 0,
        op: 'mapping.read',
        backend: 'kvm-sim',
        info: { len: '4096', offset: '9223372036854775808' },
      },
    });
  });

  it('a plain Error cause and a cyclic info survive', () => {
    const cyclic: Record<string, unknown> = { a: 1n };
    cyclic.self = cyclic;
    const e = new GuestMemError({ code: 'EINVAL', op: 'x', backend: 'core', info: cyclic, cause: new TypeError('bad') });
    const json = JSON.parse(JSON.stringify(e));
    expect(json.info).toEqual({ a: '1', self: { a: '1', self: '[Circular]' } });
    expect(json.cause).toEqual({ name: 'TypeError', message: 'bad' });
  });
});
