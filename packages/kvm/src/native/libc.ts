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
 *
 * koffi (a native addon) is loaded on the first native call, never at import: a program that only
 * uses the simulated drivers never loads it.
 */
import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

let koffiModule: typeof KoffiModule | undefined;

/** koffi, loaded on first use (its CommonJS entry; the same module its ESM entry re-exports). */
function koffi(): typeof KoffiModule {
  return (koffiModule ??= createRequire(import.meta.url)('koffi') as typeof KoffiModule);
}

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
  /** int madvise(void *addr, size_t len, int advice) */
  madvise: Fn;
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
  const k = koffi();
  const lib = k.load('libc.so.6');
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
    madvise: lib.func('int madvise(void *addr, size_t len, int advice)'),
    fallocate: lib.func('int fallocate(int fd, int mode, int64_t off, int64_t len)'),
    fstat,
    read: lib.func('intptr_t read(int fd, void *buf, size_t n)'),
    write: lib.func('intptr_t write(int fd, const void *buf, size_t n)'),
    pread: lib.func('intptr_t pread(int fd, void *buf, size_t n, int64_t off)'),
    pwrite: lib.func('intptr_t pwrite(int fd, const void *buf, size_t n, int64_t off)'),
    lseek: lib.func('int64_t lseek(int fd, int64_t off, int whence)'),
    ftruncate: lib.func('int ftruncate(int fd, int64_t len)'),
    memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)'),
    errno: () => k.errno(),
  };
}

/**
 * Views of host memory cut into windows of at most this many bytes: koffi (3.3.4 on Node 20) aborts
 * the process when asked for a view longer than 4 GiB, and a window is created once per mapping
 * region, not per access.
 */
export const HOST_WINDOW_BYTES = 1 << 30;

/** Fills up to this many bytes are done with element stores rather than `TypedArray#fill`. */
const SHORT_FILL = 16;

/**
 * Byte access to `[address, address + length)` of the host address space through cached koffi
 * views. A window (an external ArrayBuffer over the memory, never a copy) is created on first use and
 * kept until {@link HostWindows.drop}, so an access costs a typed-array operation, not a koffi call
 * and an ArrayBuffer allocation. Callers bound-check: offsets are relative to `address`, and the
 * memory must stay mapped until `drop()`.
 */
export class HostWindows {
  readonly #views: (Uint8Array | undefined)[] = [];
  constructor(
    readonly address: bigint,
    readonly length: number,
  ) {}

  /** The view of window `k` (bytes `[k * HOST_WINDOW_BYTES, …)`). */
  #window(k: number): Uint8Array {
    let v = this.#views[k];
    if (v === undefined) {
      const base = k * HOST_WINDOW_BYTES;
      v = new Uint8Array(koffi().view(this.address + BigInt(base), Math.min(HOST_WINDOW_BYTES, this.length - base)));
      this.#views[k] = v;
    }
    return v;
  }

  /** Calls `fn(view, from, to, done)` for each window piece of `[start, start + len)`, in address order. */
  #each(start: number, len: number, fn: (v: Uint8Array, from: number, to: number, done: number) => void): void {
    let pos = start;
    const end = start + len;
    while (pos < end) {
      const k = Math.floor(pos / HOST_WINDOW_BYTES);
      const base = k * HOST_WINDOW_BYTES;
      const to = Math.min(end, base + HOST_WINDOW_BYTES);
      fn(this.#window(k), pos - base, to - base, pos - start);
      pos = to;
    }
  }

  /** `memset(address + start, byte, len)`. */
  fill(start: number, len: number, byte: number): void {
    if (len === 0) return;
    const k = Math.floor(start / HOST_WINDOW_BYTES);
    const from = start - k * HOST_WINDOW_BYTES;
    if (from + len <= HOST_WINDOW_BYTES) {
      // The common case: one window (the whole mapping when it is at most 1 GiB). Short fills are
      // plain element stores, which V8 inlines; TypedArray#fill is a builtin call costing ~50 ns.
      const v = this.#window(k);
      if (len <= SHORT_FILL) for (let i = from; i < from + len; i++) v[i] = byte;
      else v.fill(byte, from, from + len);
      return;
    }
    this.#each(start, len, (v, a, b) => v.fill(byte, a, b));
  }

  /** Copies `len` bytes at `address + start` into a new Uint8Array. */
  read(start: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.#each(start, len, (v, a, b, done) => out.set(v.subarray(a, b), done));
    return out;
  }

  /** Copies `dst.length - dstOffset` bytes at `address + start` into `dst`. */
  readInto(start: number, dst: Uint8Array, dstOffset: number): void {
    this.#each(start, dst.length - dstOffset, (v, a, b, done) => dst.set(v.subarray(a, b), dstOffset + done));
  }

  /** Copies `data` to `address + start`. */
  write(start: number, data: Uint8Array): void {
    this.#each(start, data.byteLength, (v, a, b, done) => v.set(data.subarray(done, done + (b - a)), a));
  }

  /** Forgets every view (call before the memory is unmapped). */
  drop(): void {
    this.#views.length = 0;
  }
}

/**
 * A Buffer over `[address, address + length)` of host memory (no copy), for small fixed mappings
 * such as a vCPU's `kvm_run` area. The caller must drop it before the memory is unmapped.
 */
export function hostBuffer(address: bigint, length: number): Buffer {
  return Buffer.from(koffi().view(address, length));
}

/** The libc calls behind `NativeVcpu.run({ timeoutMs })`, bound on first use (see {@link timerLibc}). */
export interface TimerLibc {
  /** int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) */
  pthread_sigmask: (how: number, set: Buffer, old: Buffer | null) => number;
  /** int timer_create(clockid_t clock, struct sigevent *sev, timer_t *out) */
  timer_create: (clock: number, sev: Buffer, out: Buffer) => number;
  /** int timer_settime(timer_t t, int flags, const struct itimerspec *value, struct itimerspec *old); timer_t is a pointer-sized integer */
  timer_settime: (timer: bigint, flags: number, value: Buffer, old: Buffer | null) => number;
  /** int timer_delete(timer_t t) */
  timer_delete: (timer: bigint) => number;
  /** int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout) */
  sigtimedwait: (set: Buffer, info: Buffer | null, timeout: Buffer) => number;
  /** pid_t gettid(void) */
  gettid: () => number;
  errno(): number;
}

let timerCached: TimerLibc | Error | undefined;

/**
 * Binds the timer/signal calls once. Separate from {@link libc} so that a libc without them (glibc
 * before 2.34 keeps `timer_*` in librt; `gettid` needs 2.30) only disables vCPU timeouts. `timer_t`
 * is declared as `intptr_t`: on x86-64 it is a pointer passed in a register, the same ABI.
 */
export function timerLibc(): TimerLibc {
  if (timerCached === undefined) {
    try {
      const k = koffi();
      const lib = k.load('libc.so.6');
      timerCached = {
        pthread_sigmask: lib.func('int pthread_sigmask(int how, void *set, void *old)'),
        timer_create: lib.func('int timer_create(int clock, void *sev, void *out)'),
        timer_settime: lib.func('int timer_settime(intptr_t timer, int flags, void *value, void *old)'),
        timer_delete: lib.func('int timer_delete(intptr_t timer)'),
        sigtimedwait: lib.func('int sigtimedwait(void *set, void *info, void *timeout)'),
        gettid: lib.func('int gettid()'),
        errno: () => k.errno(),
      };
    } catch (e) {
      timerCached = e instanceof Error ? e : new Error(String(e));
    }
  }
  if (timerCached instanceof Error) throw timerCached;
  return timerCached;
}
