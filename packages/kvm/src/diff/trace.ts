/**
 * The differential harness: a scenario drives a {@link Kvm} through a {@link Session}, which records
 * every step's outcome in a driver-independent {@link Trace} — the return value, or the error's code
 * (errno), or the bytes read back — with fd numbers replaced by "fd#k in creation order" and host
 * addresses left out, so a trace from the real kernel and one from the simulated kernel can be
 * compared with a deep equality.
 */
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import type {
  CreateGuestMemfdArgs,
  Kvm,
  KvmAnonMapping,
  KvmGmemMapping,
  KvmGuestMemfd,
  KvmMapping,
  KvmVcpuFd,
  KvmVm,
  MmapArgs,
  OtherFd,
  OtherFdKind,
  RawUserMemoryRegion,
  UserMemoryRegion2,
} from '../api.js';
import { KVM_MEM_GUEST_MEMFD, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';

/** One recorded step. */
export interface TraceStep {
  readonly step: string;
  readonly out: unknown;
}

/**
 * Compact, diff-friendly summary of bytes: runs of equal bytes as `"aa*4096"`, joined with commas.
 * Two byte arrays summarise equal iff they are equal.
 */
export function summarizeBytes(b: Uint8Array): string {
  if (b.length === 0) return '<empty>';
  const runs: string[] = [];
  let i = 0;
  while (i < b.length) {
    let j = i + 1;
    while (j < b.length && b[j] === b[i]) j++;
    runs.push(`${b[i]!.toString(16).padStart(2, '0')}*${j - i}`);
    i = j;
  }
  return runs.join(',');
}

/** The outcome of a thrown error, as compared between drivers. */
export function errorOutcome(e: unknown): unknown {
  if (e instanceof HostAccessFault) return { err: 'SIGBUS', at: e.offset.toString() };
  if (GuestMemError.is(e)) return { err: e.code, errno: e.errno };
  return { threw: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
}

export class Trace {
  readonly steps: TraceStep[] = [];
  /** Called with every error a step threw (before it is reduced to its outcome). */
  onError: ((step: string, e: unknown) => void) | undefined;
  private readonly labels = new Map<number, string>();
  private created = 0;

  /** Names the fd a step just created (`fd#k`, k counting creations, so reuse of numbers is invisible). */
  created_(fd: number): string {
    const name = `fd#${this.created++}`;
    this.labels.set(fd, name);
    return name;
  }

  /** The name of an fd number passed as an argument (raw for numbers the scenario did not create, e.g. 0). */
  nameOf(fd: number): string {
    return this.labels.get(fd) ?? `raw:${fd}`;
  }

  /** Records a note (a value computed by the scenario, e.g. a comparison of two fstat results). */
  note(step: string, out: unknown): void {
    this.steps.push({ step, out: normalize(out) });
  }

  /** Runs `fn`, records its outcome under `step`, and returns its value (undefined when it threw). */
  run<T>(step: string, fn: () => T, show: (v: T) => unknown = (v) => v): T | undefined {
    try {
      const v = fn();
      this.steps.push({ step, out: normalize(show(v)) });
      return v;
    } catch (e) {
      this.onError?.(step, e);
      this.steps.push({ step, out: errorOutcome(e) });
      return undefined;
    }
  }
}

function normalize(v: unknown): unknown {
  if (v === undefined) return 'ok';
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return summarizeBytes(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

/** Default mmap arguments: read/write, shared. */
export const RW_SHARED = { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED } as const;

/**
 * A scenario's view of one driver: step helpers that record into {@link trace} and track every
 * handle, so {@link dispose} can release whatever the scenario left open (no fd leaks).
 */
export class Session {
  readonly trace = new Trace();
  private readonly open: Array<() => void> = [];

  constructor(readonly kvm: Kvm) {
    this.trace.created_(kvm.fd);
    this.open.push(() => kvm.close());
  }

  /** Runs and records an arbitrary step. */
  run<T>(step: string, fn: () => T, show?: (v: T) => unknown): T | undefined {
    return this.trace.run(step, fn, show);
  }

  note(step: string, out: unknown): void {
    this.trace.note(step, out);
  }

  fd(fd: number): string {
    return this.trace.nameOf(fd);
  }

  vm(type: number | bigint = 0, step = `createVm(${type})`): KvmVm | undefined {
    return this.run(
      step,
      () => this.kvm.createVm(type),
      (vm) => this.adopt(vm, vm.fd, () => vm.close()),
    );
  }

  gmem(vm: KvmVm, args: CreateGuestMemfdArgs, step = `createGuestMemfd(${args.size}, ${args.flags})`): KvmGuestMemfd | undefined {
    return this.run(
      step,
      () => vm.createGuestMemfd(args),
      (g) => this.adopt(g, g.fd, () => g.close()),
    );
  }

  dup(g: KvmGuestMemfd, step = `dup(${this.fd(g.fd)})`): KvmGuestMemfd | undefined {
    return this.run(
      step,
      () => g.dup(),
      (d) => this.adopt(d, d.fd, () => d.close()),
    );
  }

  /** `vm.createVcpu(id)`, closed by {@link dispose}. */
  vcpu(vm: KvmVm, id: number | bigint = 0, step = `createVcpu(${id})`): KvmVcpuFd | undefined {
    return this.run(
      step,
      () => vm.createVcpu(id),
      (v) => this.adopt(v, v.fd, () => v.close()),
    );
  }

  /** Makes {@link dispose} close `h` (a handle a step created outside the helpers below). */
  own(h: { close(): void; fd: number }): void {
    this.adopt(h, h.fd, () => h.close());
  }

  /** `g.reopen(access)`, closed by {@link dispose} if the kernel ever gives an fd. */
  reopen(g: KvmGuestMemfd, access: number, step = `reopen(${this.fd(g.fd)}, ${access})`): KvmGuestMemfd | undefined {
    return this.run(
      step,
      () => g.reopen(access),
      (d) => this.adopt(d, d.fd, () => d.close()),
    );
  }

  other(kind: OtherFdKind): OtherFd | undefined {
    return this.run(
      `openOtherFd(${kind})`,
      () => this.kvm.openOtherFd(kind),
      (o) => this.adopt(o, o.fd, () => o.close()),
    );
  }

  /** `g.mmap(args)`, unmapped by {@link dispose}; with `MAP_ANONYMOUS` an anonymous mapping (see {@link mmapFile}). */
  mmap(
    g: KvmGuestMemfd,
    args: Partial<MmapArgs> & { length: MmapArgs['length'] },
    step?: string,
  ): KvmGmemMapping | KvmAnonMapping | undefined {
    const full: MmapArgs = { ...RW_SHARED, ...args };
    return this.run(
      step ?? `mmap(${this.fd(g.fd)}, len ${full.length}, prot ${full.prot}, flags 0x${full.flags.toString(16)}, off ${full.offset ?? 0})`,
      () => g.mmap(full),
      (m) => {
        this.open.push(() => m.munmap());
        return { length: m.length, offset: m.offset };
      },
    );
  }

  /** {@link mmap} of the file itself (no `MAP_ANONYMOUS`): the guest_memfd mapping, or undefined when refused. */
  mmapFile(g: KvmGuestMemfd, args: Partial<MmapArgs> & { length: MmapArgs['length'] }, step?: string): KvmGmemMapping | undefined {
    const m = this.mmap(g, args, step);
    return isGmemMapping(m) ? m : undefined;
  }

  /** `mmapAnonymous(length)`, released by {@link dispose} (the address is left out of the trace). */
  anon(length: number | bigint, step = `mmapAnonymous(${length})`): KvmAnonMapping | undefined {
    return this.run(
      step,
      () => this.kvm.mmapAnonymous(length),
      (m) => {
        this.open.push(() => m.munmap());
        return { length: m.length, offset: m.offset, prot: m.prot, flags: m.flags };
      },
    );
  }

  madvise(
    m: KvmAnonMapping | undefined,
    offset: number | bigint,
    len: number | bigint,
    advice: number,
    step = `madvise(${offset}, ${len}, ${advice})`,
  ): void {
    this.run(step, () => {
      if (!m) throw new GuestMemError({ code: 'EBADF', op: 'scenario', backend: 'diff', detail: 'no mapping (mmapAnonymous failed)' });
      m.madvise(offset, len, advice);
    });
  }

  close(h: { close(): void; fd: number }, step = `close(${this.fd(h.fd)})`): void {
    this.run(step, () => h.close());
  }

  fallocate(g: KvmGuestMemfd, mode: number, offset: number | bigint, len: number | bigint): void {
    this.run(`fallocate(${this.fd(g.fd)}, 0x${mode.toString(16)}, ${offset}, ${len})`, () => g.fallocate(mode, offset, len));
  }

  read(m: KvmMapping | undefined, offset: number, len: number, step = `read(${offset}, ${len})`): void {
    this.run(step, () => mustMap(m).read(offset, len));
  }

  fill(
    m: KvmMapping | undefined,
    offset: number,
    len: number,
    byte: number,
    step = `fill(${offset}, ${len}, 0x${byte.toString(16)})`,
  ): void {
    this.run(step, () => mustMap(m).fill(offset, len, byte));
  }

  /**
   * REGION2 with defaults (slot 0, gmem flag, gpa 0, size 4 KiB, hva 0, offset 0) overridden by `r`,
   * through the raw-address escape hatch (`unsafeSetUserMemoryRegion`): the scenarios probe the
   * kernel's own checks of `userspace_addr`, which the safe API would refuse before the ioctl.
   */
  region2(vm: KvmVm, r: Partial<RawUserMemoryRegion>, step?: string): void {
    const full: RawUserMemoryRegion & Required<Omit<RawUserMemoryRegion, 'pad1' | 'pad2'>> = {
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: 0,
      memorySize: 4096,
      userspaceAddr: 0,
      guestMemfdOffset: 0,
      guestMemfd: -1,
      ...r,
    };
    const label =
      step ??
      `region2(slot 0x${full.slot.toString(16)}, flags 0x${full.flags.toString(16)}, gpa 0x${full.guestPhysAddr.toString(16)}, ` +
        `size 0x${full.memorySize.toString(16)}, fd ${typeof full.guestMemfd === 'number' && full.guestMemfd >= 0 ? this.fd(full.guestMemfd) : full.guestMemfd}, ` +
        `off 0x${full.guestMemfdOffset.toString(16)}${full.userspaceAddr ? ', hva set' : ''})`;
    this.run(label, () => vm.unsafeSetUserMemoryRegion(full));
  }

  /** REGION2 through the safe API: `r` names its host memory as an owned mapping (`userspace`). */
  region2Owned(vm: KvmVm, r: Partial<UserMemoryRegion2>, step: string): void {
    this.run(step, () =>
      vm.setUserMemoryRegion2({
        slot: 0,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: 0,
        memorySize: 4096,
        guestMemfdOffset: 0,
        guestMemfd: -1,
        ...r,
      }),
    );
  }

  /** Closes everything still open, newest first (mappings before files before VMs), ignoring errors. */
  dispose(): void {
    for (const release of this.open.splice(0).reverse()) {
      try {
        release();
      } catch {
        // already closed by the scenario
      }
    }
  }

  private adopt<T>(_h: T, fd: number, release: () => void): string {
    this.open.push(release);
    return this.trace.created_(fd);
  }
}

function mustMap(m: KvmMapping | undefined): KvmMapping {
  if (!m) throw new GuestMemError({ code: 'EBADF', op: 'scenario', backend: 'diff', detail: 'no mapping (mmap failed)' });
  return m;
}

/** A named differential scenario. */
export interface Scenario {
  readonly name: string;
  readonly run: (s: Session) => void;
  /**
   * The kernel's outcome of some steps, by step name, checked on both drivers (equal traces alone
   * cannot catch a rule both drivers get wrong the same way).
   */
  readonly pinned?: Readonly<Record<string, unknown>>;
}

/**
 * Runs `scenario` on a fresh system fd and returns its trace; everything is released afterwards.
 * `onError` sees every error a step threw.
 */
export function runScenario(open: () => Kvm, scenario: Scenario, onError?: (step: string, e: unknown) => void): TraceStep[] {
  const s = new Session(open());
  s.trace.onError = onError;
  try {
    scenario.run(s);
  } catch (e) {
    s.note('scenario threw', errorOutcome(e));
  } finally {
    s.dispose();
  }
  return s.trace.steps;
}

/** True for a guest_memfd file mapping (a `MAP_ANONYMOUS` mmap of a guest_memfd gives anonymous memory). */
export function isGmemMapping(m: KvmMapping | undefined): m is KvmGmemMapping {
  return m !== undefined && 'mprotect' in m;
}
