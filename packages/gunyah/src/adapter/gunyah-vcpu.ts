/**
 * The neutral vCPU on the simulated Gunyah driver: the image's op list runs through `GUNYAH_VCPU_RUN`'s
 * guest-access path (`SimVcpu.read/write`), which demand-pages lent memory in as the guest touches
 * it. An access the driver cannot serve ends in `GUNYAH_VCPU_EXIT_PAGE_FAULT`, reported as a
 * neutral 'memory-fault'; the next `run()` retries it (`resume_action` RETRY).
 */
import { InterpretedVcpu, mmioAccessExit, type MemoryAccess, type Vcpu, type VcpuExit } from '@guestmem/core';
import type { GuestAccess } from '../api.js';
import { BACKEND } from '../sim/errors.js';
import type { SimVm } from '../sim/vm.js';

const PAGE = 4096n;

/** What the vCPU needs from its VM adapter. */
export interface GunyahVcpuHost {
  readonly sim: SimVm;
  /** Starts the VM if needed (Gunyah runs vCPUs only in a started VM). */
  ensureStarted(): void;
  /** The access of the binding covering `gpa`, if any. */
  accessAt(gpa: bigint): MemoryAccess | undefined;
}

/**
 * One access through the simulated driver as a neutral exit (undefined: done). A PAGE_FAULT becomes
 * 'memory-fault' for the faulting page, with the access the guest wanted taken from the binding
 * there; with no binding, 'private' — an inference: the uAPI's record carries no access type, and
 * a Gunyah VM's demand-paged memory is lent (private) memory.
 */
export function gunyahAccess(host: GunyahVcpuHost, id: number, kind: 'read' | 'write', gpa: bigint, buf: Uint8Array): VcpuExit | undefined {
  const v = host.sim.vcpu(id);
  const r: GuestAccess = kind === 'read' ? v.read(gpa, buf.length) : v.write(gpa, buf);
  if (r.status === 'done') {
    if (kind === 'read') buf.set(r.data!);
    return undefined;
  }
  if (r.status === 'page-fault') {
    const at = r.exit.physAddr;
    return {
      kind: 'memory-fault',
      gpa: at - (at % PAGE),
      size: PAGE,
      access: host.accessAt(at) ?? 'private',
      operation: kind,
      info: { ...r.exit, exitReasonName: 'GUNYAH_VCPU_EXIT_PAGE_FAULT' },
    };
  }
  if (r.status === 'mmio') {
    // GUNYAH_VCPU_EXIT_MMIO (an address no binding backs, or a share binding added after start).
    // The port reports MMIO for the whole access (the driver's ≤ 8-byte record stays in info); a
    // later access resets the vCPU's MMIO state, and a read's data comes through completeRead.
    return mmioAccessExit(kind === 'write', gpa, buf, () => ({ ...r.exit, exitReasonName: 'GUNYAH_VCPU_EXIT_MMIO' }));
  }
  if (r.status === 'vm-exited') return { kind: 'shutdown', info: { ...r.exit, exitReasonName: 'GUNYAH_VCPU_EXIT_STATUS' } };
  return { kind: 'internal-error', info: { status: r.status } };
}

/** A Gunyah vCPU behind the neutral {@link Vcpu}. */
export class GunyahSimVcpu extends InterpretedVcpu {
  /**
   * v17's `mmio.resume_action` RETRY (`gunyah_handle_mmio_resume`: "userspace probably added a
   * memory binding"): the access is demand-paged again and re-executed on the next run.
   */
  readonly retriesMmio = true;

  constructor(
    readonly id: number,
    private readonly host: GunyahVcpuHost,
    onClose: (v: Vcpu) => void,
  ) {
    // Gunyah's uAPI has no private/shared bit per access: the binding decides (`view` is not used).
    super(BACKEND, { access: (kind, gpa, buf) => gunyahAccess(host, id, kind, gpa, buf) }, onClose);
  }

  protected override beforeRun(): void {
    this.host.ensureStarted();
  }
}
