/**
 * vCPUs on the real `/dev/kvm` (native driver only).
 *
 * The simulated kernel has no instruction emulator, so vCPUs are not part of the driver-neutral
 * `api.ts` interfaces: get a {@link NativeVcpu} from {@link NativeVm.createVcpu} (use
 * {@link asNativeVm} on a `KvmVm` from `openKvm({ driver: 'native' })`).
 *
 * Each method is one ioctl (plus the struct encoding), errno is read right after a failing call,
 * and failures are `GuestMemError`s like the rest of the driver. The `kvm_run` area is mapped once
 * at creation and unmapped by `close()`, which also closes the vCPU fd. A vCPU holds a reference to
 * its VM, as in the kernel: it outlives `close()` of the VM fd (and keeps running the guest) and must
 * be closed on its own.
 *
 * On the probe machine (PVM, docs/kvm-guest-memfd.md §0.2) every guest instruction is emulated and guest memory is
 * reached through each slot's `userspace_addr`: a guest_memfd slot shows the file's contents to the
 * guest only when `userspace_addr` is the guest_memfd's own `MMAP|INIT_SHARED` mapping. A slot with
 * `userspace_addr = 0` gives `KVM_EXIT_MMIO` on that machine (probe).
 */
import { GuestMemError, guardLeak, unguard } from '@guestmem/core';
import {
  MAP_FAILED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  KVM_EXIT_HLT,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_MMIO,
  KVM_EXIT_MEMORY_FAULT,
} from '../uapi/constants.js';
import {
  KVM_CREATE_VCPU,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_RUN,
  KVM_SET_REGS,
  KVM_SET_SIGNAL_MASK,
  KVM_SET_SREGS,
  SIZEOF_KVM_REGS,
  SIZEOF_KVM_RUN,
  SIZEOF_KVM_SREGS,
} from '../uapi/ioctl.js';
import { decodeKvmRegs, decodeKvmRunExit, decodeKvmSregs, encodeKvmRegs, encodeKvmSregs, u64 } from './codecs.js';
import { KVM_RUN_OFFSETS, type KvmRegs, type KvmRegsInput, type KvmRunExit, type KvmSregs } from '../uapi/vcpu-structs.js';
import { NATIVE_BACKEND, syscallError } from './errors.js';
import { hostBuffer, timerLibc, type Libc } from './libc.js';
import { FdHandle } from '../fd-handle.js';
import type { CreateGuestMemfdArgs, IntArg, KvmGuestMemfd, KvmVcpuFd } from '../api.js';
import { checkExtensionOn, createGuestMemfdOn } from './fd-ioctls.js';

/** errno values KVM_RUN reports together with a meaningful `exit_reason` (api.rst §5). */
const RUN_ERRNO_EXITS: Readonly<Record<string, number>> = {
  EINTR: KVM_EXIT_INTR,
  EFAULT: KVM_EXIT_MEMORY_FAULT,
  EHWPOISON: KVM_EXIT_MEMORY_FAULT,
};

/**
 * The signal that ends a `run({ timeoutMs })`: a real-time signal Node does not use. Each timed run
 * blocks it in the calling thread only for the duration of the run (so it is never delivered to
 * Node) and gives the vCPU a KVM_SET_SIGNAL_MASK without it: the signal is unblocked only while
 * KVM_RUN is inside the guest, where a pending one makes KVM_RUN return -1 EINTR (`KVM_EXIT_INTR`).
 * It is consumed with `sigtimedwait`, never handled; afterwards the vCPU's signal mask is cleared
 * and the thread's mask restored, so no timed run leaves the signal blocked or pending.
 */
export const VCPU_TIMEOUT_SIGNAL = 62;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
const CLOCK_MONOTONIC = 1;
const SIGEV_THREAD_ID = 4;
/** glibc's `sigset_t` is 128 bytes; the kernel's (KVM_SET_SIGNAL_MASK `len`) is 8. */
const SIGSET_BYTES = 128;
const timeoutSet = Buffer.alloc(SIGSET_BYTES);
timeoutSet[(VCPU_TIMEOUT_SIGNAL - 1) >> 3]! |= 1 << ((VCPU_TIMEOUT_SIGNAL - 1) & 7);
const zeroTimespec = Buffer.alloc(16);

/** Options of {@link NativeVcpu.run}. */
export interface VcpuRunOptions {
  /**
   * Interrupt the guest after this many milliseconds if it has not exited by then: KVM_RUN then
   * returns an exit with `errno: 'EINTR'` and `timedOut: true` (see {@link VCPU_TIMEOUT_SIGNAL}).
   */
  timeoutMs?: number;
}

/** What one `KVM_RUN` returned: the decoded `kvm_run` exit, plus the errno when the ioctl gave -1. */
export interface VcpuExit extends KvmRunExit {
  /**
   * Set when KVM_RUN returned -1 with an errno that comes with a valid exit: `EINTR`
   * (`KVM_EXIT_INTR`, a signal was pending) or `EFAULT`/`EHWPOISON` with `KVM_EXIT_MEMORY_FAULT`.
   * Any other failure throws.
   */
  errno?: 'EINTR' | 'EFAULT' | 'EHWPOISON';
  /** True when the EINTR came from `run({ timeoutMs })`'s timer. */
  timedOut?: boolean;
}

/** A vCPU fd with its mapped `kvm_run` area. */
export class NativeVcpu extends FdHandle implements KvmVcpuFd {
  #run: Buffer | undefined;
  readonly #regsBuf = Buffer.alloc(SIZEOF_KVM_REGS);
  readonly #sregsBuf = Buffer.alloc(SIZEOF_KVM_SREGS);
  /** The POSIX timer of timed runs (created by the first one). */
  #timer: bigint | undefined;

  /** @internal Created by {@link NativeVm.createVcpu}. */
  constructor(
    private readonly c: Libc,
    /** The vCPU id passed to KVM_CREATE_VCPU. */
    readonly id: number,
    fd: number,
    /** Address of the `kvm_run` mapping. */
    readonly runAddress: bigint,
    /** Its length (`KVM_GET_VCPU_MMAP_SIZE`). */
    readonly runSize: number,
    private readonly onClose: (v: NativeVcpu) => void,
  ) {
    super(fd, NATIVE_BACKEND);
    this.#run = hostBuffer(runAddress, runSize);
    // Safety net: a vCPU dropped without close() has its kvm_run area unmapped and its fd closed
    // when collected.
    guardLeak(this, {
      kind: 'kvm vCPU fd',
      what: `kvm vCPU ${id} fd ${fd}`,
      release: () => {
        c.munmap(runAddress, runSize);
        c.close(fd);
      },
    });
  }

  /** `KVM_CHECK_EXTENSION` on a vCPU fd: the kernel's answer (EINVAL, see `KvmIoctlTarget`). */
  checkExtension(cap: IntArg): number {
    return checkExtensionOn(this.c, this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)'), cap);
  }

  /** `KVM_CREATE_GUEST_MEMFD` on a vCPU fd (EINVAL). `asGuestMemfd` wraps an fd the kernel would return. */
  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    const fd = this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    return createGuestMemfdOn(this.c, fd, args, (g) => {
      this.c.close(g);
      throw new GuestMemError({
        code: 'EIO',
        op: 'createGuestMemfd',
        backend: NATIVE_BACKEND,
        detail: 'the kernel created a guest_memfd from a vCPU fd (closed again)',
      });
    });
  }

  /** `KVM_GET_REGS`. */
  getRegs(): KvmRegs {
    const fd = this.live('getRegs', 'ioctl(KVM_GET_REGS)');
    // Why: read the general-purpose registers (rip, rflags, rax…) the kernel holds for this vCPU.
    if (this.c.ioctlPtr(fd, KVM_GET_REGS, this.#regsBuf) < 0) throw syscallError(this.c.errno(), 'getRegs', 'ioctl(KVM_GET_REGS)');
    return decodeKvmRegs(this.#regsBuf);
  }

  /** `KVM_SET_REGS` with the whole struct: registers left out are written as 0 (use `{ ...getRegs(), rip }` to change one). */
  setRegs(regs: KvmRegsInput): void {
    const fd = this.live('setRegs', 'ioctl(KVM_SET_REGS)');
    encodeKvmRegs(regs, this.#regsBuf);
    // Why: set the general-purpose registers, e.g. the entry point (rip) before the first run.
    if (this.c.ioctlPtr(fd, KVM_SET_REGS, this.#regsBuf) < 0) throw syscallError(this.c.errno(), 'setRegs', 'ioctl(KVM_SET_REGS)');
  }

  /** `KVM_GET_SREGS`. */
  getSregs(): KvmSregs {
    const fd = this.live('getSregs', 'ioctl(KVM_GET_SREGS)');
    // Why: read segment, descriptor-table and control registers (the mode the vCPU is in).
    if (this.c.ioctlPtr(fd, KVM_GET_SREGS, this.#sregsBuf) < 0) throw syscallError(this.c.errno(), 'getSregs', 'ioctl(KVM_GET_SREGS)');
    return decodeKvmSregs(this.#sregsBuf);
  }

  /** `KVM_SET_SREGS`. */
  setSregs(sregs: KvmSregs): void {
    const fd = this.live('setSregs', 'ioctl(KVM_SET_SREGS)');
    encodeKvmSregs(sregs, this.#sregsBuf);
    // Why: set segments and control registers (e.g. CS base 0 instead of the reset vector's 0xffff0000).
    if (this.c.ioctlPtr(fd, KVM_SET_SREGS, this.#sregsBuf) < 0) throw syscallError(this.c.errno(), 'setSregs', 'ioctl(KVM_SET_SREGS)');
  }

  /**
   * One `KVM_RUN`: runs the guest until the next exit to userspace and decodes it. Blocks the
   * calling thread for as long as the guest runs: give it guests that exit (a `hlt`, port I/O), or
   * a `timeoutMs` after which a guest that is still running is interrupted (an EINTR exit with
   * `timedOut: true`; the first timed run sets up a per-vCPU timer, see {@link VCPU_TIMEOUT_SIGNAL}).
   */
  run(opts: VcpuRunOptions = {}): VcpuExit {
    const fd = this.live('run', 'ioctl(KVM_RUN)');
    return opts.timeoutMs === undefined ? this.#runOnce(fd) : this.#runTimed(fd, opts.timeoutMs);
  }

  #runTimed(fd: number, timeoutMs: number): VcpuExit {
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
    const t = timerLibc();
    const timer = this.#timerFor();
    const old = Buffer.alloc(SIGSET_BYTES);
    // Why: block the timeout signal in this thread while the timer can fire, so it never reaches Node's handlers.
    const r = t.pthread_sigmask(SIG_BLOCK, timeoutSet, old);
    if (r !== 0) throw syscallError(r, 'run', 'pthread_sigmask');
    try {
      const mask = Buffer.alloc(12);
      mask.writeUInt32LE(8, 0);
      old.copy(mask, 4, 0, 8);
      mask[4 + ((VCPU_TIMEOUT_SIGNAL - 1) >> 3)]! &= ~(1 << ((VCPU_TIMEOUT_SIGNAL - 1) & 7));
      // Why: KVM_RUN runs with the thread's former mask minus the timeout signal, so a pending one interrupts the guest.
      if (this.c.ioctlPtr(fd, KVM_SET_SIGNAL_MASK, mask) < 0) throw syscallError(this.c.errno(), 'run', 'ioctl(KVM_SET_SIGNAL_MASK)');
      try {
        return this.#runArmed(fd, t, timer, timeoutMs);
      } finally {
        // Why: a NULL mask makes later KVM_RUNs use the thread's own mask again (kvm_vcpu_ioctl_set_sigmask).
        this.c.ioctlPtr(fd, KVM_SET_SIGNAL_MASK, null);
      }
    } finally {
      // Why: the timer is disarmed and its signal consumed: give the thread back the mask it had.
      t.pthread_sigmask(SIG_SETMASK, old, null);
    }
  }

  #runArmed(fd: number, t: ReturnType<typeof timerLibc>, timer: bigint, timeoutMs: number): VcpuExit {
    const its = Buffer.alloc(32); // struct itimerspec { it_interval; it_value }: one-shot it_value at +16
    const ns = BigInt(Math.round(timeoutMs * 1e6));
    its.writeBigInt64LE(ns / 1_000_000_000n, 16);
    its.writeBigInt64LE(ns % 1_000_000_000n, 24);
    // Why: arm the one-shot timer that signals this thread if the guest is still running then.
    if (t.timer_settime(timer, 0, its, null) < 0) throw syscallError(t.errno(), 'run', 'timer_settime');
    let exit: VcpuExit;
    let fired = false;
    try {
      exit = this.#runOnce(fd);
    } finally {
      // Why: consume the timer's signal if it fired. This must come before the disarm: since Linux
      // 6.13 a pending POSIX-timer signal whose timer was re-armed or disarmed is dropped at
      // dequeue, so after the disarm sigtimedwait would not report it.
      fired = t.sigtimedwait(timeoutSet, null, zeroTimespec) === VCPU_TIMEOUT_SIGNAL;
      its.fill(0);
      // Why: disarm the timer.
      t.timer_settime(timer, 0, its, null);
      // Why: flush a signal that fired between the two calls above (dropped as stale, or taken here),
      // so nothing is pending when the thread's mask is restored.
      t.sigtimedwait(timeoutSet, null, zeroTimespec);
    }
    return fired && exit.errno === 'EINTR' ? { ...exit, timedOut: true } : exit;
  }

  /** The vCPU's POSIX timer, created by the first timed run; its signal goes to this thread (see {@link VCPU_TIMEOUT_SIGNAL}). */
  #timerFor(): bigint {
    if (this.#timer !== undefined) return this.#timer;
    const t = timerLibc();
    const sev = Buffer.alloc(64); // struct sigevent: sigev_signo +8, sigev_notify +12, _tid +16
    sev.writeInt32LE(VCPU_TIMEOUT_SIGNAL, 8);
    sev.writeInt32LE(SIGEV_THREAD_ID, 12);
    sev.writeInt32LE(t.gettid(), 16);
    const out = Buffer.alloc(8);
    // Why: a per-vCPU timer whose signal goes to exactly this thread (the one that calls KVM_RUN).
    if (t.timer_create(CLOCK_MONOTONIC, sev, out) < 0) throw syscallError(t.errno(), 'run', 'timer_create');
    this.#timer = out.readBigInt64LE(0);
    return this.#timer;
  }

  #runOnce(fd: number): VcpuExit {
    // Why: enter the guest; the argument must be 0 (anything else is EINVAL).
    const r: number = this.c.ioctlArg(fd, KVM_RUN, 0);
    if (r < 0) {
      const errno = this.c.errno();
      const err = syscallError(errno, 'run', 'ioctl(KVM_RUN)', { vcpu: this.id });
      const exit = decodeKvmRunExit(this.#run!);
      if (RUN_ERRNO_EXITS[err.code] === exit.reason) return { ...exit, errno: err.code as VcpuExit['errno'] };
      throw err;
    }
    return decodeKvmRunExit(this.#run!);
  }

  /**
   * Supplies the data of a pending `in` (KVM_EXIT_IO, `size * count` bytes at `data_offset`) or
   * MMIO read (KVM_EXIT_MMIO, up to 8 bytes): the kernel hands it to the guest on the next run.
   */
  completeRead(exit: VcpuExit, data: Uint8Array): void {
    this.live('completeRead', 'kvm_run');
    const run = this.#run!;
    if (exit.io?.direction === 'in') {
      const n = exit.io.size * exit.io.count;
      this.#checkLen('completeRead', data, n);
      run.set(data.subarray(0, n), exit.io.dataOffset);
    } else if (exit.mmio && !exit.mmio.isWrite) {
      this.#checkLen('completeRead', data, exit.mmio.len);
      run.set(data.subarray(0, exit.mmio.len), KVM_RUN_OFFSETS.mmio.data);
    } else {
      throw new GuestMemError({
        code: 'EINVAL',
        op: 'completeRead',
        backend: NATIVE_BACKEND,
        detail: `${exit.reasonName} is not an I/O-in or MMIO-read exit`,
      });
    }
  }

  #checkLen(op: string, data: Uint8Array, n: number): void {
    if (data.byteLength < n) {
      throw new GuestMemError({ code: 'EINVAL', op, backend: NATIVE_BACKEND, detail: `needs ${n} bytes, got ${data.byteLength}` });
    }
  }

  /** Unmaps the `kvm_run` area and closes the vCPU fd (once; later calls throw EBADF). */
  protected release(fd: number): void {
    unguard(this);
    // No view of kvm_run may outlive the mapping.
    this.#run = undefined;
    this.onClose(this);
    // Why: the timeout timer (if a timed run created one) belongs to this vCPU.
    if (this.#timer !== undefined) timerLibc().timer_delete(this.#timer);
    this.#timer = undefined;
    // Why: drop the kvm_run mapping (it holds a reference on the vCPU file).
    const unmapFailed = this.c.munmap(this.runAddress, this.runSize) < 0 ? this.c.errno() : 0;
    // Why: release the vCPU fd; the vCPU goes away with the VM once nothing references it.
    if (this.c.close(fd) < 0) throw syscallError(this.c.errno(), 'close', 'close', { fd });
    if (unmapFailed) throw syscallError(unmapFailed, 'close', 'munmap', { address: this.runAddress, length: this.runSize });
  }
}

/** @internal Creates the vCPU fd and maps its `kvm_run` area; closes the fd again if the mmap fails. */
export function createNativeVcpu(c: Libc, vmFd: number, idArg: IntArg, mmapSize: number, onClose: (v: NativeVcpu) => void): NativeVcpu {
  const id = u64('id', idArg);
  // Why: create vCPU `id` in this VM; the kernel returns its fd.
  const fd: number = c.ioctlArg(vmFd, KVM_CREATE_VCPU, id);
  if (fd < 0) throw syscallError(c.errno(), 'createVcpu', 'ioctl(KVM_CREATE_VCPU)', { id });
  if (mmapSize < SIZEOF_KVM_RUN) {
    c.close(fd);
    throw new GuestMemError({
      code: 'EINVAL',
      op: 'createVcpu',
      backend: NATIVE_BACKEND,
      detail: `vCPU mmap size ${mmapSize} < sizeof(kvm_run)`,
    });
  }
  // Why: kvm_run (exit reason and data) is shared with the kernel through this mapping of the vCPU fd.
  const address: bigint = c.mmap(0, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address === MAP_FAILED) {
    const errno = c.errno();
    c.close(fd);
    throw syscallError(errno, 'createVcpu', 'mmap', { id, length: mmapSize });
  }
  return new NativeVcpu(c, Number(id), fd, address, mmapSize, onClose);
}

/** Options of {@link runVcpu}. */
export interface RunVcpuOptions {
  /** Upper bound on KVM_RUN calls (the loop never spins forever on a guest that keeps exiting). */
  maxRuns: number;
  /** Passed to every {@link NativeVcpu.run}: a guest still running after this long is interrupted (EINTR exit, which stops the loop). */
  timeoutMs?: number;
  /**
   * Called for every exit; return `'stop'` to end the loop. Without it (or when it returns
   * `undefined`), I/O and MMIO exits continue and every other exit stops.
   */
  onExit?: (exit: VcpuExit, vcpu: NativeVcpu) => 'continue' | 'stop' | undefined;
}

/** What {@link runVcpu} saw. */
export interface RunVcpuResult {
  exits: VcpuExit[];
  /** The exit that ended the loop (the last one). */
  last: VcpuExit;
  /** True when `maxRuns` ran out before an exit stopped the loop. */
  exhausted: boolean;
}

/** Runs a vCPU until an exit stops it, at most `maxRuns` times. */
export function runVcpu(vcpu: NativeVcpu, opts: RunVcpuOptions): RunVcpuResult {
  if (!Number.isInteger(opts.maxRuns) || opts.maxRuns < 1) throw new RangeError(`maxRuns must be a positive integer, got ${opts.maxRuns}`);
  const exits: VcpuExit[] = [];
  for (let i = 0; i < opts.maxRuns; i++) {
    const exit = vcpu.run(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
    exits.push(exit);
    const verdict = opts.onExit?.(exit, vcpu) ?? (exit.reason === KVM_EXIT_IO || exit.reason === KVM_EXIT_MMIO ? 'continue' : 'stop');
    if (verdict === 'stop') return { exits, last: exit, exhausted: false };
  }
  return { exits, last: exits[exits.length - 1]!, exhausted: true };
}

/**
 * Puts a vCPU in 16-bit real mode at `cs:ip` with flat-enough segments: every segment register gets
 * selector `cs` and base `cs << 4`, rip = `ip`, rflags = 2 (the reserved bit), other registers 0.
 * (KVM's reset state is real mode at `0xf000:0xfff0` with CS base `0xffff0000`.)
 */
export function enterRealMode(vcpu: NativeVcpu, cs: number, ip: number): void {
  const s = vcpu.getSregs();
  for (const seg of [s.cs, s.ds, s.es, s.fs, s.gs, s.ss]) {
    seg.selector = cs & 0xffff;
    seg.base = BigInt((cs & 0xffff) << 4);
  }
  vcpu.setSregs(s);
  vcpu.setRegs({ rip: ip, rflags: 2 });
}

/** True for a `hlt` exit. */
export const isHlt = (e: KvmRunExit): boolean => e.reason === KVM_EXIT_HLT;
