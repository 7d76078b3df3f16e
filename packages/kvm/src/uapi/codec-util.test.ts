import { GuestMemError } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { i32, i64, u32, u64 } from './codec-util.js';

describe('numeric argument conversion', () => {
  it('u64 takes bigint and exact numbers, wrapping negatives like C', () => {
    expect(u64('x', 5)).toBe(5n);
    expect(u64('x', -1)).toBe((1n << 64n) - 1n);
    expect(u64('x', (1n << 64n) - 1n)).toBe((1n << 64n) - 1n);
    expect(() => u64('x', 1n << 64n)).toThrow(GuestMemError);
    expect(() => u64('x', -(1n << 63n) - 1n)).toThrow(GuestMemError);
    expect(() => u64('x', 0.5)).toThrow(GuestMemError);
  });
  it('i64 reinterprets as signed', () => {
    expect(i64('x', 1n << 63n)).toBe(-(1n << 63n));
    expect(i64('x', -4096)).toBe(-4096n);
  });
  it('u32/i32', () => {
    expect(u32('fd', -1)).toBe(0xffffffff);
    expect(i32('fd', 0xffffffff)).toBe(-1);
    expect(() => u32('fd', 2 ** 32)).toThrow(GuestMemError);
    const e = (() => {
      try {
        u32('slot', 2 ** 32);
      } catch (x) {
        return x as GuestMemError;
      }
    })();
    expect(e?.code).toBe('ERANGE');
  });
});
