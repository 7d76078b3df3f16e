/**
 * A v17 vCPU function (`gunyah_vcpu.c`, v17 15/35 and 28/35): its fd, the mmapped
 * `gunyah_vcpu_run` page and `GUNYAH_VCPU_RUN`, driving a simulated guest.
 *
 * The guest is a sequence of memory operations ({@link GuestOp}), given either as a program
 * ({@link SimVcpu.setGuest}, for byte-level VMMs that call the raw ioctl) or one at a time by the
 * `read`/`write`/`exec` shortcuts (each is "the guest does this access; the VMM runs the vCPU").
 * Both go through the same run loop, so exits, resume semantics and errors are the same.
 */
import { PAGE_SIZE } from '@guestmem/core';
import type { GuestAccess, GunyahVcpu } from '../api.js';
import {
  GUNYAH_VCPU_EXIT,
  GUNYAH_VCPU_RESUME,
  GUNYAH_VM_STATUS,
  RESUME_ACTION_VALUE,
  VCPU_RUN,
  VCPU_RUN_ARMS,
  decodeVcpuRunMmio,
  decodeVcpuRunPageFault,
  decodeVcpuRunStatus,
  setMmioResume,
  type ResumeAction,
} from '../uapi/index.js';
import { err } from './errors.js';
import type { SimVm } from './vm.js';

const RUN = 'ioctl(GUNYAH_VCPU_RUN)';
/** A completed write as the shortcut answers it (shared: it is never changed). */
const DONE: GuestAccess = Object.freeze({ status: 'done' });

/** One operation of the simulated guest. */
export type GuestOp =
  | { kind: 'read'; gpa: bigint; len: number }
  | { kind: 'write'; gpa: bigint; data: Uint8Array }
  /** instruction fetch of one byte */
  | { kind: 'exec'; gpa: bigint }
  /** the test guest's page-relinquish hypercall (0x8069) */
  | { kind: 'relinquish'; gpa: bigint; pages: number; sanitize?: boolean }
  /** PSCI SYSTEM_OFF: the RM reports VM_EXITED with `exitType` (default SYSTEM_OFF = 1) */
  | { kind: 'system-off'; exitType?: number; reason?: Uint8Array };

/** What the guest sees after an operation: done (read data), or an abort injected at `gpa`. */
export type GuestOpResult = { ok: true; data?: Uint8Array } | { ok: false; abortAt: bigint };

/** A guest program: yields operations, receives each one's result. */
export type GuestProgram = Generator<GuestOp, void, GuestOpResult>;

/** An access in progress: `done` bytes of it have completed. */
export interface PendingAccess {
  readonly kind: 'read' | 'write' | 'exec';
  readonly gpa: bigint;
  readonly buf: Uint8Array<ArrayBuffer>;
  done: number;
}

/** How one step of an access ended (see `SimVm.step`). */
export type StepResult =
  | { t: 'done' }
  | { t: 'page-fault'; gpa: bigint; attempt: number }
  | { t: 'mmio'; gpa: bigint; len: number; write: boolean };

/** The kernel's `vcpu->state` (v17 15/35). */
type RunState = 'unknown' | 'ready' | 'mmio-read' | 'mmio-write' | 'system-down';

/** How `GUNYAH_VCPU_RUN` treats `page_fault.resume_action` (see `OpenGunyahOptions.pageFaultResume`). */
export type PageFaultResumeMode = 'v17' | 'proposed';

export class SimVcpu implements GunyahVcpu {
  /** The page `mmap` of the vCPU fd returns (`GUNYAH_VCPU_MMAP_SIZE` bytes); `gunyah_vcpu_run` at 0. */
  readonly runPage = new Uint8Array(PAGE_SIZE);
  /** `vcpu->f`: cleared by REMOVE_FUNCTION (RUN then answers ENODEV). */
  attached = true;
  private closed = false;
  /** `vcpu->rsc`: the hypervisor vCPU resource, given by the RM when the VM starts. */
  hasResource = false;
  private state: RunState = 'unknown';
  /** The kernel's own copy of the MMIO access length (`vcpu->mmio_read_len`; writes use it too). */
  private mmioLen = 0;
  private mmioAddr = 0n;
  private program: GuestProgram | undefined;
  private lastResultValue: GuestOpResult = { ok: true };
  /**
   * The last shortcut access, not yet made into {@link lastResult} (no object per access): a read's
   * data, `null` for a write, undefined for none.
   */
  private lastFast: Uint8Array | null | undefined;

  /** What the guest program receives for its last operation. */
  private get lastResult(): GuestOpResult {
    if (this.lastFast !== undefined) {
      // The full path's result of the same access (a fresh object, as there).
      this.lastResultValue = { ok: true, data: this.lastFast ?? undefined };
      this.lastFast = undefined;
    }
    return this.lastResultValue;
  }
  private set lastResult(r: GuestOpResult) {
    this.lastFast = undefined;
    this.lastResultValue = r;
  }
  private pending: PendingAccess | undefined;
  /** A PAGE_FAULT exit whose resume is still to come (only read back in 'proposed' mode). */
  private faultPending = false;
  /** How the last shortcut access ended, when it ended without an exit. */
  private finished: GuestAccess | undefined;
  /** The run serves a shortcut access: it stops when that access is over (the program waits). */
  private shortcut = false;

  constructor(
    readonly vm: SimVm,
    readonly id: number,
    readonly fd: number,
  ) {}

  /** Installs the guest program the raw `GUNYAH_VCPU_RUN` executes. */
  setGuest(program: GuestProgram): void {
    this.program = program;
    this.pending = undefined;
    this.lastResult = { ok: true };
  }

  private view(): DataView {
    return new DataView(this.runPage.buffer, 0, VCPU_RUN.SIZE);
  }

  /**
   * `GUNYAH_VCPU_RUN` (`gunyah_vcpu_run`): returns 0 with an exit in the run page, or throws.
   * ENODEV without the function or before the RM gave the vCPU resource (VM not started: there is
   * no implicit start); EINVAL for an MMIO resume_action outside 0..2; EINTR for immediate_exit,
   * and when the simulated guest has nothing left to do (the kernel would sleep until a wakeup or
   * a signal; the simulation answers as if a signal had come).
   */
  run(): number {
    this.shortcut = false;
    const r = this.runLoop();
    if (r === 'idle') throw err('EINTR', 'vcpuRun', RUN, 'the simulated guest has no more operations (it would wait for an interrupt)');
    return 0;
  }

  /** The loop of `gunyah_vcpu_run`; 'idle' when the guest has no more operations. */
  private runLoop(): 'exit' | 'idle' {
    this.vm.assertOpen(RUN);
    if (!this.attached) throw err('ENODEV', 'vcpuRun', RUN, `vCPU ${this.id} was removed (GUNYAH_VM_REMOVE_FUNCTION)`);
    if (!this.hasResource)
      throw err('ENODEV', 'vcpuRun', RUN, `vCPU ${this.id} has no hypervisor resource: the VM was not started (GUNYAH_VM_START)`);
    switch (this.state) {
      case 'unknown':
        if (!this.checkSystem()) return 'exit';
        this.state = 'ready';
        break;
      case 'mmio-read':
      case 'mmio-write':
        this.mmioResume();
        this.state = 'ready';
        break;
      case 'system-down':
        return 'exit';
      case 'ready':
        if (this.faultPending) this.pageFaultResume();
        break;
    }
    this.faultPending = false;
    for (;;) {
      if (this.runPage[VCPU_RUN.immediateExit]) throw err('EINTR', 'vcpuRun', RUN, 'immediate_exit is set');
      // The vCPU of an exited VM is powered off; gunyah_vcpu_check_system reports it.
      if (!this.checkSystem()) return 'exit';
      if (!this.pending) {
        if (this.shortcut) return 'idle';
        const op = this.nextOp();
        if (!op) return 'idle';
        if (op.kind === 'relinquish') {
          this.vm.relinquish(op.gpa, op.pages, op.sanitize ?? false);
          this.lastResult = { ok: true };
          continue;
        }
        if (op.kind === 'system-off') {
          this.vm.guestExited(op.exitType ?? 1, op.reason ?? new Uint8Array(0));
          this.lastResult = { ok: true };
          continue;
        }
        const len = op.kind === 'read' ? op.len : op.kind === 'write' ? op.data.length : 1;
        const buf = op.kind === 'write' ? new Uint8Array(op.data) : new Uint8Array(len);
        this.pending = { kind: op.kind, gpa: op.gpa, buf, done: 0 };
      }
      const p = this.pending;
      const s = this.vm.step(p);
      if (s.t === 'done') {
        this.complete({ ok: true, data: p.kind === 'read' ? p.buf : undefined });
        continue;
      }
      if (s.t === 'page-fault') {
        this.exitPageFault(s.gpa, s.attempt);
        return 'exit';
      }
      this.exitMmio(s.gpa, s.len, s.write, p);
      return 'exit';
    }
  }

  private nextOp(): GuestOp | undefined {
    if (!this.program) return undefined;
    const n = this.program.next(this.lastResult);
    if (n.done) {
      this.program = undefined;
      return undefined;
    }
    return n.value;
  }

  private complete(r: GuestOpResult): void {
    this.pending = undefined;
    this.lastResult = r;
  }

  /**
   * `gunyah_vcpu_check_system`: false (and a STATUS exit) once the VM is not running: status
   * LOAD_FAILED for INIT_FAILED, EXITED for EXITED (with the RM's exit info), CRASHED otherwise.
   */
  private checkSystem(): boolean {
    const st = this.vm.status;
    if (st === 'running') return true;
    const dv = this.view();
    const s = VCPU_RUN_ARMS.status;
    this.runPage.fill(0, VCPU_RUN.union, VCPU_RUN.SIZE);
    dv.setUint32(
      s.status,
      st === 'init-failed' ? GUNYAH_VM_STATUS.LOAD_FAILED : st === 'exited' ? GUNYAH_VM_STATUS.EXITED : GUNYAH_VM_STATUS.CRASHED,
      true,
    );
    const info = this.vm.exitInfo;
    dv.setUint16(s.exitType, info.type, true);
    dv.setUint32(s.reasonSize, info.reason.length, true);
    this.runPage.set(info.reason.subarray(0, 8), s.reason);
    dv.setUint32(VCPU_RUN.exitReason, GUNYAH_VCPU_EXIT.STATUS, true);
    this.state = 'system-down';
    return false;
  }

  /** `gunyah_handle_page_fault` when demand paging failed: attempt = the errno, resume FAULT. */
  private exitPageFault(gpa: bigint, attempt: number): void {
    const dv = this.view();
    const pf = VCPU_RUN.pageFault;
    this.runPage.fill(0, VCPU_RUN.union, VCPU_RUN.SIZE);
    dv.setUint8(pf.resumeAction, GUNYAH_VCPU_RESUME.FAULT);
    dv.setInt32(pf.attempt, attempt, true);
    dv.setBigUint64(pf.physAddr, gpa, true);
    dv.setUint32(VCPU_RUN.exitReason, GUNYAH_VCPU_EXIT.PAGE_FAULT, true);
    this.faultPending = true;
  }

  /** `gunyah_handle_mmio` when demand paging failed: resume HANDLED by default. */
  private exitMmio(gpa: bigint, len: number, write: boolean, p: PendingAccess): void {
    const dv = this.view();
    const m = VCPU_RUN.mmio;
    if (write) {
      dv.setUint8(m.isWrite, 1);
      this.runPage.fill(0, m.data, m.data + 8);
      this.runPage.set(p.buf.subarray(p.done, p.done + len), m.data);
      this.state = 'mmio-write';
    } else {
      dv.setUint8(m.isWrite, 0);
      this.state = 'mmio-read';
    }
    this.mmioLen = len;
    dv.setUint8(m.resumeAction, GUNYAH_VCPU_RESUME.HANDLED);
    dv.setBigUint64(m.physAddr, gpa, true);
    this.mmioAddr = gpa;
    dv.setUint32(m.len, len, true);
    dv.setUint32(VCPU_RUN.exitReason, GUNYAH_VCPU_EXIT.MMIO, true);
  }

  /**
   * `gunyah_handle_mmio_resume`: HANDLED completes the access (a read takes `mmio.data`, the
   * kernel's own copy of the length), FAULT injects an abort, RETRY demand-pages the address again
   * and re-executes the access; any other value is EINVAL and the vCPU stays in its MMIO state.
   */
  private mmioResume(): void {
    const action = this.view().getUint8(VCPU_RUN.mmio.resumeAction);
    const p = this.pending;
    const write = this.state === 'mmio-write';
    if (action === GUNYAH_VCPU_RESUME.HANDLED) {
      if (!p) return;
      const n = Math.min(this.mmioLen, 8, p.buf.length - p.done);
      if (!write) p.buf.set(this.runPage.subarray(VCPU_RUN.mmio.data, VCPU_RUN.mmio.data + n), p.done);
      p.done += n;
      if (p.done >= p.buf.length) this.complete({ ok: true, data: p.kind === 'read' ? p.buf : undefined });
    } else if (action === GUNYAH_VCPU_RESUME.FAULT) {
      this.complete({ ok: false, abortAt: this.mmioAddr });
    } else if (action === GUNYAH_VCPU_RESUME.RETRY) {
      this.vm.demandPage(this.mmioAddr, write); // "userspace probably added a memory binding"
    } else {
      throw err('EINVAL', 'vcpuRun', RUN, `mmio.resume_action ${action} is not HANDLED, FAULT or RETRY`);
    }
  }

  /**
   * After a PAGE_FAULT exit. v17 never reads `page_fault.resume_action` back: the vCPU stays in
   * its READY state, the hypervisor is resumed with empty resume data and the guest re-executes
   * the faulting access (inference: no other action is given). In 'proposed' mode the documented
   * meaning of the field is honoured: HANDLED skips the access, FAULT injects an abort, RETRY
   * re-executes; other values are EINVAL.
   */
  private pageFaultResume(): void {
    if (this.vm.device.pageFaultResume !== 'proposed') return;
    const action = this.view().getUint8(VCPU_RUN.pageFault.resumeAction);
    const p = this.pending;
    if (action === GUNYAH_VCPU_RESUME.HANDLED) {
      if (p) this.complete({ ok: true, data: p.kind === 'read' ? p.buf : undefined });
      if (p) this.finished = { status: 'handled' };
    } else if (action === GUNYAH_VCPU_RESUME.FAULT) {
      const at = this.view().getBigUint64(VCPU_RUN.pageFault.physAddr, true);
      this.complete({ ok: false, abortAt: at });
    } else if (action !== GUNYAH_VCPU_RESUME.RETRY) {
      throw err('EINVAL', 'vcpuRun', RUN, `page_fault.resume_action ${action} is not HANDLED, FAULT or RETRY`);
    }
  }

  // ------------------------------------------------------------------ shortcuts

  /** Runs one guest access through the run loop and describes how it ended. */
  private access(kind: 'read' | 'write' | 'exec', gpa: bigint, data: Uint8Array): GuestAccess {
    this.pending = { kind, gpa, buf: new Uint8Array(data), done: 0 };
    this.state = this.state === 'system-down' ? 'system-down' : 'ready';
    this.faultPending = false;
    try {
      return this.drive();
    } catch (e) {
      // Refused before the guest ran (ENODEV, EINTR…): the access did not happen.
      if (this.pending?.done === 0) this.pending = undefined;
      throw e;
    }
  }

  private drive(): GuestAccess {
    this.finished = undefined;
    this.shortcut = true;
    const r = this.runLoop();
    if (r === 'idle') {
      if (this.finished) return this.finished;
      const last = this.lastResult;
      if (!last.ok) return { status: 'guest-abort', gpa: last.abortAt, attempt: this.lastAttempt() };
      return last.data ? { status: 'done', data: last.data } : { status: 'done' };
    }
    const reason = this.view().getUint32(VCPU_RUN.exitReason, true);
    const run = this.runPage.subarray(0, VCPU_RUN.SIZE);
    if (reason === GUNYAH_VCPU_EXIT.PAGE_FAULT) {
      return {
        status: 'page-fault',
        exit: decodeVcpuRunPageFault(run),
        run,
        resume: (action?: ResumeAction) => {
          if (action) this.view().setUint8(VCPU_RUN.pageFault.resumeAction, RESUME_ACTION_VALUE[action]);
          return this.drive();
        },
      };
    }
    if (reason === GUNYAH_VCPU_EXIT.MMIO) {
      return {
        status: 'mmio',
        exit: decodeVcpuRunMmio(run),
        run,
        resume: (action?: ResumeAction, data?: Uint8Array) => {
          setMmioResume(this.runPage, action ? RESUME_ACTION_VALUE[action] : this.view().getUint8(VCPU_RUN.mmio.resumeAction), data);
          return this.drive();
        },
      };
    }
    return { status: 'vm-exited', exit: decodeVcpuRunStatus(run) };
  }

  /** The attempt of the PAGE_FAULT exit an abort followed (0 after an MMIO FAULT). */
  private lastAttempt(): number {
    const v = this.view();
    return v.getUint32(VCPU_RUN.exitReason, true) === GUNYAH_VCPU_EXIT.PAGE_FAULT ? v.getInt32(VCPU_RUN.pageFault.attempt, true) : 0;
  }

  /**
   * The shortcut for the access a repeated guest access finds (`SimVm.fastAccess`: a number address
   * inside one provided, touched page of a running VM), taken only when the run loop would go
   * straight to the access (function attached, resource given, no immediate_exit, not powered off).
   * It leaves the vCPU as the full path would: ready, nothing pending, the access's result last.
   */
  private fast(kind: 'read' | 'write', gpa: bigint | number, data: Uint8Array | undefined, length: number): Uint8Array | undefined {
    if (!this.attached || !this.hasResource || this.state === 'system-down' || this.runPage[VCPU_RUN.immediateExit]) return undefined;
    const r = this.vm.fastAccess(kind, gpa, data, length);
    if (r === undefined) return undefined;
    this.pending = undefined;
    this.state = 'ready';
    this.faultPending = false;
    this.lastFast = kind === 'write' ? null : r;
    return r;
  }

  read(gpa: bigint | number, length: number): GuestAccess {
    const d = this.fast('read', gpa, undefined, length);
    return d !== undefined ? { status: 'done', data: d } : this.access('read', BigInt.asUintN(64, BigInt(gpa)), new Uint8Array(length));
  }
  write(gpa: bigint | number, data: Uint8Array): GuestAccess {
    return this.fast('write', gpa, data, data.length) !== undefined ? DONE : this.access('write', BigInt.asUintN(64, BigInt(gpa)), data);
  }
  /**
   * {@link read} when the shortcut serves it (its bytes, no result object), else undefined and
   * nothing happened: the caller takes {@link read}.
   */
  readIfFast(gpa: number, length: number): Uint8Array | undefined {
    return this.fast('read', gpa, undefined, length);
  }
  /** {@link write} when the shortcut serves it (true), else false and nothing happened. */
  writeIfFast(gpa: number, data: Uint8Array): boolean {
    return this.fast('write', gpa, data, data.length) !== undefined;
  }
  exec(gpa: bigint | number): GuestAccess {
    return this.access('exec', BigInt.asUintN(64, BigInt(gpa)), new Uint8Array(1));
  }
  relinquish(gpa: bigint | number, pages: number, opts: { sanitize?: boolean } = {}): void {
    this.vm.relinquish(BigInt.asUintN(64, BigInt(gpa)), pages, opts.sanitize ?? false);
  }
  /** Closes the vCPU fd (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.vm.device.closeFd(this.fd);
    this.vm.vcpuClosed(this);
  }

  /** The guest calls PSCI SYSTEM_OFF: the RM reports the VM exited (STATUS exits follow). */
  systemOff(exitType = 1, reason: Uint8Array = new Uint8Array(0)): void {
    this.vm.guestExited(exitType, reason);
  }
}
