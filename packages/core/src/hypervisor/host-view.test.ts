import { describe, expect, it } from 'vitest';
import { GuestMemError } from '../errors/guest-mem-error.js';
import { HostViewSet } from './host-view.js';

/** A source that still answers after release, as a released simulated mapping guarded by a policy may. */
const source = () => ({ length: 4096, read: (_at: number, len: number) => new Uint8Array(len).fill(7), write: () => {}, fill: () => {} });

describe('HostViewSet', () => {
  it('unmapAll() ends each view: an access afterwards is EFAULT, as after unmap() (was: the view still read its source)', () => {
    const set = new HostViewSet('test-backend');
    let released = 0;
    const view = set.add(source(), () => released++);
    set.unmapAll();
    expect(released).toBe(1);
    expect(set.size).toBe(0);
    let err: unknown;
    try {
      view.read(0, 1);
    } catch (e) {
      err = e;
    }
    expect(GuestMemError.is(err, 'EFAULT')).toBe(true);
    view.unmap();
    expect(released).toBe(1);
  });
});
