import { getSystemErrorMap } from 'node:util';

/**
 * Linux errno numbers (x86-64/asm-generic values) for every code this project can report.
 *
 * The numbers are the kernel's, so an error from the simulated kernel and one read from libc's
 * `errno` after a real syscall compare equal.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  ERANGE: 34,
  ENOSYS: 38,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EHWPOISON: 133,
} as const;

/** A symbolic errno code, e.g. `'EINVAL'`. */
export type ErrnoCode = keyof typeof ERRNO;

/**
 * Every `code` a {@link GuestMemError} can carry: an errno code, or `'SIGBUS'` for a host access
 * that the real kernel would answer with a SIGBUS signal instead of an errno.
 */
export type GuestMemErrorCode = ErrnoCode | 'SIGBUS';

const BY_NUMBER = new Map<number, ErrnoCode>(Object.entries(ERRNO).map(([k, v]) => [v, k as ErrnoCode]));

/** errno number → symbolic code; unknown numbers give `'E<n>'`-style fallbacks via {@link errnoName}. */
export function errnoCode(errno: number): ErrnoCode | undefined {
  return BY_NUMBER.get(errno);
}

/**
 * A printable name for any errno number: this project's codes first, then, on Linux, the name Node
 * knows for it (`util.getSystemErrorMap()`, e.g. `'ENOEXEC'`), else `'errno 200'`.
 */
export function errnoName(errno: number): string {
  const own = BY_NUMBER.get(errno);
  if (own) return own;
  // Node's map is keyed by the host's negated errno numbers, which are Linux's only on Linux; from
  // -3000 down it holds libuv's own codes (UV_EOF is -4095), which are no errno.
  const node =
    process.platform === 'linux' && Number.isInteger(errno) && errno > 0 && errno < 3000 ? getSystemErrorMap().get(-errno)?.[0] : undefined;
  return node ?? `errno ${errno}`;
}

const MESSAGES: Record<ErrnoCode, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  ERANGE: 'Numerical result out of range',
  ENOSYS: 'Function not implemented',
  EOVERFLOW: 'Value too large for defined data type',
  EOPNOTSUPP: 'Operation not supported',
  ETIMEDOUT: 'Connection timed out',
  EHWPOISON: 'Memory page has hardware error',
};

/**
 * strerror(3) text for a code. glibc's wording is kept here rather than taken from Node:
 * `util.getSystemErrorMap()` has libuv's own wording ('i/o error'), covers only libuv's errors and
 * lacks EHWPOISON. The numbers of {@link ERRNO} are checked against Node's `os.constants.errno`.
 */
export function strerror(code: GuestMemErrorCode): string {
  return code === 'SIGBUS' ? 'Bus error (access would raise SIGBUS)' : MESSAGES[code];
}
