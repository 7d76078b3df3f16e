import { gmErr } from '../errors/guest-mem-error.js';
import { toBig } from '../types/brands.js';
import type { GpaRange, HostView } from './interfaces.js';

/** One binding's host side, as {@link sharedViewOf} stitches them: guest range and accessors. */
export interface SharedPart {
  readonly gpa: bigint;
  readonly size: bigint;
  /** Accessors of this part's host side, `at` counted from `gpa`. */
  read(at: number, len: number): Uint8Array;
  /** Optional copy into a caller's buffer (else read + copy). */
  readInto?(at: number, dst: Uint8Array, dstOffset: number): void;
  write(at: number, data: Uint8Array): void;
  fill(at: number, len: number, byte: number): void;
  /** False once the part's binding is gone. */
  readonly live: boolean;
}

/**
 * The {@link Vm.sharedView} every adapter shares: checks `range` (integers, non-empty, inside 2^64:
 * `EINVAL`), finds the parts covering it end to end (a hole: `EFAULT`), and returns a view whose
 * offset 0 is `range.gpa`, splitting each access at part boundaries. Accesses after `unmap()` or
 * after a part's binding went away fail with `EFAULT`.
 */
export function sharedViewOf(parts: readonly SharedPart[], range: GpaRange, backend: string): HostView {
  const gpa = toBig(range.gpa, 'sharedView', backend);
  const size = toBig(range.size, 'sharedView', backend);
  if (gpa < 0n || size <= 0n || gpa + size > 1n << 64n || size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw gmErr('EINVAL', 'sharedView', backend, `range 0x${gpa.toString(16)} +${size}: need gpa >= 0, size > 0, inside 2^64`);
  }
  const sorted = [...parts].sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
  const used: SharedPart[] = [];
  let at = gpa;
  for (const p of sorted) {
    if (p.gpa + p.size <= at || p.gpa >= gpa + size) continue;
    if (p.gpa > at) break;
    used.push(p);
    at = p.gpa + p.size;
    if (at >= gpa + size) break;
  }
  if (at < gpa + size)
    throw gmErr('EFAULT', 'sharedView', backend, `no memory bound at 0x${at.toString(16)} (inside 0x${gpa.toString(16)} +${size})`);
  let mapped = true;
  const length = Number(size);
  /** Calls `fn` for each part piece of `[off, off+len)`: part, offset in the part, offset in the request, length. */
  const each = (op: string, off: number, len: number, fn: (p: SharedPart, pOff: number, rOff: number, n: number) => void): void => {
    if (!mapped) throw gmErr('EFAULT', op, backend, 'the shared view was unmapped');
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0) {
      throw gmErr('EINVAL', op, backend, `[${off}, +${len}) is not a range of integers >= 0`);
    }
    // The neutral host-view rule (core's hostView): past the end the access would leave the view.
    if (off + len > length) {
      throw gmErr('EFAULT', op, backend, `[${off}, ${off + len}) is outside the ${length}-byte view`);
    }
    let done = 0;
    while (done < len) {
      const g = gpa + BigInt(off + done);
      const p = used.find((q) => q.gpa <= g && g < q.gpa + q.size)!;
      if (!p.live) throw gmErr('EFAULT', op, backend, `the binding at 0x${p.gpa.toString(16)} is gone`);
      const pOff = Number(g - p.gpa);
      const n = Math.min(len - done, Number(p.size) - pOff);
      fn(p, pOff, done, n);
      done += n;
    }
  };
  return {
    length,
    read(off, len) {
      if (used.length === 1 && mapped && used[0]!.live && off >= 0 && len >= 0 && off + len <= length)
        return used[0]!.read(Number(gpa - used[0]!.gpa) + off, len);
      const out = new Uint8Array(len);
      each('read', off, len, (p, pOff, rOff, n) => out.set(p.read(pOff, n), rOff));
      return out;
    },
    readInto(off, dst, dstOffset = 0) {
      if (!(Number.isSafeInteger(dstOffset) && dstOffset >= 0 && dstOffset <= dst.length)) {
        throw gmErr('EINVAL', 'readInto', backend, `dstOffset ${dstOffset} is outside the ${dst.length}-byte buffer`);
      }
      each('read', off, dst.length - dstOffset, (p, pOff, rOff, n) => {
        const to = dst.subarray(dstOffset + rOff, dstOffset + rOff + n);
        if (p.readInto) p.readInto(pOff, to, 0);
        else to.set(p.read(pOff, n));
      });
    },
    write(off, data) {
      if (used.length === 1 && mapped && used[0]!.live && off >= 0 && off + data.length <= length)
        return used[0]!.write(Number(gpa - used[0]!.gpa) + off, data);
      each('write', off, data.length, (p, pOff, rOff, n) => p.write(pOff, data.subarray(rOff, rOff + n)));
    },
    fill(off, len, byte) {
      each('fill', off, len, (p, pOff, _r, n) => p.fill(pOff, n, byte));
    },
    unmap() {
      mapped = false;
    },
  };
}
