import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ERRNO, errnoCode, errnoName } from './errno.js';

const linux = process.platform === 'linux';

describe('errno table', () => {
  it.skipIf(!linux)("every number is the host's (Linux) errno of that name, as Node reports it", () => {
    const host = constants.errno as Record<string, number>;
    for (const [name, n] of Object.entries(ERRNO)) {
      // EHWPOISON is Linux-only and absent from Node's tables.
      if (name === 'EHWPOISON') continue;
      expect(host[name], name).toBe(n);
    }
  });

  it('names numbers outside the table from Node on Linux, else generically', () => {
    expect(errnoName(22)).toBe('EINVAL');
    expect(errnoCode(32)).toBeUndefined();
    expect(errnoName(32)).toBe(linux ? 'EPIPE' : 'errno 32');
    expect(errnoName(4095)).toBe('errno 4095');
    expect(errnoName(-22)).toBe('errno -22');
  });
});
