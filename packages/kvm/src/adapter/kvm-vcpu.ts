/**
 * Neutral vCPUs on KVM: {@link NativeKvmVcpu} runs the image's x86-64 code on the real /dev/kvm in
 * 64-bit long mode; {@link SimKvmVcpu} runs its op list through the simulated kernel's guest
 * accesses, turning each failed access into the exit KVM_RUN would give.
 */
import { GuestMemError, GuestOpInterpreter, HostAccessFault, gmErr, type GuestImage, type MemoryAccess, type Vcpu, type VcpuExit, type VcpuRunOptions } from '@guestmem/core';
import type { NativeVcpu, VcpuExit as NativeExit } from '../native/vcpu.js';
import type { SimKvmVm } from '../sim/vm.js';
import {
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
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
      return { kind: 'io', port: e.io!.port, size: e.io!.size, direction: e.io!.direction, data: e.io!.direction === 'out' ? e.io!.data.subarray(0, e.io!.size) : new Uint8Array(e.io!.size), info };
    case KVM_EXIT_MMIO:
      return { kind: 'mmio', gpa: e.mmio!.physAddr, size: e.mmio!.len, write: e.mmio!.isWrite, data: e.mmio!.isWrite ? e.mmio!.data : new Uint8Array(e.mmio!.len), info };
    case KVM_EXIT_HLT:
      return { kind: 'hlt', info };
    case KVM_EXIT_MEMORY_FAULT: {
      const f = e.memoryFault!;
      return { kind: 'memory-fault', gpa: f.gpa, size: f.size, access: f.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ? 'private' : 'shared', info };
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

  close(): void {
    if (this.native.closed) return;
    this.native.close();
    this.onClose(this);
  }
}

const mmioInfo = (gpa: bigint, len: number, write: boolean, data: Uint8Array) => ({
  reason: KVM_EXIT_MMIO,
  reasonName: 'KVM_EXIT_MMIO',
  mmio: { physAddr: gpa, isWrite: write, len, data },
});

/**
 * The simulated kernel's answer to one guest access as a neutral exit, or undefined when it
 * completed: KVM_EXIT_MEMORY_FAULT records become 'memory-fault', addresses without a memslot (or a
 * write to a READONLY one) 'mmio', everything else KVM_RUN would fail (an unreachable
 * `userspace_addr`, a released file on a host that emulates, hwpoison SIGBUS) 'internal-error'.
 */
export function simAccess(vm: SimKvmVm, kind: 'read' | 'write', gpa: bigint, buf: Uint8Array, view: MemoryAccess | undefined): VcpuExit | undefined {
  try {
    if (kind === 'write') vm.guestAccess({ gpa, len: buf.length, write: true, data: buf, private: view === undefined ? undefined : view === 'private' });
    else buf.set(vm.guestAccess({ gpa, len: buf.length, private: view === undefined ? undefined : view === 'private' }));
    return undefined;
  } catch (e) {
    if (!GuestMemError.is(e)) throw e;
    const info = (e.info ?? {}) as Record<string, unknown>;
    if (info.exitReason === KVM_EXIT_MEMORY_FAULT && info.memoryFault) {
      const f = info.memoryFault as { flags: bigint; gpa: bigint; size: bigint };
      return {
        kind: 'memory-fault',
        gpa: f.gpa,
        size: f.size,
        access: f.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ? 'private' : 'shared',
        info: { reason: KVM_EXIT_MEMORY_FAULT, reasonName: 'KVM_EXIT_MEMORY_FAULT', memoryFault: f, errno: e.code },
      };
    }
    if (info.mmio === true) {
      const data = kind === 'write' ? Uint8Array.from(buf) : new Uint8Array(buf.length);
      return { kind: 'mmio', gpa, size: buf.length, write: kind === 'write', data, info: mmioInfo(gpa, buf.length, kind === 'write', data) };
    }
    if (e instanceof HostAccessFault || e.code === 'EFAULT' || e.code === 'EHWPOISON') {
      return { kind: 'internal-error', info: { reason: KVM_EXIT_INTERNAL_ERROR, reasonName: 'KVM_EXIT_INTERNAL_ERROR', errno: e.code, detail: e.message, ...info } };
    }
    throw e;
  }
}

/** A simulated-kernel vCPU behind the neutral {@link Vcpu}: the image's op list, accesses through `SimKvmVm.guestAccess`. */
export class SimKvmVcpu implements Vcpu {
  readonly #interp: GuestOpInterpreter;
  #closed = false;

  constructor(
    readonly id: number,
    vm: SimKvmVm,
    private readonly onClose: (v: Vcpu) => void,
  ) {
    this.#interp = new GuestOpInterpreter({ access: (kind, gpa, buf, view) => simAccess(vm, kind, gpa, buf, view) });
  }

  get closed(): boolean {
    return this.#closed;
  }

  #live(op: string): void {
    if (this.#closed) throw gmErr('EBADF', op, 'kvm-sim', `vCPU ${this.id} is closed`);
  }

  load(image: GuestImage): void {
    this.#live('load');
    this.#interp.load(image);
  }

  run(_opts: VcpuRunOptions = {}): VcpuExit {
    this.#live('run');
    return this.#interp.run();
  }

  completeRead(data: Uint8Array): void {
    this.#live('completeRead');
    this.#interp.completeRead(data);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(this);
  }
}
