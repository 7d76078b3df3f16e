/**
 * The libc entry points of the native driver, bound through koffi with **fixed** prototypes.
 *
 * `open` and `ioctl` are variadic in C. Declaring them with fixed parameter lists is correct on
 * x86-64 SysV for these uses: the variadic argument travels in the same register (rdx) as a fixed
 * one would, `ioctl` is a plain syscall wrapper that always forwards rdx, and `open` only reads its
 * variadic `mode` with O_CREAT/O_TMPFILE, which we never pass. Fixed prototypes are also much
 * cheaper to call through koffi than its variadic (type, value) pairs.
 *
 * errno: koffi reads the C `errno` of the calling thread with `koffi.errno()`; every wrapper reads
 * it right after a failing call, before any other native call can overwrite it.
 */
import koffi from 'koffi';

type Fn = (...args: any[]) => any;

export interface Libc {
  /** int open(const char *path, int flags) */
  open: Fn;
  /** int close(int fd) */
  close: Fn;
  /** int dup(int fd) */
  dup: Fn;
  /** int ioctl(int fd, unsigned long req, unsigned long arg): integer-argument ioctls. */
  ioctlArg: Fn;
  /** int ioctl(int fd, unsigned long req, void *arg): struct-pointer ioctls. */
  ioctlPtr: Fn;
  /** void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off) */
  mmap: Fn;
  /** int munmap(void *addr, size_t len) */
  munmap: Fn;
  /** int fallocate(int fd, int mode, int64_t off, int64_t len) */
  fallocate: Fn;
  /** int fstat(int fd, void *statbuf) — or the pre-2.33 `__fxstat(1, fd, buf)` fallback. */
  fstat: (fd: number, buf: Buffer) => number;
  /** intptr_t read(int fd, void *buf, size_t n) */
  read: Fn;
  /** intptr_t write(int fd, const void *buf, size_t n) */
  write: Fn;
  /** intptr_t pread(int fd, void *buf, size_t n, int64_t off) */
  pread: Fn;
  /** intptr_t pwrite(int fd, const void *buf, size_t n, int64_t off) */
  pwrite: Fn;
  /** int64_t lseek(int fd, int64_t off, int whence) */
  lseek: Fn;
  /** int ftruncate(int fd, int64_t len) */
  ftruncate: Fn;
  /** int memfd_create(const char *name, unsigned int flags) */
  memfd_create: Fn;
  /** The C errno of this thread, read right after a failed call. */
  errno(): number;
}

/** `_STAT_VER` of the x86-64 `__fxstat` ABI (glibc before 2.33 exported no plain `fstat`). */
const STAT_VER_X86_64 = 1;

let cached: Libc | Error | undefined;

/** Loads libc once; throws (a plain Error with the loader's message) when koffi or libc is unusable. */
export function libc(): Libc {
  if (cached === undefined) {
    try {
      cached = bind();
    } catch (e) {
      cached = e instanceof Error ? e : new Error(String(e));
    }
  }
  if (cached instanceof Error) throw cached;
  return cached;
}

function bind(): Libc {
  const lib = koffi.load('libc.so.6');
  let fstat: Libc['fstat'];
  try {
    const f = lib.func('int fstat(int fd, void *statbuf)');
    fstat = (fd, buf) => f(fd, buf);
  } catch {
    const fx = lib.func('int __fxstat(int ver, int fd, void *statbuf)');
    fstat = (fd, buf) => fx(STAT_VER_X86_64, fd, buf);
  }
  return {
    open: lib.func('int open(const char *path, int flags)'),
    close: lib.func('int close(int fd)'),
    dup: lib.func('int dup(int fd)'),
    ioctlArg: lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)'),
    ioctlPtr: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
    mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
    munmap: lib.func('int munmap(void *addr, size_t len)'),
    fallocate: lib.func('int fallocate(int fd, int mode, int64_t off, int64_t len)'),
    fstat,
    read: lib.func('intptr_t read(int fd, void *buf, size_t n)'),
    write: lib.func('intptr_t write(int fd, const void *buf, size_t n)'),
    pread: lib.func('intptr_t pread(int fd, void *buf, size_t n, int64_t off)'),
    pwrite: lib.func('intptr_t pwrite(int fd, const void *buf, size_t n, int64_t off)'),
    lseek: lib.func('int64_t lseek(int fd, int64_t off, int whence)'),
    ftruncate: lib.func('int ftruncate(int fd, int64_t len)'),
    memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)'),
    errno: () => koffi.errno(),
  };
}

/** Copies `len` bytes at host address `address` into a new Uint8Array. */
export function copyFromHost(address: bigint, len: number): Uint8Array {
  if (len === 0) return new Uint8Array(0);
  return new Uint8Array(koffi.view(address, len)).slice();
}

/** Copies `data` to host address `address`. */
export function copyToHost(address: bigint, data: Uint8Array): void {
  if (data.byteLength === 0) return;
  new Uint8Array(koffi.view(address, data.byteLength)).set(data);
}

/** `memset(address, byte, len)`. */
export function fillHost(address: bigint, len: number, byte: number): void {
  if (len === 0) return;
  new Uint8Array(koffi.view(address, len)).fill(byte);
}
