/**
 * The named differential scenarios: every error row and lifetime rule of docs/kvm-guest-memfd.md §2, plus the
 * guest_memfd selftest sequences (§3.1, §3.2). Each one runs on the real kernel and on the sim; the
 * traces must be equal. Adding a scenario is adding one entry to {@link SCENARIOS}.
 */
import type { KvmAnonMapping, KvmGuestMemfd, KvmVm } from '../api.js';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_KEEP_SIZE as KEEP,
  FALLOC_FL_NO_HIDE_STALE,
  FALLOC_FL_PUNCH_HOLE as PUNCH,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_ZERO_RANGE,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_MEM_GUEST_MEMFD as GMEM,
  KVM_MEM_LOG_DIRTY_PAGES as LOG_DIRTY,
  KVM_MEM_READONLY as READONLY,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_GUARD_INSTALL,
  MADV_GUARD_REMOVE,
  MADV_HWPOISON,
  MADV_REMOVE,
  MADV_SOFT_OFFLINE,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  kvmSlot,
} from '../uapi/constants.js';
import { ADVERSARIAL_SCENARIOS } from './scenarios-adversarial.js';
import { FIDELITY_SCENARIOS } from './scenarios-fidelity.js';
import type { Scenario, Session } from './trace.js';
import { OPS_SCENARIOS } from './scenarios-ops.js';

const K4 = 4096;
const K16 = 16384;
const M2 = 0x200000;
const NONE = 0n;
const MMAP = 1n;
const SHARED = 2n;
const BOTH = 3n;
const RW = PROT_READ | PROT_WRITE;

type Body = (s: Session, vm: KvmVm, g: KvmGuestMemfd) => void;

/** A VM and one guest_memfd of `size` bytes with `flags`, then `body`. */
function withGmem(size: number | bigint, flags: bigint, body: Body): (s: Session) => void {
  return (s) => {
    const vm = s.vm();
    if (!vm) return;
    const g = s.gmem(vm, { size, flags });
    if (g) body(s, vm, g);
  };
}

/** The v1 ioctl through the raw-address escape hatch (the scenarios probe the kernel's own checks). */
const V1 = { ioctl: 'REGION' } as const;

const table: Array<[string, (s: Session) => void]> = [];
const add = (name: string, run: (s: Session) => void): void => void table.push([name, run]);

// ------------------------------------------------------------------ capabilities and VM types (§1.3)
add('caps: system fd answers capabilities 0–299', (s) => {
  for (let c = 0; c < 300; c++) s.run(`checkExtension(${c})`, () => s.kvm.checkExtension(c));
});
add('caps: VM fd answers capabilities 0–299', (s) => {
  const vm = s.vm();
  for (let c = 0; vm && c < 300; c++) s.run(`vm.checkExtension(${c})`, () => vm.checkExtension(c));
});
add('caps: huge and negative capability numbers answer 0', (s) => {
  for (const c of [2n ** 32n, 2n ** 63n, -1]) s.run(`checkExtension(${c})`, () => s.kvm.checkExtension(c));
});
for (const type of [1, 2, 3, 4, 5, 6, 255, 2 ** 32]) add(`createVm: type ${type} is EINVAL`, (s) => void s.vm(type));
add('createVm: default type twice gives two VMs', (s) => {
  s.vm();
  s.vm();
});
add('createVm: a closed system fd handle is EBADF', (s) => {
  s.close(s.kvm);
  s.run('createVm', () => s.kvm.createVm(0));
});
add('KVM_SET_MEMORY_ATTRIBUTES: ENOTTY (config off), PRIVATE and 0', (s) => {
  const vm = s.vm();
  for (const attributes of [0n, KVM_MEMORY_ATTRIBUTE_PRIVATE]) {
    s.run(`setMemoryAttributes(${attributes})`, () => vm!.setMemoryAttributes({ address: 0, size: K4, attributes, flags: 0 }));
  }
  s.run('setMemoryAttributes(bad flags)', () => vm!.setMemoryAttributes({ address: 1, size: 0, attributes: 0, flags: 1 }));
});

// ------------------------------------------------------------------ creation (§2.2, §3.1 flags/sizes)
add('create: every single flag bit 0–63 (selftest test_guest_memfd_flags)', (s) => {
  const vm = s.vm();
  for (let b = 0n; vm && b < 64n; b++) {
    const g = s.gmem(vm, { size: K4, flags: 1n << b }, `create flag 1<<${b}`);
    if (g) s.close(g);
  }
});
for (const flags of [NONE, MMAP, SHARED, BOTH])
  add(
    `create: flags ${flags} succeeds`,
    withGmem(K16, flags, () => {}),
  );
for (const flags of [4n, 5n, 7n, 1n << 63n])
  add(
    `create: unsupported flags ${flags} is EINVAL`,
    withGmem(K4, flags, () => {}),
  );
for (const size of [0, 1, 4095, 4097, 8191, -4096, 2n ** 63n, 2n ** 64n - 4096n]) {
  add(
    `create: size ${size} is EINVAL`,
    withGmem(size, NONE, () => {}),
  );
}
add('create: sizes 1..4095 are all EINVAL (selftest invalid_sizes)', (s) => {
  const vm = s.vm();
  const outcomes = new Set<string>();
  for (let size = 1; vm && size < K4; size++) {
    try {
      vm.createGuestMemfd({ size, flags: BOTH }).close();
      outcomes.add('ok');
    } catch (e) {
      outcomes.add((e as { code?: string }).code ?? 'threw');
    }
  }
  s.note('outcomes', [...outcomes]);
});
add(
  'create: bad flags with bad size gives EINVAL (flags checked first)',
  withGmem(1, 8n, () => {}),
);
for (const size of [2n ** 40n, 2n ** 62n, 2n ** 63n - 4096n]) {
  add(
    `create: huge size ${size} succeeds and fstat reports it`,
    withGmem(size, BOTH, (s, _vm, g) => void s.run('fstat.size', () => g.fstat().size)),
  );
}
add('create: reserved[] is ignored', (s) => {
  const vm = s.vm();
  if (vm) s.gmem(vm, { size: K4, flags: 0n, reserved: [1, 2, 3, 4, 5, 6] });
});
add('create: multiple files, sizes and distinct inodes (selftest create_multiple)', (s) => {
  const vm = s.vm();
  if (!vm) return;
  const a = s.gmem(vm, { size: K4, flags: 0n });
  const b = s.gmem(vm, { size: 2 * K4, flags: 0n });
  if (!a || !b) return;
  s.run('a.size', () => a.fstat().size);
  s.run('b.size', () => b.fstat().size);
  s.note('distinct inodes', a.fstat().ino !== b.fstat().ino);
});
add('create: after the system fd is closed, VM ioctls still work', (s) => {
  const vm = s.vm();
  s.close(s.kvm);
  if (vm) s.gmem(vm, { size: K4, flags: BOTH });
});
add('create: on a closed VM handle is EBADF', (s) => {
  const vm = s.vm();
  if (!vm) return;
  s.close(vm);
  s.gmem(vm, { size: K4, flags: 0n });
});

// ------------------------------------------------------------------ file operations (§2.3)
add(
  'fstat: size, blksize, blocks 0 even after allocation, mode, nlink',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const view = () => {
      const st = g.fstat();
      return { size: st.size, blksize: st.blksize, blocks: st.blocks, mode: st.mode, nlink: st.nlink };
    };
    s.run('fstat', view);
    s.fallocate(g, KEEP, 0, K16);
    s.run('fstat after fallocate', view);
  }),
);
add(
  'read/write/pread/pwrite fail (selftest file_read_write)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    s.run('read(64)', () => g.read(64));
    s.run('write(64)', () => g.write(new Uint8Array(64)));
    s.run('pread(64, 0)', () => g.pread(64, 0));
    s.run('pwrite(64, 0)', () => g.pwrite(new Uint8Array(64), 0));
    s.run('read(0)', () => g.read(0));
    s.run('write(0)', () => g.write(new Uint8Array(0)));
  }),
);
add(
  'pread/pwrite with a negative offset are EINVAL',
  withGmem(K4, NONE, (s, _vm, g) => {
    s.run('pread(4, -1)', () => g.pread(4, -1));
    s.run('pwrite(4, -1)', () => g.pwrite(new Uint8Array(4), -1));
  }),
);
add(
  'lseek: every whence 0–6',
  withGmem(K4, NONE, (s, _vm, g) => {
    for (let w = 0; w <= 6; w++) s.run(`lseek(0, ${w})`, () => g.lseek(0, w));
    s.run('lseek(-1, 0)', () => g.lseek(-1, 0));
  }),
);
add(
  'ftruncate: grow, shrink, same, negative all EINVAL',
  withGmem(K16, BOTH, (s, _vm, g) => {
    for (const len of [2 * K16, K4, K16, 0, -1]) s.run(`ftruncate(${len})`, () => g.ftruncate(len));
    s.run('size unchanged', () => g.fstat().size);
  }),
);
add(
  'closed guest_memfd handle: every call is EBADF',
  withGmem(K4, BOTH, (s, _vm, g) => {
    s.close(g);
    s.run('fallocate', () => g.fallocate(KEEP, 0, K4));
    s.run('mmap', () => g.mmap({ length: K4, prot: RW, flags: MAP_SHARED }));
    s.run('fstat', () => g.fstat());
    s.run('dup', () => g.dup());
    s.run('close again', () => g.close());
  }),
);
add(
  'dup: the duplicate sees the same file',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const d = s.dup(g);
    if (!d) return;
    s.run('dup size', () => d.fstat().size);
    s.note('same inode', d.fstat().ino === g.fstat().ino);
    const m = s.mmap(g, { length: K4 });
    s.fill(m, 0, K4, 0x5a);
    const m2 = s.mmap(d, { length: K4 });
    s.read(m2, 0, K4, 'read through the dup mapping');
  }),
);

// ------------------------------------------------------------------ fallocate (§2.4)
add(
  'fallocate: every mode 0x00–0xff on an aligned in-file range',
  withGmem(K16, BOTH, (s, _vm, g) => {
    for (let m = 0; m < 256; m++) s.run(`mode 0x${m.toString(16)}`, () => g.fallocate(m, 0, K4));
  }),
);
add(
  'fallocate: every mode 0x00–0xff with an unaligned range (mode checks precede alignment)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    for (let m = 0; m < 256; m++) s.run(`mode 0x${m.toString(16)}`, () => g.fallocate(m, 1, 100));
  }),
);
add(
  'fallocate: every mode 0x00–0xff with offset -1 (VFS EINVAL first)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    for (let m = 0; m < 256; m += 5) s.run(`mode 0x${m.toString(16)}`, () => g.fallocate(m, -1, K4));
  }),
);
add(
  'fallocate: every mode 0x00–0xff overflowing loff_t (EFBIG before guest_memfd checks)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    for (let m = 0; m < 256; m += 3) s.run(`mode 0x${m.toString(16)}`, () => g.fallocate(m, 2n ** 63n - 4096n, 8192));
  }),
);
const fallocRows: Array<[string, number, number | bigint, number | bigint]> = [
  ['allocate whole file', KEEP, 0, K16],
  ['allocate one page at the end', KEEP, 3 * K4, K4],
  ['allocate starting at EOF', KEEP, K16, K4],
  ['allocate straddling EOF', KEEP, 3 * K4, 2 * K4],
  ['allocate far past EOF', KEEP, 1n << 40n, K4],
  ['allocate len 0', KEEP, 0, 0],
  ['allocate len -4096', KEEP, 0, -4096],
  ['allocate offset -4096', KEEP, -4096, K4],
  ['allocate unaligned offset', KEEP, 1, K4],
  ['allocate unaligned len', KEEP, 0, 4095],
  ['allocate unaligned and past EOF', KEEP, K16 + 1, 1],
  ['allocate max loff_t end', KEEP, 2n ** 63n - 8192n, 4096],
  ['allocate overflowing loff_t', KEEP, 2n ** 63n - 4096n, 4096],
  ['allocate mode 0 (no KEEP_SIZE)', 0, 0, K4],
  ['allocate mode 0 unaligned (EOPNOTSUPP before EINVAL)', 0, 1, 1],
  ['punch whole file', PUNCH | KEEP, 0, K16],
  ['punch a hole that was never allocated', PUNCH | KEEP, K4, K4],
  ['punch past EOF', PUNCH | KEEP, K16, K4],
  ['punch far past EOF', PUNCH | KEEP, 1n << 50n, 1n << 20n],
  ['punch straddling EOF', PUNCH | KEEP, K4 * 3, K16],
  ['punch without KEEP_SIZE', PUNCH, 0, K4],
  ['punch without KEEP_SIZE unaligned', PUNCH, 1, 1],
  ['punch unaligned offset', PUNCH | KEEP, 1, K4],
  ['punch unaligned len', PUNCH | KEEP, 0, 1],
  ['punch len 0', PUNCH | KEEP, 0, 0],
  ['punch offset -4096', PUNCH | KEEP, -4096, K4],
  ['punch overflowing loff_t', PUNCH | KEEP, 2n ** 63n - 4096n, 8192],
  ['ZERO_RANGE|KEEP', FALLOC_FL_ZERO_RANGE | KEEP, 0, K4],
  ['ZERO_RANGE', FALLOC_FL_ZERO_RANGE, 0, K4],
  ['UNSHARE|KEEP', FALLOC_FL_UNSHARE_RANGE | KEEP, 0, K4],
  ['COLLAPSE', FALLOC_FL_COLLAPSE_RANGE, 0, K4],
  ['COLLAPSE|KEEP', FALLOC_FL_COLLAPSE_RANGE | KEEP, 0, K4],
  ['INSERT', FALLOC_FL_INSERT_RANGE, 0, K4],
  ['INSERT|KEEP', FALLOC_FL_INSERT_RANGE | KEEP, 0, K4],
  ['NO_HIDE_STALE|PUNCH|KEEP', FALLOC_FL_NO_HIDE_STALE | PUNCH | KEEP, 0, K4],
  ['PUNCH|ZERO|KEEP', PUNCH | FALLOC_FL_ZERO_RANGE | KEEP, 0, K4],
  ['negative mode', -1, 0, K4],
];
for (const [name, mode, off, len] of fallocRows) {
  add(
    `fallocate: ${name}`,
    withGmem(K16, BOTH, (s, _vm, g) => s.fallocate(g, mode, off, len)),
  );
}
add(
  'fallocate: selftest sequence (test_fallocate)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const rows: Array<[number, number, number]> = [
      [KEEP, 0, K16],
      [PUNCH | KEEP, K4 - 1, K4],
      [KEEP, K16, K4],
      [KEEP, K16 + K4, K4],
      [PUNCH | KEEP, K16, K4],
      [PUNCH | KEEP, K16 + K4, K4],
      [PUNCH | KEEP, K4, K4 - 1],
      [PUNCH | KEEP, K4, K4],
      [KEEP, K4, K4],
    ];
    for (const [m, o, l] of rows) s.fallocate(g, m, o, l);
  }),
);
for (const [off, len] of [
  [0, 1],
  [0, 4095],
  [0, 4097],
  [1, 1],
  [1, 4095],
  [1, 4096],
  [1, 4097],
  [4096, 1],
  [4096, 4095],
  [4096, 4097],
]) {
  add(
    `fallocate: invalid punch hole (${off}, ${len}) (selftest)`,
    withGmem(K16, BOTH, (s, _vm, g) => s.fallocate(g, PUNCH | KEEP, off!, len!)),
  );
}
for (const flags of [NONE, MMAP, SHARED]) {
  add(
    `fallocate: allocate and punch on a flags-${flags} file`,
    withGmem(K16, flags, (s, _vm, g) => {
      s.fallocate(g, KEEP, 0, K16);
      s.fallocate(g, PUNCH | KEEP, K4, K4);
      s.fallocate(g, KEEP, 0, K16);
    }),
  );
}
add(
  'fallocate: a 1 TiB file allocates a range near its end',
  withGmem(2n ** 40n, NONE, (s, _vm, g) => {
    s.fallocate(g, KEEP, 2n ** 40n - 2n * 4096n, 8192);
    s.fallocate(g, PUNCH | KEEP, 0, 2n ** 40n);
  }),
);

// ------------------------------------------------------------------ mmap (§2.5)
const mmapRows: Array<[string, bigint, Parameters<Session['mmap']>[1]]> = [
  ['no MMAP flag (flags 0) is ENODEV', NONE, { length: K4 }],
  ['no MMAP flag 16 KiB is ENODEV (selftest mmap_not_supported)', NONE, { length: K16 }],
  ['INIT_SHARED without MMAP is ENODEV', SHARED, { length: K4 }],
  ['MAP_PRIVATE is EINVAL (selftest mmap_cow)', BOTH, { length: K16, flags: MAP_PRIVATE }],
  ['MAP_PRIVATE on MMAP-only is EINVAL', MMAP, { length: K4, flags: MAP_PRIVATE }],
  ['MAP_PRIVATE on a no-MMAP file is ENODEV (ENODEV first)', NONE, { length: K4, flags: MAP_PRIVATE }],
  ['PROT_EXEC is EPERM', BOTH, { length: K4, prot: RW | PROT_EXEC }],
  ['PROT_EXEC on a no-MMAP file is EPERM (before ENODEV)', NONE, { length: K4, prot: PROT_READ | PROT_EXEC }],
  ['PROT_EXEC with MAP_PRIVATE is EPERM', BOTH, { length: K4, prot: PROT_EXEC, flags: MAP_PRIVATE }],
  ['PROT_NONE maps', BOTH, { length: K4, prot: PROT_NONE }],
  ['PROT_READ maps', BOTH, { length: K4, prot: PROT_READ }],
  ['length 0 is EINVAL', BOTH, { length: 0 }],
  ['length 2^47 is ENOMEM', BOTH, { length: 2 ** 47 }],
  ['length 2^64-1 is ENOMEM', BOTH, { length: 2n ** 64n - 1n }],
  ['unaligned length maps', BOTH, { length: 100 }],
  ['unaligned offset is EINVAL', BOTH, { length: K4, offset: 1 }],
  ['unaligned offset on a no-MMAP file is EINVAL', NONE, { length: K4, offset: 2048 }],
  ['offset at EOF maps', BOTH, { length: K4, offset: K16 }],
  ['offset far past EOF maps', BOTH, { length: K4, offset: 2n ** 40n }],
  ['offset 2^62 maps', BOTH, { length: K4, offset: 2n ** 62n }],
  ['offset -4096 is EOVERFLOW', BOTH, { length: K4, offset: -4096 }],
  ['offset 2^63-4096 is EOVERFLOW', BOTH, { length: 2 * K4, offset: 2n ** 63n - 4096n }],
  ['flags 0 (no type) is EINVAL', BOTH, { length: K4, flags: 0 }],
  ['flags 0xf (bad type) is EINVAL', BOTH, { length: K4, flags: 0xf }],
  ['MAP_SHARED_VALIDATE maps', BOTH, { length: K4, flags: MAP_SHARED_VALIDATE }],
  ['MAP_SHARED_VALIDATE with MAP_SYNC is EOPNOTSUPP', BOTH, { length: K4, flags: MAP_SHARED_VALIDATE | 0x80000 }],
  ['MAP_SHARED with unknown 0x80000 maps (legacy mask drops it)', BOTH, { length: K4, flags: MAP_SHARED | 0x80000 }],
  ['MAP_GROWSDOWN is EINVAL', BOTH, { length: K4, flags: MAP_SHARED | 0x100 }],
  ['MAP_HUGETLB is EINVAL', BOTH, { length: K4, flags: MAP_SHARED | 0x40000 }],
  ['MAP_POPULATE maps', BOTH, { length: K16, flags: MAP_SHARED | MAP_POPULATE }],
  ['MAP_POPULATE on a private file maps', MMAP, { length: K16, flags: MAP_SHARED | MAP_POPULATE }],
  ['MAP_FIXED is refused by the driver', BOTH, { length: K4, flags: MAP_SHARED | MAP_FIXED }],
];
for (const [name, flags, args] of mmapRows) {
  add(
    `mmap: ${name}`,
    withGmem(K16, flags, (s, _vm, g) => void s.mmap(g, args)),
  );
}
add(
  'mmap: MAP_FIXED_NOREPLACE over an existing mapping is EEXIST',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    if (m) s.mmap(g, { length: K4, flags: MAP_SHARED | MAP_FIXED_NOREPLACE, address: m.address + 4096n }, 'NOREPLACE inside it');
  }),
);
add(
  'mmap: MAP_FIXED_NOREPLACE at an unaligned address is EINVAL',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    if (m) s.mmap(g, { length: K4, flags: MAP_SHARED | MAP_FIXED_NOREPLACE, address: m.address + 1n }, 'NOREPLACE unaligned');
  }),
);
add(
  'mapping: first read is zero, fill reads back (selftest mmap_supported)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.read(m, 0, K16);
    s.fill(m, 0, K16, 0xaa);
    s.read(m, 0, K16);
    s.fallocate(g, PUNCH | KEEP, 0, K4);
    s.read(m, 0, K16, 'after punching page 0');
    s.fill(m, 0, K4, 0xaa);
    s.read(m, 0, K16, 'after refilling page 0');
  }),
);
add(
  'mapping: fault_overflow — fill past EOF stops at EOF with SIGBUS (selftest)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: 4 * K16 });
    s.fill(m, 0, 4 * K16, 0xaa);
    s.read(m, K16, 1, 'read at EOF');
    s.read(m, 0, K16, 'bytes before EOF');
    s.read(m, K16 - 8, 16, 'read straddling EOF');
  }),
);
add(
  'mapping: fault_private — MMAP without INIT_SHARED SIGBUSes every access (selftest)',
  withGmem(K16, MMAP, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0xaa);
    s.read(m, 0, 1);
    s.fallocate(g, KEEP, 0, K16);
    s.read(m, K4, 8, 'read after fallocate');
    s.fill(m, 100, 1, 1, 'write after fallocate');
  }),
);
add(
  'mapping: offset past EOF maps but every access is SIGBUS',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K4, offset: K16 });
    s.read(m, 0, 1);
    s.fill(m, 10, 1, 1);
  }),
);
add(
  'mapping: mapping at an offset sees the right file pages',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const whole = s.mmap(g, { length: K16 });
    for (let p = 0; p < 4; p++) s.fill(whole, p * K4, K4, 0x10 + p);
    const tail = s.mmap(g, { length: 2 * K4, offset: 2 * K4 });
    s.read(tail, 0, 2 * K4);
  }),
);
add(
  'mapping: writes are visible through every mapping',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const a = s.mmap(g, { length: K16 });
    const b = s.mmap(g, { length: K16 });
    s.run('write bytes', () => a?.write(5000, new Uint8Array([1, 2, 3, 4, 5])));
    s.read(b, 4996, 16);
  }),
);
add(
  'mapping: PROT_NONE read and write fault (EFAULT, SIGSEGV)',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K4, prot: PROT_NONE });
    s.read(m, 0, 1);
    s.fill(m, 0, 1, 1);
    s.read(m, 0, 0, 'zero-length read');
  }),
);
add(
  'mapping: PROT_READ cannot be written; PROT_WRITE alone can be read',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const r = s.mmap(g, { length: K4, prot: PROT_READ });
    s.read(r, 0, 4);
    s.fill(r, 0, 4, 1);
    const w = s.mmap(g, { length: K4, prot: PROT_WRITE });
    s.fill(w, 0, 4, 7);
    s.read(w, 0, 8);
  }),
);
add(
  'mapping: accesses outside the mapping are EFAULT',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K4 });
    s.read(m, K4 - 2, 4);
    s.fill(m, K4, 1, 1);
  }),
);
add(
  'mapping: unaligned-length mapping covers only the requested bytes',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: 100 });
    s.read(m, 0, 100);
    s.read(m, 0, 101);
  }),
);
add(
  'mapping: munmap twice is fine, access after munmap is EFAULT',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K4 });
    s.run('munmap', () => m?.munmap());
    s.run('munmap again', () => m?.munmap());
    s.read(m, 0, 1);
  }),
);

// ------------------------------------------------------------------ punch while mapped, data lifetime (§2.5, §2.7)
add(
  'punch while mapped: the punched range reads zero, the rest keeps data',
  withGmem(4 * K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: 4 * K16 });
    s.fill(m, 0, 4 * K16, 0x77);
    s.fallocate(g, PUNCH | KEEP, K4, 3 * K4);
    s.read(m, 0, 4 * K16);
  }),
);
add(
  'punch while mapped: whole-file punch then refault is zero',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0xee);
    s.fallocate(g, PUNCH | KEEP, 0, 2n ** 40n);
    s.read(m, 0, K16);
  }),
);
add(
  'punch while mapped: punching beyond EOF leaves data intact',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0x31);
    s.fallocate(g, PUNCH | KEEP, K16, K16);
    s.read(m, 0, K16);
  }),
);
add(
  'allocate does not change contents of written pages',
  withGmem(K16, BOTH, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, K4, K4, 0x42);
    s.fallocate(g, KEEP, 0, K16);
    s.read(m, 0, K16);
  }),
);
add(
  'allocated-but-untouched pages read zero',
  withGmem(K16, BOTH, (s, _vm, g) => {
    s.fallocate(g, KEEP, 0, K16);
    const m = s.mmap(g, { length: K16 });
    s.read(m, 0, K16);
  }),
);

// ------------------------------------------------------------------ KVM_SET_USER_MEMORY_REGION(2) (§2.6)
/** A VM, one MMAP|INIT_SHARED guest_memfd of `size`, then `body`. */
const bound = (size: number, body: Body) => withGmem(size, BOTH, body);
add(
  'region2: bind a whole file',
  bound(K16, (s, vm, g) => s.region2(vm, { memorySize: K16, guestMemfd: g.fd })),
);
add(
  'region2: slot 32763 is the last valid id',
  bound(K16, (s, vm, g) => s.region2(vm, { slot: 32763, memorySize: K4, guestMemfd: g.fd })),
);
add(
  'region2: slot 32764 is EINVAL',
  bound(K16, (s, vm, g) => s.region2(vm, { slot: 32764, guestMemfd: g.fd })),
);
add(
  'region2: slot 0xffff is EINVAL',
  bound(K16, (s, vm, g) => s.region2(vm, { slot: 0xffff, guestMemfd: g.fd })),
);
add(
  'region2: address space 1 is EINVAL',
  bound(K16, (s, vm, g) => s.region2(vm, { slot: kvmSlot(1, 0), guestMemfd: g.fd })),
);
add(
  'region2: address space 1 with slot 40000 is EINVAL',
  bound(K16, (s, vm, g) => s.region2(vm, { slot: kvmSlot(1, 40000), guestMemfd: g.fd })),
);
for (const [name, flags] of [
  ['GUEST_MEMFD|LOG_DIRTY_PAGES', GMEM | LOG_DIRTY],
  ['GUEST_MEMFD|READONLY', GMEM | READONLY],
  ['unknown bit 3', GMEM | 8],
  ['unknown bit 31', 0x80000000],
  ['bit 16 (KVM_MEMSLOT_INVALID)', 1 << 16],
] as const) {
  add(
    `region2: flags ${name} is EINVAL`,
    bound(K16, (s, vm, g) => s.region2(vm, { flags, guestMemfd: g.fd })),
  );
}
add(
  'region2: flags LOG_DIRTY_PAGES (plain slot) succeeds',
  bound(K16, (s, vm) => s.region2(vm, { flags: LOG_DIRTY })),
);
add(
  'region2: flags READONLY (plain slot) succeeds',
  bound(K16, (s, vm) => s.region2(vm, { flags: READONLY })),
);
add(
  'region2: flags 0 with a garbage fd ignores the fd',
  bound(K16, (s, vm) => s.region2(vm, { flags: 0, guestMemfd: 999999, guestMemfdOffset: 1 })),
);
add(
  'region2: every flag bit 0–31 on a plain and a gmem request (set_memory_region flags test)',
  bound(K16, (s, vm, g) => {
    for (let b = 0; b < 32; b++) {
      const flags = (1 << b) >>> 0;
      s.region2(vm, { slot: 1, flags, guestPhysAddr: 0x100000 * (b + 1), memorySize: K4, guestMemfd: 0 }, `bit ${b}, fd 0`);
      s.region2(
        vm,
        { slot: 2, flags: (flags | GMEM) >>> 0, guestPhysAddr: 0x100000 * (b + 1), memorySize: K4, guestMemfd: g.fd },
        `bit ${b}|GMEM`,
      );
      s.region2(vm, { slot: 1, memorySize: 0 }, 'cleanup slot 1');
      s.region2(vm, { slot: 2, memorySize: 0 }, 'cleanup slot 2');
    }
  }),
);
add(
  'region1: GUEST_MEMFD through the v1 ioctl is EINVAL',
  bound(K16, (s, vm) => {
    s.run('v1 GMEM', () => vm.unsafeSetUserMemoryRegion({ slot: 0, flags: GMEM, guestPhysAddr: 0, memorySize: M2, userspaceAddr: 0 }, V1));
  }),
);
add(
  'region1: every flag bit 0–31 through v1',
  bound(K16, (s, vm) => {
    for (let b = 0; b < 32; b++) {
      s.run(`v1 bit ${b}`, () =>
        vm.unsafeSetUserMemoryRegion({ slot: 0, flags: (1 << b) >>> 0, guestPhysAddr: 0, memorySize: M2, userspaceAddr: 0 }, V1),
      );
      s.run('cleanup', () => vm.unsafeSetUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 0, userspaceAddr: 0 }, V1));
    }
  }),
);
add(
  'region1: identical re-issue is 0, size change EINVAL, move and LOG_DIRTY toggle succeed',
  bound(K16, (s, vm) => {
    const r = { slot: 3, flags: 0, guestPhysAddr: 0x100000, memorySize: K16, userspaceAddr: 0 };
    s.run('create', () => vm.unsafeSetUserMemoryRegion(r, V1));
    s.run('identical', () => vm.unsafeSetUserMemoryRegion(r, V1));
    s.run('resize', () => vm.unsafeSetUserMemoryRegion({ ...r, memorySize: 2 * K16 }, V1));
    s.run('new hva', () => vm.unsafeSetUserMemoryRegion({ ...r, userspaceAddr: 0x10000000 }, V1));
    s.run('toggle READONLY', () => vm.unsafeSetUserMemoryRegion({ ...r, flags: READONLY }, V1));
    s.run('toggle LOG_DIRTY', () => vm.unsafeSetUserMemoryRegion({ ...r, flags: LOG_DIRTY }, V1));
    s.run('move', () => vm.unsafeSetUserMemoryRegion({ ...r, flags: LOG_DIRTY, guestPhysAddr: 0x200000 }, V1));
    s.run('make it GUEST_MEMFD via v2', () =>
      vm.setUserMemoryRegion2({ ...r, guestPhysAddr: 0x200000, flags: GMEM, guestMemfd: -1, guestMemfdOffset: 0 }),
    );
  }),
);
add(
  'region1: move onto another slot is EEXIST, onto its own range succeeds',
  bound(K16, (s, vm) => {
    const a = { slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: 2 * K16, userspaceAddr: 0 };
    s.run('a', () => vm.unsafeSetUserMemoryRegion(a, V1));
    s.run('b', () => vm.unsafeSetUserMemoryRegion({ ...a, slot: 2, guestPhysAddr: 0x200000 }, V1));
    s.run('move a over b', () => vm.unsafeSetUserMemoryRegion({ ...a, guestPhysAddr: 0x200000 - K16 }, V1));
    s.run('move a by one page (self-overlap)', () => vm.unsafeSetUserMemoryRegion({ ...a, guestPhysAddr: 0x100000 + K4 }, V1));
  }),
);
for (const [name, r] of [
  ['memory_size unaligned', { memorySize: K4 + 1 }],
  ['guest_phys_addr unaligned', { guestPhysAddr: 0x1001 }],
  ['userspace_addr unaligned', { userspaceAddr: 0x1001 }],
  ['userspace_addr 0x7fffffffe000 + 2 pages', { userspaceAddr: 0x7fffffffe000n, memorySize: 2 * K4 }],
  ['userspace_addr non-canonical', { userspaceAddr: 0x800000000000n }],
  ['userspace_addr kernel address', { userspaceAddr: 0xfffffffffffff000n }],
  ['guest_memfd_offset unaligned', { guestMemfdOffset: 1 }],
  ['guest_memfd_offset + size wraps u64', { guestMemfdOffset: 2n ** 64n - 4096n, memorySize: 2 * K4 }],
  ['guest_phys_addr + size wraps', { guestPhysAddr: 2n ** 64n - 4096n, memorySize: 2 * K4 }],
  ['memory_size beyond KVM_MEM_MAX_NR_PAGES', { memorySize: 2n ** 43n }],
  ['memory_size unaligned with a bad fd (alignment first)', { memorySize: 1, guestMemfd: 999999 }],
] as const) {
  add(
    `region2: ${name} is EINVAL`,
    bound(K16, (s, vm, g) => s.region2(vm, { guestMemfd: g.fd, ...r })),
  );
}
add(
  'region2: userspace_addr 0x7fffffffe000 + 1 page succeeds',
  bound(K16, (s, vm, g) => s.region2(vm, { guestMemfd: g.fd, userspaceAddr: 0x7fffffffe000n })),
);
add(
  'region2: userspace_addr 0 succeeds',
  bound(K16, (s, vm, g) => s.region2(vm, { guestMemfd: g.fd, userspaceAddr: 0 })),
);
add(
  'region2: userspace_addr = the guest_memfd mapping succeeds',
  bound(K16, (s, vm, g) => {
    const m = s.mmap(g, { length: K16 });
    if (m) s.region2(vm, { guestMemfd: g.fd, memorySize: K16, userspaceAddr: m.address });
  }),
);
add(
  'region2: delete of a missing slot is EINVAL',
  bound(K16, (s, vm) => s.region2(vm, { slot: 5, memorySize: 0 })),
);
add(
  'region2: delete ignores flags, fd and offset',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { guestMemfd: g.fd });
    s.region2(vm, { memorySize: 0, flags: GMEM, guestMemfd: 999999, guestMemfdOffset: 3 }, 'delete with garbage');
    s.region2(vm, { memorySize: 0 }, 'delete again');
  }),
);
add(
  'region2: delete with a bad userspace_addr is EINVAL (checked before delete)',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { guestMemfd: g.fd });
    s.region2(vm, { memorySize: 0, userspaceAddr: 0x800000000000n }, 'delete with non-canonical hva');
    s.region2(vm, { memorySize: 0, userspaceAddr: 0x1001 }, 'delete with unaligned hva');
  }),
);
add(
  'region2: gmem slots are immutable: identical re-issue is EINVAL',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { guestMemfd: g.fd });
    s.region2(vm, { guestMemfd: g.fd }, 'identical');
    s.region2(vm, { guestMemfd: g.fd, guestPhysAddr: 0x100000 }, 'move');
    s.region2(vm, { flags: 0 }, 'drop GUEST_MEMFD');
    s.region2(vm, { flags: LOG_DIRTY }, 'LOG_DIRTY only');
  }),
);
add(
  'region2: a plain slot cannot become a gmem slot',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { flags: 0 });
    s.region2(vm, { guestMemfd: g.fd }, 'add GUEST_MEMFD');
  }),
);
add(
  'region2: GPA overlap is EEXIST even with fd -1',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.region2(vm, { slot: 1, guestPhysAddr: K4, guestMemfd: -1 });
  }),
);
add(
  'region2: GPA overlap is EEXIST even with an unaligned-past-EOF offset',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.region2(vm, { slot: 1, guestPhysAddr: 3 * K4, guestMemfd: g.fd, guestMemfdOffset: 1n << 40n });
  }),
);
add(
  'region2: GPA overlap with a plain slot is EEXIST',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { flags: 0, memorySize: M2 });
    s.region2(vm, { slot: 1, guestPhysAddr: M2 - K4, guestMemfd: g.fd });
    s.region2(vm, { slot: 1, guestPhysAddr: M2, guestMemfd: g.fd }, 'adjacent GPA');
  }),
);
for (const [name, fd] of [
  ['a never-opened fd number is EBADF', 999999],
  ['fd -1 is EBADF', -1],
  ['fd 0xfffffffe is EBADF', 0xfffffffe],
] as const) {
  add(
    `region2: ${name}`,
    bound(K16, (s, vm) => s.region2(vm, { guestMemfd: fd })),
  );
}
add(
  'region2: a closed guest_memfd fd is EBADF',
  bound(K16, (s, vm, g) => {
    const fd = g.fd;
    s.close(g);
    s.region2(vm, { guestMemfd: fd });
  }),
);
add(
  'region2: the /dev/kvm fd is EINVAL',
  bound(K16, (s, vm) => s.region2(vm, { guestMemfd: s.kvm.fd })),
);
add(
  'region2: the VM fd itself is EINVAL',
  bound(K16, (s, vm) => s.region2(vm, { guestMemfd: vm.fd })),
);
add(
  'region2: stdin (fd 0) is EINVAL',
  bound(K16, (s, vm) => s.region2(vm, { guestMemfd: 0 })),
);
for (const kind of ['memfd', 'devnull'] as const) {
  add(
    `region2: a ${kind} fd is EINVAL`,
    bound(K16, (s, vm) => {
      const o = s.other(kind);
      if (o) s.region2(vm, { guestMemfd: o.fd });
    }),
  );
}
add(
  'region2: a guest_memfd of another VM is EINVAL',
  bound(K16, (s, vm) => {
    const other = s.vm();
    const g2 = other && s.gmem(other, { size: K16, flags: BOTH });
    if (g2) s.region2(vm, { guestMemfd: g2.fd });
  }),
);
for (const [name, off, size] of [
  ['offset 2^63 (negative loff_t)', 2n ** 63n, K4],
  ['offset + size past EOF', K4 * 3, 2 * K4],
  ['offset at EOF', K16, K4],
  ['size larger than the file', 0, 2 * K16],
  ['offset far past EOF', 1n << 40n, K4],
] as const) {
  add(
    `region2: ${name} is EINVAL`,
    bound(K16, (s, vm, g) => s.region2(vm, { guestMemfd: g.fd, guestMemfdOffset: off, memorySize: size })),
  );
}
add(
  'region2: 6.18 accepts offset 0x7ffffffffffff000 (signed overflow, E1)',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { guestMemfd: g.fd, guestMemfdOffset: 0x7ffffffffffff000n, memorySize: K16 });
    s.region2(
      vm,
      { slot: 1, guestPhysAddr: M2, guestMemfd: g.fd, guestMemfdOffset: 0x7ffffffffffff000n, memorySize: K4 },
      'same quirk range again',
    );
    s.region2(vm, { slot: 2, guestPhysAddr: 2 * M2, guestMemfd: g.fd, memorySize: K16 }, 'the real file range is still free');
    s.region2(vm, { memorySize: 0 }, 'delete the quirk slot');
    s.region2(
      vm,
      { slot: 1, guestPhysAddr: M2, guestMemfd: g.fd, guestMemfdOffset: 0x7ffffffffffff000n, memorySize: K4 },
      'quirk range free again',
    );
  }),
);
add(
  'region2: offset 0x7ffffffffffff000 with one page (no overflow) is EINVAL',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { guestMemfd: g.fd, guestMemfdOffset: 0x7ffffffffffff000n, memorySize: K4 });
  }),
);
add(
  'region2: overlapping guest_memfd ranges are EINVAL, adjacent succeed',
  bound(4 * K16, (s, vm, g) => {
    s.region2(vm, { memorySize: 2 * K4, guestMemfd: g.fd, guestMemfdOffset: K4 });
    s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: 2 * K4 }, 'inside');
    s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: 2 * K4, guestMemfd: g.fd, guestMemfdOffset: 0 }, 'overlapping head');
    s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: 0 }, 'adjacent before');
    s.region2(vm, { slot: 2, guestPhysAddr: 2 * M2, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: 3 * K4 }, 'adjacent after');
    s.region2(vm, { slot: 3, guestPhysAddr: 3 * M2, memorySize: 4 * K16, guestMemfd: g.fd }, 'covering all');
  }),
);
add(
  'region2: one file bound to many slots',
  bound(4 * K16, (s, vm, g) => {
    for (let i = 0; i < 16; i++)
      s.region2(vm, { slot: i, guestPhysAddr: i * M2, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: i * K4 });
  }),
);
for (const flags of [NONE, MMAP, SHARED]) {
  add(
    `region2: a flags-${flags} file binds`,
    withGmem(K16, flags, (s, vm, g) => s.region2(vm, { memorySize: K16, guestMemfd: g.fd })),
  );
}
add(
  "region2: another VM cannot bind this VM's file",
  bound(K16, (s, vm, g) => {
    s.region2(vm, { guestMemfd: g.fd });
    const other = s.vm();
    if (other) s.region2(other, { guestMemfd: g.fd });
  }),
);
add(
  'region2: two files, the same offsets, different slots',
  bound(K16, (s, vm, g) => {
    const g2 = s.gmem(vm, { size: K16, flags: NONE });
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    if (g2) s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: K16, guestMemfd: g2.fd });
  }),
);
add(
  'region2: binding does not allocate (punch of the bound range is 0)',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.fallocate(g, PUNCH | KEEP, 0, K16);
    s.fallocate(g, KEEP, 0, K16);
  }),
);
add(
  'region2: on a closed VM handle is EBADF',
  bound(K16, (s, vm, g) => {
    s.close(vm);
    s.region2(vm, { guestMemfd: g.fd });
  }),
);
add('selftest add_private_memory_region on the default VM', (s) => {
  const vm = s.vm();
  const other = s.vm();
  if (!vm || !other) return;
  const g = s.gmem(vm, { size: M2, flags: 0n });
  const g2 = s.gmem(other, { size: M2, flags: 0n });
  const memfd = s.other('memfd');
  if (!g || !g2 || !memfd) return;
  const r = { slot: 10, guestPhysAddr: 0xc0000000, memorySize: M2 };
  for (const [what, fd] of [
    ['kvm', s.kvm.fd],
    ['vm', vm.fd],
    ['memfd', memfd.fd],
    ['other vm', g2.fd],
  ] as const) {
    s.region2(vm, { ...r, guestMemfd: fd }, `fd = ${what}`);
  }
  s.region2(vm, { ...r, guestMemfd: g.fd }, 'own guest_memfd');
  s.region2(vm, { ...r, memorySize: 0 }, 'delete');
  for (let off = 1; off < K4; off += 409) s.region2(vm, { ...r, guestMemfd: g.fd, guestMemfdOffset: off }, `offset ${off}`);
  s.region2(vm, { ...r, guestMemfd: g.fd }, 'offset 0');
});
add('selftest add_overlapping_private_memory_regions on the default VM', (s) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: 4 * M2, flags: 0n });
  if (!vm || !g) return;
  s.region2(vm, { slot: 10, guestPhysAddr: 0xc0000000, memorySize: 2 * M2, guestMemfd: g.fd });
  s.region2(vm, { slot: 11, guestPhysAddr: 0x180000000, memorySize: 2 * M2, guestMemfd: g.fd, guestMemfdOffset: 2 * M2 });
  s.region2(vm, { slot: 10, memorySize: 0 }, 'delete 10');
  s.region2(vm, { slot: 10, guestPhysAddr: 0x17fe00000, memorySize: 2 * M2, guestMemfd: g.fd }, 'recreate below 11');
  s.region2(vm, { slot: 10, guestPhysAddr: 0x180200000, memorySize: 2 * M2, guestMemfd: g.fd }, 'recreate inside 11');
  s.region2(
    vm,
    { slot: 10, guestPhysAddr: 0xc0000000, memorySize: 2 * M2, guestMemfd: g.fd, guestMemfdOffset: M2 },
    'gmem range overlaps 11 only',
  );
  s.region2(vm, { slot: 10, guestPhysAddr: 0xc0000000, memorySize: 2 * M2, guestMemfd: g.fd }, 'original place');
});

// ------------------------------------------------------------------ lifetimes (§2.6 release, §2.12)
add(
  'lifetime: the file outlives the VM fd (fallocate, punch, mmap keep working)',
  bound(K16, (s, vm, g) => {
    s.close(vm);
    s.fallocate(g, KEEP, 0, K16);
    s.fallocate(g, PUNCH | KEEP, 0, K4);
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 9);
    s.read(m, 0, K16);
  }),
);
add(
  'lifetime: the file outlives the VM fd even while bound',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.close(vm);
    s.fallocate(g, KEEP, 0, K16);
    s.close(g);
  }),
);
add(
  'lifetime: a mapping keeps the file alive after close',
  bound(K16, (s, _vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0x66);
    s.close(g);
    s.read(m, 0, K16);
    s.fill(m, 0, K4, 0x67);
    s.read(m, 0, 2 * K4);
  }),
);
add(
  'lifetime: a mapping keeps the file alive after close and after the VM fd closes',
  bound(K16, (s, vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.close(g);
    s.close(vm);
    s.fill(m, 0, K16, 0x12);
    s.read(m, 0, K16);
  }),
);
add(
  'lifetime: a dup keeps the binding live after the original closes',
  bound(K16, (s, vm, g) => {
    const d = s.dup(g);
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.close(g);
    if (d) s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: K4, guestMemfd: d.fd }, 'overlapping range through the dup');
  }),
);
add(
  'lifetime: last close while bound orphans the slot (EEXIST, immutable, deletable)',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.close(g);
    s.region2(vm, { slot: 1, guestPhysAddr: K4, guestMemfd: -1 }, 'GPA still occupied');
    s.region2(vm, { memorySize: K16, guestMemfd: -1 }, 're-issue orphan');
    s.region2(vm, { memorySize: K16, flags: 0 }, 'modify orphan without GMEM');
    s.region2(vm, { memorySize: 0 }, 'delete orphan');
    s.region2(vm, { memorySize: 0 }, 'delete again');
    const g2 = s.gmem(vm, { size: K16, flags: BOTH });
    if (g2) s.region2(vm, { memorySize: K16, guestMemfd: g2.fd }, 'slot reusable with a new file');
  }),
);
add(
  'lifetime: last close while bound via a mapping release (munmap is the last reference)',
  bound(K16, (s, vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.close(g);
    s.run('munmap', () => m?.munmap());
    s.region2(vm, { slot: 1, guestPhysAddr: 0, guestMemfd: -1 }, 'GPA still occupied');
    s.region2(vm, { memorySize: 0 }, 'delete orphan');
  }),
);
add(
  'lifetime: data is kept across delete and rebind',
  bound(K16, (s, vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0xab);
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd, userspaceAddr: m?.address ?? 0 });
    s.region2(vm, { memorySize: 0 }, 'delete');
    s.read(m, 0, K16, 'after delete');
    s.region2(vm, { slot: 4, guestPhysAddr: M2, memorySize: K16, guestMemfd: g.fd }, 'rebind elsewhere');
    s.read(m, 0, K16, 'after rebind');
  }),
);
add(
  'lifetime: delete frees the file range for another slot',
  bound(K16, (s, vm, g) => {
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: K16, guestMemfd: g.fd }, 'bound elsewhere: EINVAL');
    s.region2(vm, { memorySize: 0 }, 'delete');
    s.region2(vm, { slot: 1, guestPhysAddr: M2, memorySize: K16, guestMemfd: g.fd }, 'now free');
  }),
);
add(
  'lifetime: release frees memory — a new file reads zero',
  bound(K16, (s, vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0xcd);
    s.run('munmap', () => m?.munmap());
    s.close(g);
    const g2 = s.gmem(vm, { size: K16, flags: BOTH });
    const m2 = g2 && s.mmap(g2, { length: K16 });
    s.read(m2, 0, K16);
  }),
);
add(
  'lifetime: closing the system fd keeps VMs and files working',
  bound(K16, (s, vm, g) => {
    s.close(s.kvm);
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.fallocate(g, KEEP, 0, K16);
    s.run('vm.checkExtension(GUEST_MEMFD_FLAGS)', () => vm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS));
  }),
);
add(
  'lifetime: a dup survives closing the original; closing both releases',
  bound(K16, (s, vm, g) => {
    const d = s.dup(g);
    s.close(g);
    if (!d) return;
    s.fallocate(d, KEEP, 0, K16);
    s.region2(vm, { memorySize: K16, guestMemfd: d.fd });
    s.close(d);
    s.region2(vm, { memorySize: 0 }, 'delete the orphan');
  }),
);
add(
  'lifetime: closing a VM with a bound and an unbound file',
  bound(K16, (s, vm, g) => {
    const g2 = s.gmem(vm, { size: K16, flags: NONE });
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd });
    s.close(vm);
    s.close(g);
    if (g2) s.fallocate(g2, KEEP, 0, K16);
  }),
);
add(
  'lifetime: punch of a bound, mapped range reads zero and the slot stays',
  bound(K16, (s, vm, g) => {
    const m = s.mmap(g, { length: K16 });
    s.fill(m, 0, K16, 0x99);
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd, userspaceAddr: m?.address ?? 0 });
    s.fallocate(g, PUNCH | KEEP, K4, K4);
    s.read(m, 0, K16);
    s.region2(vm, { slot: 1, guestPhysAddr: 0, guestMemfd: -1 }, 'slot still present');
  }),
);

// ------------------------------------------------------------------ anonymous host memory (KvmAnonMapping)
type AnonBody = (s: Session, m: KvmAnonMapping) => void;
/** One `mmapAnonymous(length)`, then `body`. */
const withAnon = (length: number | bigint, body: AnonBody) => (s: Session) => {
  const m = s.anon(length);
  if (m) body(s, m);
};
const A4 = 4 * K4;
/** A 4-page anonymous mapping filled with 0xab, one `madvise`, then each page read back. */
const afterMadvise = (offset: number | bigint, len: number | bigint, advice: number) =>
  withAnon(A4, (s, m) => {
    s.fill(m, 0, A4, 0xab);
    s.madvise(m, offset, len, advice);
    for (let p = 0; p < 4; p++) s.read(m, p * K4, K4, `page ${p}`);
  });
/** A VM and a 4-page anonymous mapping, then `body`. */
const anonVm = (body: (s: Session, vm: KvmVm, m: KvmAnonMapping) => void) => (s: Session) => {
  const vm = s.vm();
  const m = s.anon(A4);
  if (vm && m) body(s, vm, m);
};
for (const length of [0, 2n ** 47n, 2n ** 64n - 4096n, -1])
  add(
    `anon: mmapAnonymous(${length}) is refused`,
    withAnon(length, () => {}),
  );
add(
  'anon: first read is zero (length 3 pages + 10)',
  withAnon(3 * K4 + 10, (s, m) => s.read(m, 0, 3 * K4 + 10)),
);
add(
  'anon: fill across a page boundary reads back',
  withAnon(A4, (s, m) => (s.fill(m, K4 - 8, 16, 0x5a), s.read(m, 0, 2 * K4))),
);
add(
  'anon: write of bytes reads back',
  withAnon(A4, (s, m) => (s.run('write', () => m.write(100, new Uint8Array([1, 2, 3, 4]))), s.read(m, 96, 12))),
);
add(
  'anon: accesses past the unaligned length are EFAULT',
  withAnon(K4 + 10, (s, m) => (s.read(m, K4, 11), s.fill(m, K4 + 10, 1, 1), s.read(m, K4, 10))),
);
add(
  'anon: a 2 MiB + 1 page mapping reads zero at both ends and keeps data',
  withAnon(M2 + K4, (s, m) => (s.read(m, 0, K4), s.fill(m, M2, K4, 3), s.read(m, M2 - K4, 2 * K4))),
);
add(
  'anon: munmap twice is fine; access after munmap is EFAULT',
  withAnon(A4, (s, m) => (s.run('munmap', () => m.munmap()), s.run('munmap', () => m.munmap()), s.read(m, 0, 1), s.fill(m, 0, 1, 1))),
);
add(
  'anon: mmapAnonymous after closing the system fd works',
  (s) => (s.close(s.kvm), withAnon(K4, (s2, m) => (s2.fill(m, 0, K4, 1), s2.read(m, 0, K4)))(s)),
);
add('anon: eight mappings are independent and each starts zero', (s) =>
  [1, 2, 3, 4, 5, 6, 7, 8].map((p) => s.anon(p * K4)).forEach((m, i) => (s.read(m, 0, K4), s.fill(m, 0, K4, i + 1), s.read(m, 0, K4))),
);
add('anon: madvise(DONTNEED) of page 1 reads zero, the rest keeps data', afterMadvise(K4, K4, MADV_DONTNEED));
add('anon: madvise(DONTNEED_LOCKED) of page 1 reads zero', afterMadvise(K4, K4, MADV_DONTNEED_LOCKED));
add('anon: madvise(DONTNEED) of length 1 rounds up to the page', afterMadvise(K4, 1, MADV_DONTNEED));
add('anon: madvise(DONTNEED) of length 0 does nothing', afterMadvise(K4, 0, MADV_DONTNEED));
add('anon: madvise of length 0 at an unaligned offset is EINVAL', afterMadvise(1, 0, MADV_DONTNEED));
add('anon: madvise at an unaligned offset is EINVAL and keeps data', afterMadvise(1, K4, MADV_DONTNEED));
add('anon: madvise(DONTNEED) past the end is ENOMEM and frees the part inside', afterMadvise(3 * K4, 3 * K4, MADV_DONTNEED));
add('anon: madvise(DONTNEED) from a page before is ENOMEM and frees the part inside', afterMadvise(-K4, 2 * K4, MADV_DONTNEED));
add('anon: madvise entirely past the end is ENOMEM', afterMadvise(A4, K4, MADV_DONTNEED));
add('anon: madvise entirely past the end with length 0 is 0', afterMadvise(A4, 0, MADV_DONTNEED));
add('anon: madvise at offset 2^63 is ENOMEM', afterMadvise(2n ** 63n, K4, MADV_DONTNEED));
add('anon: madvise with length 2^64-1 (page round-up wraps) is EINVAL', afterMadvise(0, 2n ** 64n - 1n, MADV_DONTNEED));
add('anon: madvise with length -4096 (end wraps) is EINVAL', afterMadvise(K4, -K4, MADV_DONTNEED));
add(
  'anon: madvise(DONTNEED) of the whole unaligned-length mapping',
  withAnon(3 * K4 + 10, (s, m) => (s.fill(m, 0, 3 * K4 + 10, 7), s.madvise(m, 0, 3 * K4 + 10, MADV_DONTNEED), s.read(m, 0, 3 * K4 + 10))),
);
add('anon: madvise(REMOVE) is EINVAL (no file behind private anonymous memory)', afterMadvise(0, K4, MADV_REMOVE));
add('anon: madvise(REMOVE) past the end is EINVAL (the part inside fails first)', afterMadvise(3 * K4, 3 * K4, MADV_REMOVE));
add('anon: madvise(REMOVE) entirely past the end is ENOMEM', afterMadvise(A4, K4, MADV_REMOVE));
add(
  'anon: unknown advice 5 is EINVAL whatever the range',
  withAnon(A4, (s, m) =>
    [
      [1, K4],
      [3 * K4, 3 * K4],
      [A4, K4],
      [0, 0],
      [0, -1],
    ].forEach(([o, l]) => s.madvise(m, o!, l!, 5)),
  ),
);
add(
  'anon: every advice 0–24 and 26–40 on page 1, then the contents',
  withAnon(A4, (s, m) => {
    for (let a = 0; a <= 40; a++)
      if (a !== MADV_COLLAPSE) s.fill(m, 0, A4, 0xab), s.madvise(m, K4, K4, a), s.read(m, 0, A4, `after advice ${a}`);
  }),
);
add(
  'anon: advice -1, 99, 103 (GUARD_REMOVE), 104, 1000, 2^31-1',
  withAnon(A4, (s, m) => [-1, 99, MADV_GUARD_REMOVE, 104, 1000, 2 ** 31 - 1].forEach((a) => (s.madvise(m, K4, K4, a), s.read(m, K4, K4)))),
);
add(
  'anon: HWPOISON, SOFT_OFFLINE and GUARD_INSTALL are refused with EINVAL; data kept',
  withAnon(
    A4,
    (s, m) => (
      s.fill(m, 0, A4, 9), [MADV_HWPOISON, MADV_SOFT_OFFLINE, MADV_GUARD_INSTALL].forEach((a) => s.madvise(m, K4, K4, a)), s.read(m, 0, A4)
    ),
  ),
);
add(
  'anon: madvise after munmap: ENOMEM, length 0 is 0, advice 5 EINVAL, REMOVE ENOMEM',
  withAnon(
    A4,
    (s, m) => (
      s.run('munmap', () => m.munmap()),
      [
        [K4, MADV_DONTNEED],
        [0, MADV_DONTNEED],
        [K4, 5],
        [K4, MADV_REMOVE],
      ].forEach(([l, a]) => s.madvise(m, 0, l!, a!))
    ),
  ),
);
add(
  'anon: as userspace_addr of a plain REGION2 slot',
  anonVm((s, vm, m) => s.region2(vm, { flags: 0, memorySize: A4, userspaceAddr: m.address })),
);
add(
  'anon: as userspace_addr of v1 slots, READONLY too',
  anonVm((s, vm, m) =>
    [0, READONLY].forEach((flags, i) =>
      s.run(`region1 flags ${flags}`, () =>
        vm.setUserMemoryRegion({ slot: i, flags, guestPhysAddr: i * M2, memorySize: A4, userspace: { mapping: m } }),
      ),
    ),
  ),
);
add(
  'anon: as userspace_addr of a GUEST_MEMFD slot of a private (flags 0) file',
  withGmem(K16, NONE, (s, vm, g) => s.region2(vm, { memorySize: K16, guestMemfd: g.fd, userspaceAddr: s.anon(K16)?.address ?? 0 })),
);
add(
  'anon: as userspace_addr of a GUEST_MEMFD slot of an MMAP|INIT_SHARED file',
  bound(K16, (s, vm, g) => s.region2(vm, { memorySize: K16, guestMemfd: g.fd, userspaceAddr: s.anon(K16)?.address ?? 0 })),
);
add(
  'anon: one mapping behind two slots (host addresses may overlap)',
  anonVm((s, vm, m) =>
    [0, 1].forEach((slot) => s.region2(vm, { slot, flags: 0, guestPhysAddr: slot * M2, memorySize: A4, userspaceAddr: m.address })),
  ),
);
add(
  'anon: userspace_addr one byte into the mapping is EINVAL',
  anonVm((s, vm, m) => s.region2(vm, { flags: 0, memorySize: K4, userspaceAddr: m.address + 1n })),
);
add(
  'anon: a slot may reach past the end of its anonymous mapping',
  anonVm((s, vm, m) => s.region2(vm, { flags: 0, memorySize: 2 * A4, userspaceAddr: m.address + BigInt(K4) })),
);
add(
  'anon: a plain anon-backed slot and a gmem slot overlapping in GPA is EEXIST, either order',
  bound(K16, (s, vm, g) => {
    const m = s.anon(A4);
    s.region2(vm, { slot: 0, flags: 0, memorySize: A4, userspaceAddr: m?.address ?? 0 });
    s.region2(vm, { slot: 1, guestPhysAddr: K4, memorySize: K4, guestMemfd: g.fd }, 'gmem slot inside: EEXIST');
    s.region2(vm, { slot: 1, guestPhysAddr: A4, memorySize: K4, guestMemfd: g.fd }, 'gmem slot adjacent: ok');
    s.region2(
      vm,
      { slot: 2, flags: 0, guestPhysAddr: A4, memorySize: K4, userspaceAddr: m?.address ?? 0 },
      'plain slot on the gmem slot: EEXIST',
    );
  }),
);
add(
  'anon: two anon-backed gmem slots of one file: overlapping file ranges EINVAL, disjoint ok',
  bound(K16, (s, vm, g) => {
    const m = s.anon(K16);
    const hva = m?.address ?? 0;
    s.region2(vm, { slot: 0, memorySize: 2 * K4, guestMemfd: g.fd, userspaceAddr: hva });
    s.region2(
      vm,
      { slot: 1, guestPhysAddr: M2, memorySize: 2 * K4, guestMemfd: g.fd, guestMemfdOffset: K4, userspaceAddr: hva },
      'file range overlaps: EINVAL',
    );
    s.region2(
      vm,
      { slot: 1, guestPhysAddr: M2, memorySize: 2 * K4, guestMemfd: g.fd, guestMemfdOffset: 2 * K4, userspaceAddr: hva },
      'disjoint: ok',
    );
  }),
);
add(
  'anon: MADV_DONTNEED while bound reads zero; the slot stays; delete; the mapping still works',
  anonVm((s, vm, m) => {
    s.fill(m, 0, A4, 0x42);
    s.region2(vm, { flags: 0, memorySize: A4, userspaceAddr: m.address });
    s.madvise(m, K4, 2 * K4, MADV_DONTNEED);
    s.read(m, 0, A4);
    s.region2(vm, { slot: 1, flags: 0, memorySize: K4, userspaceAddr: m.address }, 'slot still present: EEXIST');
    s.region2(vm, { flags: 0, memorySize: 0 }, 'delete');
    s.fill(m, 0, K4, 0x43);
    s.read(m, 0, 2 * K4);
  }),
);
add(
  'anon: munmap while bound: the slot stays and can be deleted',
  anonVm((s, vm, m) => {
    s.region2(vm, { flags: 0, memorySize: A4, userspaceAddr: m.address });
    s.run('munmap', () => m.munmap());
    s.region2(vm, { slot: 1, flags: 0, memorySize: K4, userspaceAddr: 0 }, 'slot still present: EEXIST');
    s.region2(vm, { flags: 0, memorySize: 0 }, 'delete');
  }),
);
add(
  'anon: anonymous memory and a guest_memfd mapping are independent',
  bound(K16, (s, vm, g) => {
    const a = s.anon(K16);
    const gm = s.mmap(g, { length: K16 });
    s.region2(vm, { memorySize: K16, guestMemfd: g.fd, userspaceAddr: a?.address ?? 0 });
    s.fill(a, 0, K16, 0x11);
    s.fill(gm, 0, K16, 0x22);
    s.fallocate(g, PUNCH | KEEP, 0, K4);
    s.madvise(a, K4, K4, MADV_DONTNEED);
    s.read(a, 0, K16, 'anon');
    s.read(gm, 0, K16, 'guest_memfd');
  }),
);

/** Every differential scenario, in a stable order. Names are unique. */
export const SCENARIOS: readonly Scenario[] = [
  ...table.map(([name, run]) => ({ name, run })),
  ...FIDELITY_SCENARIOS,
  ...ADVERSARIAL_SCENARIOS,
  ...OPS_SCENARIOS,
];
