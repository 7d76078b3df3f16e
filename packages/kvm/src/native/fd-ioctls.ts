/**
 * KVM ioctls issued on an fd of any kind (the "wrong kind of fd" cases of `KvmIoctlTarget` in
 * `api.ts`): the kernel answers, this file only encodes and decodes. A success (which no probed kernel
 * gives) still yields a handle, so no fd can leak.
 */
import type { CreateGuestMemfdArgs, IntArg, KvmGuestMemfd } from '../api.js';
import { KVM_CHECK_EXTENSION, KVM_CREATE_GUEST_MEMFD } from '../uapi/ioctl.js';
import { encodeKvmCreateGuestMemfd, u64 } from './codecs.js';
import { syscallError } from './errors.js';
import type { Libc } from './libc.js';

const createBuf = Buffer.alloc(64);

/** `ioctl(fd, KVM_CHECK_EXTENSION, cap)`. */
export function checkExtensionOn(c: Libc, fd: number, cap: IntArg): number {
  const arg = u64('cap', cap);
  // Why: the capability query on whatever fd this is; the argument is an integer, never dereferenced.
  const r: number = c.ioctlArg(fd, KVM_CHECK_EXTENSION, arg);
  if (r === -1) throw syscallError(c.errno(), 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', { cap });
  return r;
}

/**
 * `ioctl(fd, KVM_CREATE_GUEST_MEMFD, &args)`; `wrap` turns a returned fd into a handle.
 * Safety: `createBuf` is a 64-byte Buffer the kernel only reads (it copies `sizeof(struct
 * kvm_create_guest_memfd)` = 64 bytes in) and that outlives the call.
 */
export function createGuestMemfdOn(
  c: Libc,
  fd: number,
  args: CreateGuestMemfdArgs,
  wrap: (gfd: number, size: bigint, flags: bigint) => KvmGuestMemfd,
): KvmGuestMemfd {
  encodeKvmCreateGuestMemfd(args, createBuf);
  // Why: KVM_CREATE_GUEST_MEMFD on an fd that may not be a VM, to observe the kernel's errno.
  const gfd: number = c.ioctlPtr(fd, KVM_CREATE_GUEST_MEMFD, createBuf);
  if (gfd < 0) throw syscallError(c.errno(), 'createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)', { size: args.size, flags: args.flags });
  return wrap(gfd, u64('size', args.size), u64('flags', args.flags));
}
