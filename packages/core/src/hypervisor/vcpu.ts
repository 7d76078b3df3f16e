import type { GuestImage } from '../guest/image.js';
import type { MemoryAccess } from './interfaces.js';

/**
 * The neutral vCPU: one guest CPU of a {@link Vm}, run until its next exit. Every backend offers the
 * same exit kinds; what the backend itself reported stays in each exit's `info`.
 *
 * Native KVM runs the image's x86-64 machine code; simulated backends (no instruction emulator) run
 * the image's operation list through their guest-access paths, so the same {@link GuestImage} gives
 * the same exits and the same memory everywhere.
 */

/** Whether an access read, wrote or fetched an instruction. */
export type GuestAccessKind = 'read' | 'write' | 'exec';

/** Fields every exit has. */
interface VcpuExitCommon {
  /**
   * The backend's own record of this exit, for diagnostics (KVM: the decoded `kvm_run` with
   * `reason`/`reasonName` and the arm it selects, plus the run's errno; Gunyah: the decoded
   * `gunyah_vcpu_run`). Never needed to handle the exit.
   */
  readonly info: Readonly<Record<string, unknown>>;
}

/** Port I/O (`in`/`out`). For `in`, give the value with {@link Vcpu.completeRead} before the next run. */
export interface VcpuIoExit extends VcpuExitCommon {
  readonly kind: 'io';
  readonly port: number;
  /** Bytes per access: 1, 2 or 4. */
  readonly size: number;
  readonly direction: 'in' | 'out';
  /** `out`: the bytes written (little-endian, `size` bytes). `in`: zeros until completed. */
  readonly data: Uint8Array;
}

/** An access to a guest address no memory backs (device emulation). For reads, {@link Vcpu.completeRead}. */
export interface VcpuMmioExit extends VcpuExitCommon {
  readonly kind: 'mmio';
  readonly gpa: bigint;
  readonly size: number;
  readonly write: boolean;
  /** Writes: the bytes written. Reads: zeros until completed. */
  readonly data: Uint8Array;
}

/** The guest halted (`hlt` with no interrupt to wait for). */
export interface VcpuHltExit extends VcpuExitCommon {
  readonly kind: 'hlt';
}

/**
 * The guest touched memory the backend will not give it as it stands: KVM's
 * `KVM_EXIT_MEMORY_FAULT` (a private/shared mismatch, or a private access with nothing behind it),
 * Gunyah's `GUNYAH_VCPU_EXIT_PAGE_FAULT` (a page the driver could not provide). Resolve it (convert,
 * bind) and call {@link Vcpu.run} again: the faulting access is retried.
 */
export interface VcpuMemoryFaultExit extends VcpuExitCommon {
  readonly kind: 'memory-fault';
  /** Start of the faulting range (page-aligned on KVM). */
  readonly gpa: bigint;
  readonly size: bigint;
  /** The access the guest wanted: private or shared memory. */
  readonly access: MemoryAccess;
  /**
   * What the access did, when the backend's record says (Gunyah's simulated driver does; KVM's
   * `memory_fault` record has no such field, so KVM leaves it out).
   */
  readonly operation?: GuestAccessKind;
}

/** The backend could not go on with the guest (KVM_EXIT_INTERNAL_ERROR, an emulation failure…). */
export interface VcpuInternalErrorExit extends VcpuExitCommon {
  readonly kind: 'internal-error';
}

/** The guest shut down (a triple fault on x86, a system-off request). */
export interface VcpuShutdownExit extends VcpuExitCommon {
  readonly kind: 'shutdown';
}

/**
 * A bounded run ({@link VcpuRunOptions.timeoutMs}) ran out of time with the guest still running;
 * {@link Vcpu.run} continues it.
 */
export interface VcpuInterruptedExit extends VcpuExitCommon {
  readonly kind: 'interrupted';
}

/** What one {@link Vcpu.run} returned. */
export type VcpuExit =
  | VcpuIoExit
  | VcpuMmioExit
  | VcpuHltExit
  | VcpuMemoryFaultExit
  | VcpuInternalErrorExit
  | VcpuShutdownExit
  | VcpuInterruptedExit;

/** The `kind` values of {@link VcpuExit}. */
export type VcpuExitKind = VcpuExit['kind'];

/** Options of {@link Vcpu.run}. */
export interface VcpuRunOptions {
  /**
   * Stop the guest after this many milliseconds if it has not exited (an `'interrupted'` exit).
   * Leaves no signal blocked or pending in the calling thread.
   */
  timeoutMs?: number;
}

/**
 * A guest CPU ({@link Vm.createVcpu}, capability 'vcpu').
 *
 * Lifecycle: `load(image)` (the image's bytes must already be in guest memory, see `loadGuest`),
 * then `run()` until an exit the VMM stops on; `close()` releases the backend's handle (idempotent;
 * closing or destroying the VM closes its vCPUs).
 */
export interface Vcpu {
  /** The vCPU number within its VM. */
  readonly id: number;
  readonly closed: boolean;
  /**
   * Points the vCPU at a guest image: its entry state (registers, paging) on native backends, its
   * operation list on simulated ones. Starts over from the image's entry.
   */
  load(image: GuestImage): void;
  /**
   * Runs the guest until its next exit. After a `'memory-fault'` the faulting access is retried;
   * after `'io'`/`'mmio'` the guest continues past the access.
   */
  run(opts?: VcpuRunOptions): VcpuExit;
  /** Supplies the data of the pending `in` or MMIO read (at least `size` bytes; extra bytes ignored). */
  completeRead(data: Uint8Array): void;
  /**
   * Whether {@link retryMmio} is offered: Gunyah v17 (`mmio.resume_action` RETRY, "userspace
   * probably added a memory binding"); not KVM, whose MMIO exit completes the emulated access.
   */
  readonly retriesMmio: boolean;
  /**
   * After an `'mmio'` exit: do not complete the access, re-execute it on the next {@link run}
   * (the VMM has bound memory there). `EOPNOTSUPP` where {@link retriesMmio} is false; `EINVAL`
   * when no MMIO access is pending.
   */
  retryMmio(): void;
  /** Releases the vCPU (idempotent). */
  close(): void;
}
