/**
 * The file operations a guest_memfd refuses or answers itself (besides fallocate/mmap/fstat), as
 * Linux 6.18 answers them (probed on the target kernel; sources in the comments). `SimGuestMemfd`
 * delegates to these; state they need (the open file's status flags) lives on `SimGmemFile`.
 *
 * Why these answers (virt/kvm/guest_memfd.c): `kvm_gmem_fops` defines only `mmap`, `open`, `release`
 * and `fallocate` — no `read_iter`/`write_iter` (readv/writev EINVAL: no FMODE_CAN_READ/WRITE), no
 * `fsync` (EINVAL), no `splice_read`/`splice_write` (sendfile EINVAL), no `unlocked_ioctl` (ENOTTY),
 * no `fasync` (O_ASYNC ignored); `kvm_gmem_setattr` returns -EINVAL for every attribute change
 * (fchmod/fchown); the file is opened O_RDWR and gets `O_LARGEFILE` added at creation (F_GETFL).
 */
import { O_APPEND, O_DIRECT, O_NOATIME, O_NONBLOCK } from '../uapi/constants.js';
import { i64, u64 } from './codecs.js';
import type { IntArg } from '../api.js';
import { sysErr } from './errors.js';
import type { SimFdTable } from './fd-table.js';

/** `SETFL_MASK` (fs/fcntl.c): the only status flags F_SETFL changes (O_NDELAY is O_NONBLOCK on x86). */
const SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;
const I64_LIMIT = 1n << 63n;

/**
 * `fcntl(F_SETFL)` (`setfl`): O_DIRECT needs FMODE_CAN_ODIRECT, which guest_memfd never sets
 * (EINVAL); O_NOATIME needs the owner or CAP_FOWNER (assumed, see `api.ts`); FASYNC changes only
 * through `f_op->fasync`, which guest_memfd lacks, so O_ASYNC is ignored. Returns the new flags.
 */
export function setStatusFlags(current: number, arg: number): number {
  if (arg & O_DIRECT) throw sysErr('EINVAL', 'setStatusFlags', 'fcntl(F_SETFL)', 'guest_memfd cannot do O_DIRECT', { flags: arg });
  return (arg & SETFL_MASK) | (current & ~SETFL_MASK);
}

/**
 * `sendfile(outFd, gmem, offset, count)` (`do_sendfile`, probed order): an offset pointer needs
 * FMODE_PREAD on the input (ESPIPE); `rw_verify_area` refuses a count negative as ssize_t (EINVAL);
 * the output fd must be open (EBADF); then splicing from guest_memfd is EINVAL (no `splice_read`).
 */
export function sendfileFromGmem(fds: SimFdTable, outFd: number, count: IntArg, offset: IntArg | undefined): never {
  const info = { outFd, count, offset };
  if (offset !== undefined) {
    i64('offset', offset);
    throw sysErr('ESPIPE', 'sendfileTo', 'sendfile', 'guest_memfd has no pread (FMODE_PREAD)', info);
  }
  if (u64('count', count) >= I64_LIMIT) throw sysErr('EINVAL', 'sendfileTo', 'sendfile', 'count is negative as ssize_t', info);
  if (!fds.get(outFd)) throw sysErr('EBADF', 'sendfileTo', 'sendfile', `fd ${outFd} is not open`, info);
  throw sysErr('EINVAL', 'sendfileTo', 'sendfile', 'guest_memfd cannot be spliced from', info);
}

/**
 * `sendfile(gmem, inFd, offset, count)` with this guest_memfd as the output (probed order, see
 * `KvmGuestMemfd.sendfileFrom`). The simulated memfds are always empty (nothing writes to them), so
 * a memfd source reads nothing and the call returns 0 before anything reaches guest_memfd.
 */
export function sendfileToGmem(fds: SimFdTable, inFd: number, count: IntArg, offset: IntArg | undefined, outFlags: number): bigint {
  const info = { inFd, count, offset };
  const fail = (code: 'EBADF' | 'ESPIPE' | 'EINVAL', detail: string) => sysErr(code, 'sendfileFrom', 'sendfile', detail, info);
  const src = fds.get(inFd);
  const off = offset === undefined ? undefined : i64('offset', offset);
  const n = u64('count', count);
  if (!src) throw fail('EBADF', `fd ${inFd} is not open`);
  // No FMODE_PREAD: guest_memfd and the anon-inode KVM files (VM, vCPU).
  if (off !== undefined && (src.kind === 'gmem' || src.kind === 'vm' || src.kind === 'vcpu'))
    throw fail('ESPIPE', `a ${src.kind} fd has no pread`);
  // rw_verify_area(READ, in, pos, count).
  if (n >= I64_LIMIT) throw fail('EINVAL', 'count is negative as ssize_t');
  if (off !== undefined && (off < 0n || off + n >= I64_LIMIT))
    throw fail('EINVAL', 'offset is negative or offset + count overflows loff_t');
  if (src.kind === 'gmem') throw fail('EINVAL', 'guest_memfd cannot be spliced from');
  // Probed: O_APPEND on the output is refused even for count 0 (do_splice_direct's check comes first).
  if (outFlags & O_APPEND) throw fail('EINVAL', 'the output is in O_APPEND mode (do_splice_direct)');
  if (n === 0n) return 0n;
  if (src.kind === 'memfd') return 0n;
  throw fail('EINVAL', `guest_memfd cannot be spliced to (source ${src.kind})`);
}
