import { describe, expect, it } from 'vitest';
import { MemParcelTable, rmErrno, RM_MAX_PARCELS_PER_VM } from './memparcel.js';

const HOST = 3,
  GUEST = 45;
const R = 4,
  W = 2,
  X = 1;
const sgl = [{ ipa: 0x8000_0000n, size: 0x1000n }];

describe('RM memparcel state machine', () => {
  it('share: owner must be in the ACL with a borrower', () => {
    const t = new MemParcelTable();
    expect(t.create({ owner: HOST, kind: 'share', acl: [{ vmid: GUEST, rights: R | W }], sgl })).toEqual({
      ok: false,
      error: 'ARGUMENT_INVALID',
    });
    const r = t.create({
      owner: HOST,
      kind: 'share',
      acl: [
        { vmid: GUEST, rights: R | W },
        { vmid: HOST, rights: R | W | X },
      ],
      sgl,
    });
    expect(r.ok).toBe(true);
  });
  it('lend: owner forbidden in the ACL', () => {
    const t = new MemParcelTable();
    expect(t.create({ owner: HOST, kind: 'lend', acl: [{ vmid: HOST, rights: 7 }], sgl })).toEqual({
      ok: false,
      error: 'ARGUMENT_INVALID',
    });
  });
  it('INIT → SHARING → SHARED → SHARING → reclaimed; MEM_INUSE while SHARED', () => {
    const t = new MemParcelTable();
    const r = t.create({ owner: HOST, kind: 'lend', acl: [{ vmid: GUEST, rights: 7 }], sgl, appendPending: true });
    if (!r.ok) throw new Error();
    const h = r.value;
    expect(t.get(h)!.state).toBe('INIT');
    expect(t.accept(GUEST, h)).toEqual({ ok: false, error: 'MEM_INVALID' });
    expect(t.append(GUEST, h, sgl, true)).toEqual({ ok: false, error: 'DENIED' });
    expect(t.append(HOST, h, [{ ipa: 0x8000_1000n, size: 0x1000n }], true).ok).toBe(true);
    expect(t.get(h)!.state).toBe('SHARING');
    expect(t.accept(HOST, h)).toEqual({ ok: false, error: 'DENIED' });
    expect(t.accept(GUEST, h).ok).toBe(true);
    expect(t.get(h)!.state).toBe('SHARED');
    const inuse = t.reclaim(HOST, h);
    expect(inuse).toEqual({ ok: false, error: 'MEM_INUSE' });
    expect(rmErrno('MEM_INUSE')).toBe('EINVAL'); // Linux remaps MEM_INUSE to EINVAL
    expect(t.release(HOST, h)).toEqual({ ok: false, error: 'DENIED' });
    expect(t.release(GUEST, h).ok).toBe(true);
    expect(t.release(GUEST, h)).toEqual({ ok: false, error: 'MEM_RELEASED' });
    expect(t.get(h)!.state).toBe('SHARING');
    expect(t.reclaim(GUEST, h)).toEqual({ ok: false, error: 'DENIED' });
    expect(t.reclaim(HOST, h).ok).toBe(true);
    expect(t.size).toBe(0);
    expect(t.reclaim(HOST, h)).toEqual({ ok: false, error: 'HANDLE_INVALID' });
  });
  it('VM reset auto-releases accepted parcels so the owner can reclaim', () => {
    const t = new MemParcelTable();
    const r = t.create({ owner: HOST, kind: 'lend', acl: [{ vmid: GUEST, rights: 7 }], sgl });
    if (!r.ok) throw new Error();
    t.accept(GUEST, r.value);
    expect(t.vmReset(GUEST)).toEqual([r.value]);
    expect(t.reclaim(HOST, r.value).ok).toBe(true);
  });
  it('at most 64 parcels per owner', () => {
    const t = new MemParcelTable();
    for (let i = 0; i < RM_MAX_PARCELS_PER_VM; i++)
      expect(t.create({ owner: HOST, kind: 'lend', acl: [{ vmid: GUEST, rights: 7 }], sgl }).ok).toBe(true);
    const r = t.create({ owner: HOST, kind: 'lend', acl: [{ vmid: GUEST, rights: 7 }], sgl });
    expect(r).toEqual({ ok: false, error: 'NORESOURCE' });
    expect(rmErrno('NORESOURCE')).toBe('ENODEV');
  });
  it('errno remap table', () => {
    expect(rmErrno('UNIMPLEMENTED')).toBe('EOPNOTSUPP');
    expect(rmErrno('NOMEM')).toBe('ENOMEM');
    expect(rmErrno('DENIED')).toBe('EPERM');
    expect(rmErrno('BUSY')).toBe('EBUSY');
    expect(rmErrno('HANDLE_INVALID')).toBe('EINVAL');
  });
});
