/**
 * The neutral vCPU on the simulated ACK Gunyah driver: the image's op list runs through
 * `GH_VCPU_RUN`'s guest-access path (`AckVcpu.read/write`), which faults lent memory in as the
 * guest touches it. An access the driver cannot serve ends in `GUNYAH_VCPU_EXIT_PAGE_FAULT`
 * (reported as a neutral 'memory-fault'; the next `run()` re-executes it, as K7's next RUN does) or
 * in an MMIO exit for an address no binding resolves (a neutral 'mmio').
 */
import { InterpretedVcpu, mmioAccessExit, type MemoryAccess, type Vcpu, type VcpuExit } from '@guestmem/core';
import { ACK_BACKEND } from '../sim/errors.js';
import type { AckGuestAccess, AckVm } from '../sim/vm.js';

const PAGE = 4096n;

/** What the vCPU needs from its VM adapter. */
export interface AckVcpuHost {
  readonly sim: AckVm;
  /** Starts the VM if needed (vCPUs run only in a started VM). */
  ensureStarted(): void;
  /** The access of the binding covering `gpa`, if any. */
  accessAt(gpa: bigint): MemoryAccess | undefined;
}

/**
 * One access through the simulated ACK driver as a neutral exit (undefined: done). A PAGE_FAULT
 * becomes 'memory-fault' for the faulting page with the access of the binding there, else
 * 'private' (inference, as for v17: the record carries no access type, and demand-paged memory is
 * lent memory). `handled` (a resume that skipped the access) cannot come from a fresh access.
 */
export function ackAccess(host: AckVcpuHost, kind: 'read' | 'write', gpa: bigint, buf: Uint8Array): VcpuExit | undefined {
  const v = host.sim.vcpu();
  const r: AckGuestAccess = kind === 'read' ? v.read(gpa, buf.length) : v.write(gpa, buf);
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
    // The whole access goes to the VMM, as KVM's sim reports it; a read's data comes through completeRead.
    return mmioAccessExit(r.isWrite, gpa, buf, () => ({
      exitReasonName: 'GUNYAH_VCPU_EXIT_MMIO',
      physAddr: r.gpa,
      len: r.len,
      isWrite: r.isWrite,
    }));
  }
  return { kind: 'internal-error', info: { status: r.status } };
}

/** An ACK Gunyah vCPU behind the neutral {@link Vcpu}. */
export class AckSimVcpu extends InterpretedVcpu {
  /** The ACK model resumes an MMIO exit only as handled (see `AckGuestAccess`): no retry. */
  readonly retriesMmio = false;
  protected override readonly noMmioRetry = 'the simulated ACK driver resumes an MMIO exit only as handled';

  constructor(
    readonly id: number,
    private readonly host: AckVcpuHost,
    onClose: (v: Vcpu) => void,
  ) {
    // ACK's uAPI has no private/shared bit per access either: the binding decides.
    super(ACK_BACKEND, { access: (kind, gpa, buf) => ackAccess(host, kind, gpa, buf) }, onClose);
  }

  protected override beforeRun(): void {
    this.host.ensureStarted();
  }
}
