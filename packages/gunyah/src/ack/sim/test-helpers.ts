/** Test-only helpers of the ACK simulation (not exported from the package). */
import { expect } from 'vitest';
import type { UserMemory } from '@guestmem/core';
import { ACK_MAP_FLAGS as F, type AckGeneration } from '../uapi/index.js';
import { openGunyahAck, type AckHost, type AckHostOptions } from './host.js';
import type { AckGuestAccess, AckVm } from './vm.js';

export const P = 4096n;
export const MiB = 1n << 20n;
export const DTB_GPA = 0x4000_0000n;
export const RWX = F.GUNYAH_MEM_ALLOW_RWX;
export const RW = F.GUNYAH_MEM_ALLOW_READ | F.GUNYAH_MEM_ALLOW_WRITE;

/** A VM with a one-page shared DTB region (label 0) at {@link DTB_GPA}, like the Qualcomm holding cell. */
export class AckCell {
  readonly host: AckHost;
  readonly vm: AckVm;
  private label = 1;
  constructor(opts: AckHostOptions & { generation?: AckGeneration; dtbLend?: boolean } = {}) {
    this.host = openGunyahAck(opts);
    this.vm = this.host.createVm();
    const dtb = this.host.current.mmap({ size: P });
    const r = { label: 0, flags: RWX, guestPhysAddr: DTB_GPA, memorySize: P, userspaceAddr: dtb.address };
    if (opts.dtbLend) this.vm.lendUserMem(r);
    else this.vm.setUserMemRegion(r);
    this.vm.setDtbConfig({ guestPhysAddr: DTB_GPA, size: P });
  }

  /** mmaps `size` bytes and binds them at `gpa` with the chosen ioctl. */
  add(
    gpa: bigint,
    size: bigint,
    how: 'lend' | 'share',
    opts: { flags?: number; hugePages?: boolean; kind?: 'anonymous' | 'shmem' | 'file' } = {},
  ): { address: bigint; memory: UserMemory } {
    const m = this.host.current.mmap({ size, hugePages: opts.hugePages, kind: opts.kind });
    const r = { label: this.label++, flags: opts.flags ?? RWX, guestPhysAddr: gpa, memorySize: size, userspaceAddr: m.address };
    if (how === 'lend') this.vm.lendUserMem(r);
    else this.vm.setUserMemRegion(r);
    return m;
  }

  /** The vCPU, after VM_START (B/C do not start the VM on RUN). */
  get cpu() {
    this.vm.start();
    return this.vm.vcpu();
  }

  read(gpa: bigint, len = 1): Uint8Array {
    const r = this.cpu.read(gpa, len);
    expect(r.status).toBe('done');
    return (r as { data: Uint8Array }).data;
  }

  write(gpa: bigint, data: Uint8Array): void {
    expect(this.cpu.write(gpa, data).status).toBe('done');
  }
}

/** The `attempt` of a PAGE_FAULT exit (fails the test on any other result). */
export function faultAttempt(r: AckGuestAccess): number {
  expect(r.status).toBe('page-fault');
  return (r as Extract<AckGuestAccess, { status: 'page-fault' }>).exit.attempt;
}
