/**
 * ftruncate(2) on a guest-memory file. Sources: v17 23/35 (`gunyah_guest_mem_create`: a secure anon
 * inode with `i_mode |= S_IFREG` and no inode `setattr`), the VFS path `do_ftruncate` →
 * `do_truncate` → `notify_change`, which calls `simple_setattr` when `i_op->setattr` is NULL
 * (fs/attr.c), and Qualcomm's test VMM (`gunyah/src/guest_mem.rs` tests `setlen`, `punch_hole`, `dup`),
 * which expect `set_len` to work on v17. KVM's guest_memfd, by contrast, installs a `setattr` that
 * answers EINVAL (`kvm_gmem_setattr`): the `truncate: 'fixed'` profile.
 */
import { describe, expect, it } from 'vitest';
import { FALLOC_FL_KEEP_SIZE as KEEP, FALLOC_FL_PUNCH_HOLE as PUNCH, GHMF_ALLOW_HUGEPAGE } from '../uapi/index.js';
import { openGunyah } from './device.js';
import type { SimGuestMem } from './guest-mem.js';
import { HoldingCell, MIB, le64, u64le } from './test-helpers.js';

const code = (c: string) => expect.objectContaining({ code: c, syscall: 'ftruncate', backend: 'gunyah-sim' });

describe('ftruncate, v17 (default): the VFS resizes through simple_setattr', () => {
  it('setlen: grow to 100 MiB, shrink to 50 MiB, allocate up to the new size only, shrink to 10 MiB [gunyah-test-vmm guest_mem.rs setlen]', () => {
    const gh = openGunyah({ driver: 'sim' });
    const mem = gh.createGuestMem({ flags: 0n, size: 4n * MIB });
    mem.ftruncate(100n * MIB);
    expect(mem.size).toBe(100n * MIB);
    mem.ftruncate(50n * MIB);
    mem.fallocate(KEEP, 49n * MIB, MIB);
    expect(() => mem.fallocate(KEEP, 50n * MIB, MIB)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'fallocate' }));
    mem.ftruncate(10n * MIB);
    expect(mem.size).toBe(10n * MIB);
    expect(gh.stats().folioBytes).toBe(0n); // the 1 MiB allocated at 49 MiB went with the shrink
  });

  it('dup: allocate past the size fails until the file grows [gunyah-test-vmm guest_mem.rs dup]; punch past EOF is fine [punch_hole]', () => {
    const gh = openGunyah({ driver: 'sim' });
    const mem = gh.createGuestMem({ flags: 0n, size: 4096n });
    expect(() => mem.fallocate(KEEP, 0, MIB)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    mem.ftruncate(MIB);
    mem.fallocate(KEEP, 0, MIB);
    mem.fallocate(KEEP | PUNCH, 5n * MIB, MIB);
    expect(gh.stats().folioBytes).toBe(MIB);
  });

  it('do_ftruncate: a negative length is EINVAL; inode_newsize_ok: past MAX_LFS_FILESIZE is EFBIG; nothing changes', () => {
    const gh = openGunyah({ driver: 'sim' });
    const mem = gh.createGuestMem({ flags: 0n, size: 8192n });
    expect(() => mem.ftruncate(-1)).toThrow(code('EINVAL'));
    expect(() => mem.ftruncate(1n << 63n)).toThrow(code('EFBIG'));
    expect(mem.size).toBe(8192n);
    mem.close();
    expect(() => mem.ftruncate(4096)).toThrow(code('EBADF'));
  });

  it('shrinking drops the data past the new size (truncate_pagecache); growing back reads zero; data below survives', () => {
    const hc = new HoldingCell();
    const mem = hc.gh.createGuestMem({ flags: 0n, size: 4n * 4096n });
    hc.hostWrite(mem, 0n, u64le(1n));
    hc.hostWrite(mem, 3n * 4096n, u64le(3n));
    mem.ftruncate(2n * 4096n);
    expect(() => hc.hostRead(mem, 3n * 4096n)).toThrow();
    mem.ftruncate(4n * 4096n);
    expect(le64(hc.hostRead(mem, 3n * 4096n))).toBe(0n);
    expect(le64(hc.hostRead(mem, 0n))).toBe(1n);
  });

  it('a huge folio across the new end keeps its memory; the part past the end reads zero after growing back', () => {
    const gh = openGunyah({ driver: 'sim' });
    const mem = gh.createGuestMem({ flags: GHMF_ALLOW_HUGEPAGE, size: 2n * MIB }) as SimGuestMem;
    mem.fallocate(KEEP, 0, 2n * MIB);
    const m = mem.mmap({ offset: 0, length: 2n * MIB });
    m.write(4096, u64le(7n));
    m.write(MIB + 4096n, u64le(8n));
    m.unmap();
    mem.ftruncate(MIB);
    expect(gh.stats().folioBytes).toBe(2n * MIB);
    mem.ftruncate(2n * MIB);
    const v = mem.mmap({ offset: 0, length: 2n * MIB });
    expect(le64(v.read(4096, 8))).toBe(7n);
    expect(le64(v.read(MIB + 4096n, 8))).toBe(0n);
    v.unmap();
  });

  it('shrinking over a folio still provided to a VM is refused with EBUSY and changes nothing (v17 would detach it: not modelled)', () => {
    const hc = new HoldingCell();
    const mem = hc.addMemory(0xa000_0000n, 4n * 4096n, 'lend');
    expect(hc.writeAddr(0xa000_3000n, 5n).status).toBe('done');
    expect(() => mem.ftruncate(2n * 4096n)).toThrow(code('EBUSY'));
    expect(mem.size).toBe(4n * 4096n);
    expect(hc.readAddr(0xa000_3000n)).toBe(5n);
    mem.ftruncate(8n * 4096n); // growing never touches provided folios
    expect(hc.readAddr(0xa000_3000n)).toBe(5n);
  });
});

describe("ftruncate, truncate: 'fixed' (KVM's kvm_gmem_setattr answer)", () => {
  it('every length is EINVAL and the size never changes', () => {
    const gh = openGunyah({ driver: 'sim', truncate: 'fixed' });
    const mem = gh.createGuestMem({ flags: 0n, size: 4n * MIB });
    for (const len of [0n, 4096n, 4n * MIB, 100n * MIB, -1n]) expect(() => mem.ftruncate(len)).toThrow(code('EINVAL'));
    expect(mem.size).toBe(4n * MIB);
  });
});
