/**
 * The 6.12 line's CMA-pool memory (docs/gunyah-ack.md §5.8, K7 vm_mgr_cma_mem.c): one misc
 * device per reserved CMA pool, `GH_ANDROID_CREATE_CMA_MEM_FD` on it gives a `[gunyah-cma]` fd of
 * the pool's size; one `mmap` per fd allocates one contiguous block; `read` is for the owner only
 * and not while the block is shared with a VM; no write, no fallocate; the last close frees it.
 */
import { UserMemory } from '@guestmem/core';
import { ackIoctlSyscall } from '../uapi/index.js';
import { ACK_BACKEND, ackErr } from './errors.js';
import type { AckHost, AckProcess } from './host.js';
import { guardedHandle, unguard } from '../../sim/leak-guard.js';

/** A CMA pool's misc device. */
export class CmaPoolDevice {
  /** The fd of the pool's block currently allocated, if any. */
  allocatedBy: CmaFd | undefined;
  constructor(
    readonly host: AckHost,
    readonly name: string,
    readonly poolSize: bigint,
    readonly fd: number,
  ) {}

  /** `GH_ANDROID_CREATE_CMA_MEM_FD`: EBUSY while the pool's block is allocated; the caller's mm owns the fd. */
  createCmaMemFd(): CmaFd {
    const f = this.openCmaMemFd();
    // Closed at garbage collection if dropped unclosed (see `../../sim/leak-guard.ts`).
    return guardedHandle(f, 'gunyah-ack-sim CMA fd', `gunyah-ack-sim CMA fd ${f.fd} (pool ${this.name})`, (x) => x.close());
  }

  /** The same, unguarded: for the raw `ioctl` entry point, whose caller holds only the fd number. */
  openCmaMemFd(): CmaFd {
    const syscall = ackIoctlSyscall('GH_ANDROID_CREATE_CMA_MEM_FD');
    if (this.allocatedBy) throw ackErr('EBUSY', 'createCmaMemFd', syscall, `pool ${this.name} is already allocated`);
    const fd = this.host.allocFd(syscall);
    const f = new CmaFd(this, fd, this.host.current);
    this.host.installFd(fd, f);
    return f;
  }
}

/** A `[gunyah-cma]` fd (O_RDWR, O_CLOEXEC); `i_size` = the pool size. */
export class CmaFd {
  /** The contiguous block, once mmapped. Modelled as populated user memory (cma_alloc takes every page at once). */
  block: UserMemory | undefined;
  address: bigint | undefined;
  /** Set while the block is in an RM parcel (reads are EACCES then). */
  shared = false;
  private fdOpen = true;
  /** References: the fd and each binding that holds the file. */
  private refs = 1;

  constructor(
    readonly pool: CmaPoolDevice,
    readonly fd: number,
    readonly owner: AckProcess,
  ) {}

  get size(): bigint {
    return this.pool.poolSize;
  }
  get isOpen(): boolean {
    return this.fdOpen;
  }

  /**
   * `mmap` of the fd into the caller: allocates one contiguous block of `length` bytes. EINVAL when
   * the fd already has its block (one mmap per fd) or `length` exceeds the pool; ENOMEM when the
   * allocation fails.
   */
  mmap(length: bigint | number): bigint {
    const len = BigInt(length);
    if (this.block) throw ackErr('EINVAL', 'mmap', 'mmap', 'this CMA fd is already mapped (one mmap per fd)');
    if (len <= 0n || len > this.size || len % 4096n) throw ackErr('EINVAL', 'mmap', 'mmap', `length ${len} (pool ${this.size})`);
    const host = this.pool.host;
    const block = UserMemory.create({
      size: len,
      kind: 'shmem',
      allocator: host.allocator,
      ops: { backend: ACK_BACKEND, hostAccess: (m, index) => (host.hostMayTouch(m, index) ? 'allow' : 'sigbus') },
    });
    try {
      block.populate(0, len);
    } catch (e) {
      block.release();
      throw ackErr('ENOMEM', 'mmap', 'mmap', 'cma_alloc failed', { cause: String(e) });
    }
    this.block = block;
    this.pool.allocatedBy = this;
    this.address = host.current.mm.map(block);
    return this.address;
  }

  /** `read(2)`: EINVAL before the block exists; EACCES for a caller that is not the owner, or while shared. */
  read(offset: bigint | number, len: number): Uint8Array {
    if (!this.block) throw ackErr('EINVAL', 'read', 'read', 'no CMA block allocated yet');
    if (this.pool.host.current !== this.owner || this.shared)
      throw ackErr('EACCES', 'read', 'read', this.shared ? 'the block is shared with a VM' : 'not the owner mm');
    return this.block.read(offset, len);
  }

  acquire(): void {
    this.refs++;
  }

  /** Drops a reference; the last one frees the block and the pool. */
  release(): void {
    if (--this.refs > 0) return;
    if (this.block) {
      const mm = this.owner.mm;
      if (this.address !== undefined && mm.resolve(this.address)?.memory === this.block) mm.unmap(this.address);
      this.block.release();
      this.block = undefined;
      if (this.pool.allocatedBy === this) this.pool.allocatedBy = undefined;
    }
  }

  /** close(2) of the fd. */
  close(): void {
    if (!this.fdOpen) return;
    unguard(this);
    this.fdOpen = false;
    this.pool.host.closeFd(this.fd);
    this.release();
  }
}
