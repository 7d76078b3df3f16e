/**
 * The neutral vCPU on the simulated kernel: {@link SimKvmVcpu} runs the image's op list on a sim
 * vCPU fd (`SimKvmVm.createVcpu`, the uAPI-level `KVM_CREATE_VCPU` with its VM reference and id
 * rules), each guest access through that fd's `guestAccess` (the kernel's fault rules), turning
 * each failed access into the exit KVM_RUN would give. Wired into the adapter as
 * {@link simKvmVcpus} by `openKvmHypervisor({ driver: 'sim' })`.
 */
import {
  GuestMemError,
  InterpretedVcpu,
  HostAccessFault,
  mmioAccessExit,
  type MemoryAccess,
  type Vcpu,
  type VcpuExit,
} from '@guestmem/core';
import type { KvmVm } from '../api.js';
import type { SimVcpu } from '../sim/vcpu.js';
import { SimKvmVm } from '../sim/vm.js';
import { KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO, KVM_MEMORY_EXIT_FLAG_PRIVATE } from '../uapi/constants.js';
import type { KvmVcpuDriver } from './kvm-hypervisor.js';

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
export function simAccess(
  vm: Pick<SimKvmVm, 'guestAccess'>,
  kind: 'read' | 'write',
  gpa: bigint,
  buf: Uint8Array,
  view: MemoryAccess | undefined,
): VcpuExit | undefined {
  try {
    if (kind === 'write')
      vm.guestAccess({ gpa, len: buf.length, write: true, data: buf, private: view === undefined ? undefined : view === 'private' });
    else buf.set(vm.guestAccess({ gpa, len: buf.length, private: view === undefined ? undefined : view === 'private' }));
    return undefined;
  } catch (e) {
    return exitOf(e, kind, gpa, buf);
  }
}

/**
 * A guest `touch` on the simulated kernel ({@link GuestAccessPort.touch}): `SimVcpu.guestTouch`,
 * the failing access's error turned into its exit as {@link simAccess} does.
 */
export function simTouch(
  vcpu: Pick<SimVcpu, 'guestTouch'>,
  kind: 'read' | 'write',
  gpa: bigint,
  end: bigint,
  value: number,
  view: MemoryAccess | undefined,
): { at: bigint; exit: VcpuExit } | undefined {
  const r = vcpu.guestTouch({ gpa, end, write: kind === 'write', value, private: view === undefined ? undefined : view === 'private' });
  if (r.error === undefined) return undefined;
  return { at: r.at, exit: exitOf(r.error, kind, r.at, kind === 'write' ? Uint8Array.of(value) : new Uint8Array(1)) };
}

/** The exit a failed simulated access (`buf`: its bytes) gives; errors that are no exit are thrown. */
function exitOf(e: unknown, kind: 'read' | 'write', gpa: bigint, buf: Uint8Array): VcpuExit {
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
  if (info.mmio === true) return mmioAccessExit(kind === 'write', gpa, buf, (data) => mmioInfo(gpa, buf.length, kind === 'write', data));
  if (e instanceof HostAccessFault || e.code === 'EFAULT' || e.code === 'EHWPOISON') {
    return {
      kind: 'internal-error',
      info: { reason: KVM_EXIT_INTERNAL_ERROR, reasonName: 'KVM_EXIT_INTERNAL_ERROR', errno: e.code, detail: e.message, ...info },
    };
  }
  throw e;
}

/** A simulated-kernel vCPU fd behind the neutral {@link Vcpu}: the image's op list, accesses through `SimVcpu.guestAccess`. */
export class SimKvmVcpu extends InterpretedVcpu {
  /** As on the real KVM: the next KVM_RUN completes an MMIO exit's access, nothing re-executes it. */
  readonly retriesMmio = false;
  protected override readonly noMmioRetry = 'KVM has no MMIO retry: the next KVM_RUN completes the emulated access';

  constructor(
    /** The uAPI-level vCPU fd (owned: closed with this vCPU). */
    readonly fd: SimVcpu,
    onClose: (v: Vcpu) => void,
  ) {
    super(
      'kvm-sim',
      {
        access: (kind, gpa, buf, view) => simAccess(fd, kind, gpa, buf, view),
        touch: (kind, gpa, end, value, view) => simTouch(fd, kind, gpa, end, value, view),
      },
      onClose,
    );
  }

  get id(): number {
    return this.fd.id;
  }

  protected override release(): void {
    this.fd.close();
  }
}

/** The simulated kernel's neutral vCPUs: a sim vCPU fd per vCPU, the op list interpreted. */
export const simKvmVcpus: KvmVcpuDriver = {
  createVcpu: (vm: KvmVm, id: number, onClose: (v: Vcpu) => void) => {
    if (!(vm instanceof SimKvmVm)) throw new TypeError("the simulated kernel's vCPUs only run simulated VMs");
    return new SimKvmVcpu(vm.createVcpu(id), onClose);
  },
};
