/**
 * The neutral vCPU on native KVM: {@link NativeKvmVcpu} runs the image's x86-64 code on a
 * `KVM_CREATE_VCPU` fd of the real /dev/kvm in 64-bit long mode. (The simulated kernel's is in
 * `sim-vcpu.ts`.) Wired into the adapter as {@link nativeKvmVcpus} by `openKvmHypervisor`.
 */
import { gmErr, type GuestImage, type Vcpu, type VcpuExit, type VcpuRunOptions } from '@guestmem/core';
import type { KvmVm } from '../api.js';
import type { KvmVcpuDriver } from './kvm-hypervisor.js';
import { asNativeVm } from '../native/driver.js';
import type { NativeVcpu, VcpuExit as NativeExit } from '../native/vcpu.js';
import {
  KVM_EXIT_HLT,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_MEMORY_FAULT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
} from '../uapi/constants.js';
import type { KvmSegment, KvmSregs } from '../uapi/vcpu-structs.js';

/** CR0: PE | ET | NE | PG. */
const CR0_LONG = 0x8000_0031n;
/** CR4: PAE. */
const CR4_PAE = 0x20n;
/** EFER: LME | LMA. */
const EFER_LONG = 0x500n;

function flatSegment(s: KvmSegment, code: boolean): void {
  Object.assign(s, {
    base: 0n,
    limit: 0xffff_ffff,
    selector: code ? 0x8 : 0x10,
    // Code: execute/read, accessed (0xb). Data: read/write, accessed (0x3). SDM vol. 3A §3.4.5.1.
    type: code ? 0xb : 0x3,
    present: 1,
    dpl: 0,
    db: code ? 0 : 1,
    s: 1,
    l: code ? 1 : 0,
    g: 1,
    avl: 0,
    unusable: 0,
  });
}

/**
 * The long-mode entry state of `image` (SDM vol. 3A §9.8.5 without the mode switch itself: the
 * registers are set directly with KVM_SET_SREGS): paging with CR3 = the image's PML4, PAE, EFER
 * LME|LMA, a 64-bit code segment and flat data segments. No GDT/IDT in memory: the programs load no
 * segment and take no interrupt (an exception ends in a triple fault: a `shutdown` exit).
 */
export function longModeSregs(s: KvmSregs, image: GuestImage): KvmSregs {
  flatSegment(s.cs, true);
  for (const seg of [s.ds, s.es, s.fs, s.gs, s.ss]) flatSegment(seg, false);
  s.cr0 = CR0_LONG;
  s.cr3 = image.x86.cr3;
  s.cr4 = CR4_PAE;
  s.efer = EFER_LONG;
  return s;
}

/** The neutral exit of a native KVM_RUN (`info` is the decoded `kvm_run` plus the run's errno). */
export function neutralExit(e: NativeExit): VcpuExit {
  const info = { ...e } as Record<string, unknown>;
  if (e.errno === 'EINTR' || e.reason === KVM_EXIT_INTR) return { kind: 'interrupted', info };
  switch (e.reason) {
    // For `in` and MMIO reads the kvm_run buffer holds whatever was there before: report zeros.
    case KVM_EXIT_IO:
      return {
        kind: 'io',
        port: e.io!.port,
        size: e.io!.size,
        direction: e.io!.direction,
        data: e.io!.direction === 'out' ? e.io!.data.subarray(0, e.io!.size) : new Uint8Array(e.io!.size),
        info,
      };
    case KVM_EXIT_MMIO:
      return {
        kind: 'mmio',
        gpa: e.mmio!.physAddr,
        size: e.mmio!.len,
        write: e.mmio!.isWrite,
        data: e.mmio!.isWrite ? e.mmio!.data : new Uint8Array(e.mmio!.len),
        info,
      };
    case KVM_EXIT_HLT:
      return { kind: 'hlt', info };
    case KVM_EXIT_MEMORY_FAULT: {
      const f = e.memoryFault!;
      return {
        kind: 'memory-fault',
        gpa: f.gpa,
        size: f.size,
        access: f.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ? 'private' : 'shared',
        info,
      };
    }
    case KVM_EXIT_SHUTDOWN:
      return { kind: 'shutdown', info };
    default:
      // KVM_EXIT_INTERNAL_ERROR, FAIL_ENTRY, and reasons this VMM does not serve.
      return { kind: 'internal-error', info };
  }
}

/** A native vCPU behind the neutral {@link Vcpu}. */
export class NativeKvmVcpu implements Vcpu {
  #last: NativeExit | undefined;

  constructor(
    readonly native: NativeVcpu,
    private readonly onClose: (v: Vcpu) => void,
  ) {}

  get id(): number {
    return this.native.id;
  }

  get closed(): boolean {
    return this.native.closed;
  }

  load(image: GuestImage): void {
    this.native.setSregs(longModeSregs(this.native.getSregs(), image));
    this.native.setRegs({ rip: image.x86.entry, rflags: 2 });
    this.#last = undefined;
  }

  run(opts: VcpuRunOptions = {}): VcpuExit {
    const e = this.native.run(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
    this.#last = e;
    return neutralExit(e);
  }

  completeRead(data: Uint8Array): void {
    if (!this.#last) throw gmErr('EINVAL', 'completeRead', 'kvm', 'no exit to complete');
    this.native.completeRead(this.#last, data);
  }

  /** KVM completes an MMIO exit's emulated access on the next KVM_RUN: nothing re-executes it. */
  readonly retriesMmio = false;

  retryMmio(): void {
    throw gmErr('EOPNOTSUPP', 'retryMmio', 'kvm', 'KVM has no MMIO retry: the next KVM_RUN completes the emulated access');
  }

  close(): void {
    if (this.native.closed) return;
    this.native.close();
    this.onClose(this);
  }
}

/** Native KVM's neutral vCPUs: `KVM_CREATE_VCPU` on the VM fd, long-mode x86 code. */
export const nativeKvmVcpus: KvmVcpuDriver = {
  createVcpu: (vm: KvmVm, id: number, onClose: (v: Vcpu) => void) => new NativeKvmVcpu(asNativeVm(vm).createVcpu(id), onClose),
};
