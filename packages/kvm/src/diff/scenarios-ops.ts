/**
 * Named differential scenarios for the operations of `KvmGmemMapping` (madvise, mprotect, mlock2,
 * munlock), the file operations of `KvmGuestMemfd` (readv/writev, sendfile both ways, fsync,
 * fdatasync, fchmod, fchown, F_GETFL/F_SETFL, FIONREAD, reopen through /proc/self/fd, fstat dev/ino),
 * the KVM ioctls on the wrong kind of fd, KVM_CREATE_VCPU, and REGION2's pad fields — every error
 * path with the kernel's errno. Each runs on the real kernel and on the sim (see scenarios.diff.test.ts).
 * Plus the regression scenarios for divergences the random sequences found (prefix "regression:").
 */
import type { KvmGmemMapping, KvmGuestMemfd, KvmVm } from '../api.js';
import {
  FALLOC_FL_KEEP_SIZE as KEEP,
  KVM_MEM_GUEST_MEMFD as GMEM,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_GUARD_INSTALL,
  MADV_HWPOISON,
  MADV_PAGEOUT,
  MADV_POPULATE_READ as POP_R,
  MADV_POPULATE_WRITE as POP_W,
  MADV_REMOVE,
  MADV_SOFT_OFFLINE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_SHARED,
  MLOCK_ONFAULT,
  O_APPEND,
  O_ASYNC,
  O_DIRECT,
  O_NOATIME,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import type { Scenario, Session } from './trace.js';

const K4 = 4096;
const K16 = 16384;
const BOTH = 3n;
const MMAP = 1n;
const RW = PROT_READ | PROT_WRITE;
const M64 = 2n ** 64n;

const table: Array<[string, (s: Session) => void]> = [];
const add = (name: string, run: (s: Session) => void): void => void table.push([name, run]);

type MapBody = (s: Session, m: KvmGmemMapping, g: KvmGuestMemfd, vm: KvmVm) => void;

/** A VM, a guest_memfd of `size` bytes with `flags`, a mapping of `length` at offset 0 with `prot`, then `body`. */
function withMapping(size: number, flags: bigint, length: number, prot: number, body: MapBody): (s: Session) => void {
  return (s) => {
    const vm = s.vm();
    const g = vm && s.gmem(vm, { size, flags });
    const m = g && s.mmapFile(g, { length, prot, flags: MAP_SHARED });
    if (vm && g && m) body(s, m, g, vm);
  };
}

/** A 4-page INIT_SHARED file mapped read-write, pages filled 0xa0..0xa3. */
const filled = (body: MapBody) =>
  withMapping(K16, BOTH, K16, RW, (s, m, g, vm) => {
    for (let p = 0; p < 4; p++) s.fill(m, p * K4, K4, 0xa0 + p, `fill page ${p}`);
    body(s, m, g, vm);
  });

/** Reads the first byte of each of the file's 4 pages through a fresh mapping. */
const contents = (s: Session, g: KvmGuestMemfd, step = 'contents') => {
  const v = s.mmapFile(g, { length: K16 }, `${step}: mmap`);
  for (let p = 0; p < 4; p++) s.read(v, p * K4, 1, `${step}: page ${p}`);
};

const madv = (s: Session, m: KvmGmemMapping, off: number | bigint, len: number | bigint, adv: number) =>
  s.run(`madvise(${off}, ${len}, ${adv})`, () => m.madvise(off, len, adv));
const mprot = (s: Session, m: KvmGmemMapping, off: number | bigint, len: number | bigint, prot: number) =>
  s.run(`mprotect(${off}, ${len}, 0x${prot.toString(16)})`, () => m.mprotect(off, len, prot));
const mlock = (s: Session, m: KvmGmemMapping, off: number | bigint, len: number | bigint, flags = 0) =>
  s.run(`mlock(${off}, ${len}, ${flags})`, () => m.mlock(off, len, flags));
const munlock = (s: Session, m: KvmGmemMapping, off: number | bigint, len: number | bigint) =>
  s.run(`munlock(${off}, ${len})`, () => m.munlock(off, len));

// ------------------------------------------------------------------ madvise on guest_memfd mappings
add(
  'gmem madvise: every advice 0–26 and 100–103 on page 1, then the file contents',
  filled((s, m, g) => {
    for (const adv of [...Array.from({ length: 27 }, (_, i) => i), 100, 101, 102, 103]) {
      madv(s, m, K4, K4, adv);
      s.read(m, K4, 1, `page 1 after ${adv}`);
      s.fill(m, K4, K4, 0xa1, 'refill page 1');
    }
    contents(s, g);
  }),
);
add(
  'gmem madvise: MADV_REMOVE punches the file range (reads zero through every mapping)',
  filled((s, m, g) => {
    madv(s, m, K4, 2 * K4, MADV_REMOVE);
    contents(s, g);
    s.read(m, 0, K16, 'the same mapping');
  }),
);
add(
  'gmem madvise: MADV_REMOVE through a PROT_READ and a PROT_NONE mapping punches too',
  filled((s, _m, g) => {
    for (const [i, prot] of [PROT_READ, PROT_NONE].entries()) {
      const r = s.mmapFile(g, { length: K16, prot }, `mmap prot ${prot}`);
      if (r) madv(s, r, (i + 1) * K4, K4, MADV_REMOVE);
    }
    contents(s, g);
  }),
);
add(
  'gmem madvise: DONTNEED, DONTNEED_LOCKED, COLD, PAGEOUT, WILLNEED keep the contents (shared file)',
  filled((s, m, g) => {
    for (const adv of [MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED]) madv(s, m, 0, K16, adv);
    contents(s, g);
  }),
);
add(
  'gmem madvise: FREE, WIPEONFORK, COLLAPSE are EINVAL on a guest_memfd mapping',
  filled((s, m) => {
    for (const adv of [MADV_FREE, MADV_WIPEONFORK, MADV_COLLAPSE]) madv(s, m, 0, K4, adv);
  }),
);
add(
  'gmem madvise: HWPOISON, SOFT_OFFLINE, GUARD_INSTALL are refused with EINVAL; data kept',
  filled((s, m, g) => {
    for (const adv of [MADV_HWPOISON, MADV_SOFT_OFFLINE, MADV_GUARD_INSTALL]) madv(s, m, K4, K4, adv);
    contents(s, g);
  }),
);
add(
  'gmem madvise: POPULATE_READ/WRITE succeed on INIT_SHARED pages and keep data',
  filled((s, m, g) => {
    madv(s, m, 0, K16, POP_R);
    madv(s, m, 0, K16, POP_W);
    contents(s, g);
  }),
);
add(
  'gmem madvise: POPULATE on a file without INIT_SHARED is EFAULT; DONTNEED/REMOVE succeed',
  withMapping(K16, MMAP, K16, RW, (s, m) => {
    for (const adv of [POP_R, POP_W, MADV_DONTNEED, MADV_REMOVE, MADV_COLLAPSE]) madv(s, m, 0, K4, adv);
  }),
);
add(
  'gmem madvise: POPULATE past EOF is EFAULT, also when the range starts before EOF',
  withMapping(K16, BOTH, 2 * K16, RW, (s, m) => {
    madv(s, m, K16, K4, POP_R);
    madv(s, m, K16 - K4, 2 * K4, POP_W);
    madv(s, m, K16, K4, MADV_DONTNEED);
    madv(s, m, K16, K4, MADV_REMOVE);
  }),
);
add('gmem madvise: POPULATE_WRITE needs PROT_WRITE, POPULATE_READ needs PROT_READ', (s) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K16, flags: BOTH });
  for (const prot of [PROT_READ, PROT_WRITE, PROT_NONE]) {
    const m = g && s.mmapFile(g, { length: K16, prot }, `mmap prot ${prot}`);
    if (m) [POP_R, POP_W].forEach((adv) => madv(s, m, 0, K4, adv));
  }
});
add(
  'gmem madvise: ranges reaching outside the mapping (before, past the end, entirely past)',
  filled((s, m, g) => {
    for (const adv of [MADV_DONTNEED, MADV_REMOVE, POP_R, POP_W, 5, MADV_FREE]) {
      madv(s, m, -K4, 2 * K4, adv);
      madv(s, m, 3 * K4, 2 * K4, adv);
      madv(s, m, K16, K4, adv);
      madv(s, m, -K4, 6 * K4, adv);
    }
    contents(s, g);
  }),
);
add(
  'gmem madvise: argument checks (unaligned, length 0, wrapping lengths, offset 2^63)',
  filled((s, m) => {
    for (const [off, len] of [
      [1, K4],
      [1, 0],
      [0, 0],
      [K16, 0],
      [0, M64 - 1n],
      [K4, -K4],
      [2n ** 63n, K4],
      [0, 1],
    ] as const) {
      madv(s, m, off, len, MADV_DONTNEED);
    }
  }),
);
add(
  'gmem madvise: after munmap everything is ENOMEM (length 0 is 0, unknown advice EINVAL)',
  filled((s, m) => {
    s.run('munmap', () => m.munmap());
    for (const [len, adv] of [
      [K4, MADV_DONTNEED],
      [0, MADV_DONTNEED],
      [K4, 5],
      [K4, POP_R],
      [K4, MADV_REMOVE],
    ] as const)
      madv(s, m, 0, len, adv);
  }),
);
add(
  'gmem madvise: a range crossing a locked page stops there (pages before were punched)',
  filled((s, m, g) => {
    mlock(s, m, K4, K4);
    madv(s, m, 0, 3 * K4, MADV_REMOVE);
    madv(s, m, 2 * K4, 2 * K4, MADV_REMOVE);
    contents(s, g);
  }),
);

// ------------------------------------------------------------------ mprotect
add(
  'gmem mprotect: every prot 0–8, 16, GROWSDOWN, GROWSUP, both, -1',
  filled((s, m) => {
    for (const prot of [
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      16,
      PROT_GROWSDOWN,
      PROT_GROWSUP,
      PROT_GROWSDOWN | PROT_GROWSUP,
      PROT_GROWSDOWN | RW,
      -1,
    ]) {
      mprot(s, m, K4, K4, prot);
      s.run(`protAt(page 1) after 0x${(prot >>> 0).toString(16)}`, () => m.protAt(K4));
    }
  }),
);
add(
  'gmem mprotect: PROT_READ refuses writes (EFAULT), PROT_NONE reads; RW again works',
  filled((s, m) => {
    mprot(s, m, K4, K4, PROT_READ);
    s.fill(m, 0, 2 * K4, 1, 'fill pages 0–1 (page 1 read-only)');
    s.read(m, 0, K16, 'read all');
    mprot(s, m, 2 * K4, K4, PROT_NONE);
    s.read(m, 2 * K4, 1, 'read the PROT_NONE page');
    s.read(m, 3 * K4, K4, 'read the page after it');
    mprot(s, m, 0, K16, RW);
    s.fill(m, 0, K16, 7, 'fill everything');
    s.read(m, 0, K16, 'read back');
  }),
);
add(
  'gmem mprotect: an access runs in address order — bytes before a read-only page are written; on a page past EOF the protection (SIGSEGV) comes before SIGBUS',
  withMapping(2 * K4, BOTH, K16, RW, (s, m) => {
    mprot(s, m, 2 * K4, K4, PROT_READ);
    s.fill(m, K4, 3 * K4, 0x5a, 'fill pages 1–3 (page 2: read-only and past EOF)');
    s.read(m, K4, 1, 'page 1 was written');
    s.read(m, 2 * K4, 1, 'read the read-only page past EOF');
    mprot(s, m, 2 * K4, K4, RW);
    s.fill(m, K4, 3 * K4, 0x6b, 'fill again (page 2 read-write)');
    s.read(m, K4, K4, 'page 1 rewritten');
    mprot(s, m, 0, K4, PROT_NONE);
    s.read(m, 0, 2 * K4, 'read starting on a PROT_NONE page');
  }),
);
add(
  'gmem mprotect: a PROT_READ mapping can become read-write (the file is O_RDWR)',
  withMapping(K16, BOTH, K16, PROT_READ, (s, m) => {
    s.fill(m, 0, 1, 1, 'fill before');
    mprot(s, m, 0, K16, RW);
    s.fill(m, 0, 1, 1, 'fill after');
    s.read(m, 0, 1);
  }),
);
add(
  'gmem mprotect: argument order (unaligned, length 0 and 1, wrapping, 2^64-1, bad prot with length 0)',
  filled((s, m) => {
    for (const [off, len, prot] of [
      [1, K4, RW],
      [1, 0, RW],
      [0, 0, -1],
      [0, 1, PROT_READ],
      [K4, -K4, RW],
      [0, M64 - 1n, RW],
      [1, K4, -1],
      [0, -K4, 16],
      [0, K4, PROT_GROWSDOWN | PROT_GROWSUP],
    ] as const) {
      mprot(s, m, off, len, prot);
    }
  }),
);
add(
  'gmem mprotect: ranges outside the mapping (before, past the end, entirely past; with GROWS bits, EXEC)',
  filled((s, m) => {
    for (const prot of [PROT_READ, PROT_EXEC, PROT_GROWSDOWN | PROT_READ, PROT_GROWSUP | PROT_READ]) {
      mprot(s, m, -K4, 2 * K4, prot);
      mprot(s, m, 3 * K4, 2 * K4, prot);
      mprot(s, m, K16, K4, prot);
    }
    s.fill(m, 0, K16, 3, 'fill (page 3 was made read-only by the past-the-end call)');
    s.run('protAt(page 3)', () => m.protAt(3 * K4));
  }),
);

// ------------------------------------------------------------------ mlock / munlock
add(
  'gmem mlock: lock, unaligned, length 0, wrapping, -1, flags; munlock twice',
  filled((s, m) => {
    for (const [off, len, fl] of [
      [0, K4, 0],
      [1, 10, 0],
      [0, 0, 0],
      [5, 0, 0],
      [0, -K4, 0],
      [0, -1, 0],
      [5, -K4, 0],
      [0, K4, MLOCK_ONFAULT],
      [0, K4, 2],
      [0, K4, -1],
    ] as const) {
      mlock(s, m, off, len, fl);
    }
    for (const [off, len] of [
      [0, K16],
      [0, K16],
      [3, 5],
      [0, -1],
      [0, -K4],
      [0, 0],
    ] as const)
      munlock(s, m, off, len);
  }),
);
add(
  'gmem mlock: a locked range refuses DONTNEED, COLD, PAGEOUT, REMOVE; other advice succeeds; munlock lifts it',
  filled((s, m, g) => {
    mlock(s, m, 0, K4);
    for (const adv of [
      MADV_DONTNEED,
      MADV_COLD,
      MADV_PAGEOUT,
      MADV_REMOVE,
      MADV_DONTNEED_LOCKED,
      MADV_WILLNEED,
      0,
      1,
      2,
      10,
      11,
      12,
      13,
      14,
      15,
      16,
      17,
      19,
      POP_R,
      POP_W,
      103,
    ])
      madv(s, m, 0, K4, adv);
    munlock(s, m, 0, K4);
    madv(s, m, 0, K4, MADV_REMOVE);
    contents(s, g);
  }),
);
add(
  'gmem mlock: a private (no INIT_SHARED) file is ENOMEM and stays locked; MLOCK_ONFAULT succeeds',
  withMapping(K16, MMAP, K16, RW, (s, m) => {
    mlock(s, m, 0, K4);
    madv(s, m, 0, K4, MADV_DONTNEED);
    munlock(s, m, 0, K16);
    mlock(s, m, K4, K4, MLOCK_ONFAULT);
    madv(s, m, K4, K4, MADV_DONTNEED);
  }),
);
add('gmem mlock: past EOF ENOMEM, PROT_NONE ENOMEM, PROT_WRITE succeeds', (s) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K16, flags: BOTH });
  const big = g && s.mmapFile(g, { length: 2 * K16 });
  if (big) mlock(s, big, K16, K4), mlock(s, big, K16 - K4, 2 * K4), munlock(s, big, 0, 2 * K16);
  for (const prot of [PROT_NONE, PROT_WRITE, PROT_READ]) {
    const m = g && s.mmapFile(g, { length: K16, prot }, `mmap prot ${prot}`);
    if (m) mlock(s, m, 0, K4);
  }
});
add(
  'gmem mlock: ranges outside the mapping; the part inside a past-the-end request stays locked',
  filled((s, m) => {
    mlock(s, m, -K4, 2 * K4);
    munlock(s, m, -K4, 2 * K4);
    mlock(s, m, K16, K4);
    munlock(s, m, K16, K4);
    mlock(s, m, 2 * K4, 3 * K4);
    madv(s, m, 2 * K4, K4, MADV_DONTNEED);
    munlock(s, m, 3 * K4, 2 * K4);
    madv(s, m, 3 * K4, K4, MADV_DONTNEED);
    madv(s, m, 2 * K4, K4, MADV_DONTNEED);
  }),
);
add(
  'gmem mlock/mprotect/madvise on a closed-file mapping still work (the mapping holds the file)',
  filled((s, m, g) => {
    s.close(g);
    mprot(s, m, 0, K4, PROT_READ);
    mlock(s, m, K4, K4);
    madv(s, m, 2 * K4, K4, MADV_REMOVE);
    s.read(m, 0, K16, 'read');
  }),
);

// ------------------------------------------------------------------ wrong kind of fd, vCPUs
add('wrong fd: KVM_CREATE_GUEST_MEMFD on the system fd, a guest_memfd, a vCPU, a memfd, /dev/null', (s) => {
  const args = { size: K4, flags: BOTH };
  s.run('system fd', () => s.kvm.createGuestMemfd(args));
  s.run('system fd, bad size', () => s.kvm.createGuestMemfd({ size: 1, flags: 99n }));
  const vm = s.vm();
  const g = vm && s.gmem(vm, args);
  if (g) s.run('guest_memfd', () => g.createGuestMemfd(args));
  const v = vm && s.vcpu(vm, 0);
  if (v) s.run('vCPU', () => v.createGuestMemfd(args));
  for (const kind of ['memfd', 'devnull'] as const) {
    const o = s.other(kind);
    if (o) s.run(kind, () => o.createGuestMemfd(args));
  }
});
add('wrong fd: KVM_CHECK_EXTENSION on a guest_memfd, a vCPU, a memfd, /dev/null (caps 0, 10, 234, 244, 2^32)', (s) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K4, flags: 0n });
  const v = vm && s.vcpu(vm, 0);
  const targets = [
    ['gmem', g],
    ['vcpu', v],
    ['memfd', s.other('memfd')],
    ['devnull', s.other('devnull')],
  ] as const;
  for (const [name, t] of targets)
    for (const cap of [0, 10, 234, 244, 2 ** 32]) if (t) s.run(`${name}.checkExtension(${cap})`, () => t.checkExtension(cap));
});
add('wrong fd: closed handles are EBADF for the wrong-fd ioctls', (s) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K4, flags: 0n });
  const v = vm && s.vcpu(vm, 0);
  for (const h of [g, v]) {
    if (!h) continue;
    s.close(h);
    s.run('checkExtension', () => h.checkExtension(0));
    s.run('createGuestMemfd', () => h.createGuestMemfd({ size: K4, flags: 0n }));
  }
});
add('createVcpu: ids 0, 1, 4095 succeed; a duplicate is EEXIST; 4096, 2^31, 2^32, 2^64-1 are EINVAL', (s) => {
  const vm = s.vm();
  if (!vm) return;
  for (const id of [0, 1, 4095, 0, 4096, 2 ** 31, 2 ** 32, M64 - 1n]) s.vcpu(vm, id);
});
add('createVcpu: an id stays taken after its fd is closed; another VM has its own ids', (s) => {
  const vm = s.vm();
  const vm2 = s.vm();
  const v = vm && s.vcpu(vm, 3);
  if (v) s.close(v);
  if (vm) s.vcpu(vm, 3);
  if (vm2) s.vcpu(vm2, 3);
});
// ------------------------------------------------------------------ file operations on a guest_memfd
const withFile = (body: (s: Session, g: KvmGuestMemfd, vm: KvmVm) => void) => (s: Session) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K16, flags: BOTH });
  if (vm && g) body(s, g, vm);
};
add(
  'file ops: readv/writev are EINVAL with 0, 1 and 3 buffers (and empty ones)',
  withFile((s, g) => {
    for (const n of [0, 1, 3]) {
      const bufs = Array.from({ length: n }, (_, i) => new Uint8Array(i * 16));
      s.run(`readv(${n})`, () => g.readv(bufs));
      s.run(`writev(${n})`, () => g.writev(bufs));
    }
  }),
);
add(
  'file ops: sendfile from a guest_memfd to every fd kind, with and without an offset, counts 0/64/2^63/-1',
  withFile((s, g, vm) => {
    const v = s.vcpu(vm, 0);
    const memfd = s.other('memfd');
    const dn = s.other('devnull');
    const closed = s.other('devnull');
    if (closed) s.close(closed);
    const outs: Array<[string, number | undefined]> = [
      ['gmem', g.fd],
      ['kvm', s.kvm.fd],
      ['vm', vm.fd],
      ['vcpu', v?.fd],
      ['memfd', memfd?.fd],
      ['devnull', dn?.fd],
      ['closed', closed?.fd],
    ];
    for (const [name, fd] of outs) {
      if (fd === undefined) continue;
      for (const count of [0, 64, 2n ** 63n, -1]) {
        s.run(`sendfileTo(${name}, ${count})`, () => g.sendfileTo(fd, count));
        s.run(`sendfileTo(${name}, ${count}, off 0)`, () => g.sendfileTo(fd, count, 0));
      }
    }
  }),
);
add(
  'file ops: sendfile into a guest_memfd from every fd kind (offsets none/0/-1/2^62/2^63-2, counts 0/64/2^63)',
  withFile((s, g, vm) => {
    const v = s.vcpu(vm, 0);
    const g2 = s.gmem(vm, { size: K4, flags: 0n });
    const memfd = s.other('memfd');
    const dn = s.other('devnull');
    const closed = s.other('devnull');
    if (closed) s.close(closed);
    const ins: Array<[string, number | undefined]> = [
      ['self', g.fd],
      ['gmem2', g2?.fd],
      ['kvm', s.kvm.fd],
      ['vm', vm.fd],
      ['vcpu', v?.fd],
      ['memfd', memfd?.fd],
      ['devnull', dn?.fd],
      ['closed', closed?.fd],
    ];
    for (const [name, fd] of ins) {
      if (fd === undefined) continue;
      for (const count of [0, 64, 2n ** 63n]) {
        for (const off of [undefined, 0, -1, 2n ** 62n, 2n ** 63n - 2n])
          s.run(`sendfileFrom(${name}, ${count}, off ${off})`, () => g.sendfileFrom(fd, count, off));
      }
    }
  }),
);
add(
  'file ops: sendfile into an O_APPEND guest_memfd (count 0 and 64)',
  withFile((s, g, vm) => {
    s.run('setStatusFlags(O_APPEND)', () => g.setStatusFlags(O_APPEND));
    const memfd = s.other('memfd');
    const dn = s.other('devnull');
    for (const [name, fd] of [
      ['memfd', memfd?.fd],
      ['devnull', dn?.fd],
      ['vm', vm.fd],
    ] as const) {
      if (fd !== undefined) for (const count of [0, 64]) s.run(`sendfileFrom(${name}, ${count})`, () => g.sendfileFrom(fd, count));
    }
  }),
);
add(
  'file ops: fsync and fdatasync are EINVAL',
  withFile((s, g) => {
    s.run('fsync', () => g.fsync());
    s.run('fdatasync', () => g.fdatasync());
  }),
);
add(
  'file ops: fchmod and fchown are EINVAL (kvm_gmem_setattr), even fchown(-1, -1)',
  withFile((s, g) => {
    for (const mode of [0o600, 0o644, 0o7777, 0]) s.run(`fchmod(0o${mode.toString(8)})`, () => g.fchmod(mode));
    for (const [uid, gid] of [
      [-1, -1],
      [0, 0],
      [0, -1],
      [1000, 1000],
    ])
      s.run(`fchown(${uid}, ${gid})`, () => g.fchown(uid!, gid!));
    s.run('mode unchanged', () => g.fstat().mode);
  }),
);
add(
  'file ops: F_GETFL, then F_SETFL with each flag (O_DIRECT EINVAL, O_ASYNC ignored), dups share them',
  withFile((s, g) => {
    s.run('F_GETFL', () => g.getStatusFlags());
    for (const flags of [
      O_NONBLOCK,
      O_APPEND,
      O_NOATIME,
      O_ASYNC,
      O_DIRECT,
      O_DIRECT | O_NONBLOCK,
      O_RDONLY | 0o100 | 0o1000,
      0o4010000,
      0o10000000,
      0x8000_0000 | 0,
      -1,
      0,
    ]) {
      s.run(`F_SETFL(0x${(flags >>> 0).toString(16)})`, () => g.setStatusFlags(flags));
      s.run('F_GETFL', () => g.getStatusFlags());
    }
    s.run('F_SETFL(O_NONBLOCK)', () => g.setStatusFlags(O_NONBLOCK));
    const d = s.dup(g);
    if (d) s.run('dup F_GETFL', () => d.getStatusFlags());
  }),
);
add(
  'file ops: FIONREAD is ENOTTY',
  withFile((s, g) => void s.run('FIONREAD', () => g.fionread())),
);
add(
  'file ops: reopen through /proc/self/fd is ENXIO for every access mode; other flags are refused',
  withFile((s, g) => {
    for (const access of [O_RDONLY, O_WRONLY, O_RDWR, 3, 0o10000000, -1, 0.5]) s.reopen(g, access);
  }),
);
add(
  'file ops: every new call on a closed guest_memfd handle is EBADF',
  withFile((s, g) => {
    s.close(g);
    s.run('readv', () => g.readv([]));
    s.run('writev', () => g.writev([]));
    s.run('sendfileTo', () => g.sendfileTo(s.kvm.fd, 0));
    s.run('sendfileFrom', () => g.sendfileFrom(s.kvm.fd, 0));
    s.run('fsync', () => g.fsync());
    s.run('fdatasync', () => g.fdatasync());
    s.run('fchmod', () => g.fchmod(0));
    s.run('fchown', () => g.fchown(-1, -1));
    s.run('F_GETFL', () => g.getStatusFlags());
    s.run('F_SETFL', () => g.setStatusFlags(0));
    s.run('FIONREAD', () => g.fionread());
    s.run('reopen', () => g.reopen(O_RDWR));
  }),
);
add('fstat: dev and ino say which fds share a file (dup: same; two files: same dev, different ino)', (s) => {
  const vm = s.vm();
  const a = vm && s.gmem(vm, { size: K4, flags: 0n });
  const b = vm && s.gmem(vm, { size: K4, flags: 0n });
  const d = a && s.dup(a);
  if (!a || !b || !d) return;
  const [sa, sb, sd] = [a.fstat(), b.fstat(), d.fstat()];
  s.note('dup: same dev and ino', sa.dev === sd.dev && sa.ino === sd.ino);
  s.note('two files: same dev', sa.dev === sb.dev);
  s.note('two files: different ino', sa.ino !== sb.ino);
  s.note('dev is not 0', sa.dev !== 0n);
});

// ------------------------------------------------------------------ REGION2 padding
add('region2: non-zero pad1 and pad2[] are ignored by 6.18 (bind and delete succeed)', (s) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K16, flags: BOTH });
  if (!vm || !g) return;
  s.run('region2 with pads', () =>
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: GMEM,
      guestPhysAddr: 0,
      memorySize: K16,
      guestMemfd: g.fd,
      guestMemfdOffset: 0,
      pad1: 0xffff_ffff,
      pad2: Array.from({ length: 14 }, (_, i) => 2n ** 64n - 1n - BigInt(i)),
    }),
  );
  s.run('delete with pads', () =>
    vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 0, guestMemfd: 0, guestMemfdOffset: 0, pad1: 1, pad2: [1] }),
  );
  s.run('15 pad2 values are refused by the encoder', () =>
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 0,
      guestMemfd: 0,
      guestMemfdOffset: 0,
      pad2: Array<number>(15).fill(0),
    }),
  );
  s.fallocate(g, KEEP, 0, K4);
});

// ------------------------------------------------------------------ regressions found by the random sequences
add('regression: anon MADV_COLLAPSE on a never-written 1 GiB mapping is EINVAL (no anon_vma), also partly outside', (s) => {
  const m = s.anon(2n ** 30n - 4096n);
  s.madvise(m, 0, 2n ** 63n, MADV_COLLAPSE, 'collapse [0, 2^63)');
  s.madvise(m, 0, 2n ** 30n - 4096n, MADV_COLLAPSE, 'collapse the whole mapping');
  s.read(m, 0, 16, 'a read does not change it');
  s.madvise(m, 0, 2n ** 30n - 4096n, MADV_COLLAPSE, 'collapse after a read');
});

export const OPS_SCENARIOS: readonly Scenario[] = table.map(([name, run]) => ({ name, run }));
