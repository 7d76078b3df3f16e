/** Test-only helpers: a "holding cell" VM like Qualcomm's test VMM (not exported from the package). */
import { expect } from 'vitest';
import type { GuestAccess, GunyahGuestMem } from '../api.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_FLAGS_V17 as F } from '../uapi/index.js';
import { openGunyah, type SimDevice } from './device.js';
import type { SimVm } from './vm.js';
import type { SimVcpu } from './vcpu.js';

export const DTB_GPA = 0x4000_0000n;
export const LEND_RW = F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE;
export const SHARE_RW = F.GUNYAH_MEM_FORCE_SHARE | F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE;
export const KIB = 1024n;
export const MIB = 1024n * 1024n;

export const u64le = (v: bigint): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
};
export const le64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);

export class HoldingCell {
  readonly gh: SimDevice;
  readonly vm: SimVm;
  readonly dtbMem: GunyahGuestMem;
  constructor(gh?: SimDevice) {
    this.gh = gh ?? openGunyah({ driver: 'sim' });
    this.vm = this.gh.createVm() as SimVm;
    // The DTB lives in its own one-page lent file (v17 refuses a DTB in a share binding with
    // ENOMEM); the test VMM lends it together with the image (see lifecycle.test.ts).
    this.dtbMem = this.gh.createGuestMem({ flags: 0n, size: 4096 });
    this.vm.mapMem({ guestAddr: DTB_GPA, flags: LEND_RW, guestMemFd: this.dtbMem.fd, offset: 0, size: 4096 });
    this.vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: 4096 });
  }

  /**
   * vCPU 0, after `VM_START` (a no-op once running), as the test VMM's `run_test` starts the VM
   * before every run: memory added before the first use is demand-paged from the start.
   */
  get cpu(): SimVcpu {
    this.vm.start();
    return this.vm.vcpu(0);
  }

  addMemory(gpa: bigint, size: bigint, share: 'lend' | 'share', huge = false, flags?: number): GunyahGuestMem {
    const mem = this.gh.createGuestMem({ flags: huge ? 2n : 0n, size });
    this.vm.mapMem({ guestAddr: gpa, flags: flags ?? (share === 'lend' ? LEND_RW : SHARE_RW), guestMemFd: mem.fd, offset: 0, size });
    return mem;
  }

  /** host_write_slice: mmap, write, munmap. */
  hostWrite(mem: GunyahGuestMem, off: bigint, data: Uint8Array): void {
    const m = mem.mmap({ offset: off - (off % 4096n), length: 4096 });
    try {
      m.write(off % 4096n, data);
    } finally {
      m.unmap();
    }
  }

  /** host_read_slice: mmap, read, munmap — throws when either is refused. */
  hostRead(mem: GunyahGuestMem, off: bigint, len = 8): Uint8Array {
    const m = mem.mmap({ offset: off - (off % 4096n), length: 4096 });
    try {
      return m.read(off % 4096n, len);
    } finally {
      m.unmap();
    }
  }

  readAddr(gpa: bigint): bigint {
    const r = this.cpu.read(gpa, 8);
    expect(r.status).toBe('done');
    return le64((r as { data: Uint8Array }).data);
  }

  writeAddr(gpa: bigint, v: bigint): GuestAccess {
    return this.cpu.write(gpa, u64le(v));
  }

  punch(mem: GunyahGuestMem, off: bigint, len: bigint): void {
    mem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, off, len);
  }
}
