/**
 * The neutral VMM loop: load a guest image, run the vCPU, serve its exits. Memory faults are
 * served the same way on every backend ({@link serveMemoryFault}): a page inside a binding is
 * converted to the access the guest wanted (KVM memory attributes, Gunyah share⇄lend); a page no
 * binding covers is bound from the VMM's backing memory (Gunyah demand paging, KVM memslot-on-demand).
 */
import { GuestMemError, gmErr } from '../errors/guest-mem-error.js';
import type { GuestMemory, MemoryAccess, MemoryBinding, Vm } from '../hypervisor/interfaces.js';
import type { Vcpu, VcpuExit, VcpuIoExit, VcpuMemoryFaultExit, VcpuMmioExit } from '../hypervisor/vcpu.js';
import type { GuestImage } from './image.js';
import { GUEST_OUTPUT_PORT } from './program.js';

const PAGE = 4096n;

/**
 * Places `image`'s page tables and code in guest memory through the host's side
 * ({@link Vm.sharedView}) and points `vcpu` at it. The image region must be bound and shared.
 */
export function loadGuest(vm: Vm, vcpu: Vcpu, image: GuestImage): void {
  for (const c of image.chunks) {
    const view = vm.sharedView({ gpa: c.gpa, size: c.data.length });
    try {
      view.write(0, c.data);
    } finally {
      view.unmap();
    }
  }
  vcpu.load(image);
}

/** Where the loop binds memory for faults at addresses no binding covers. */
export interface FaultBacking {
  /** The memory pages are bound from: guest address `gpa` uses byte `gpa - base` of it. */
  memory: GuestMemory;
  base: bigint | number;
  /** Bytes bound per fault, aligned down around the faulting address (default 4096). */
  granule?: bigint | number;
}

/** What the loop served. */
export interface RunGuestStats {
  /**
   * Faults served: memory-fault exits handled, plus MMIO exits inside `backing` the loop served
   * by binding memory and re-executing the access (Gunyah v17, where an access no binding backs
   * exits MMIO and `resume_action` RETRY re-executes it once memory is bound).
   */
  faults: number;
  /** Conversions made (one per handled fault inside a binding). */
  conversions: number;
  /** Pages converted. */
  pagesConverted: number;
  /** Pages bound on demand (faults outside every binding). */
  pagesMapped: number;
}

/** What {@link runGuest} saw. */
export interface RunGuestResult extends RunGuestStats {
  /** Every exit, in order (unless `recordExits: false`). */
  exits: VcpuExit[];
  /** Exits by kind. */
  exitCounts: Record<string, number>;
  /** The exit that ended the loop. */
  last: VcpuExit;
  /** Why the loop ended. */
  stoppedBy: 'hlt' | 'shutdown' | 'internal-error' | 'interrupted' | 'handler' | 'max-exits' | 'unresolved-fault';
  /** Bytes the guest wrote to {@link GUEST_OUTPUT_PORT}, as Latin-1 text. */
  output: string;
  /** Why the default fault service could not serve the last fault ('unresolved-fault'). */
  error?: GuestMemError;
}

/** What a handler tells the loop: go on (`undefined`/'continue') or stop here. */
export type HandlerVerdict = 'continue' | 'stop' | undefined | void;

/** Options of {@link runGuest}. */
export interface RunGuestOptions {
  /** An `io` exit (the output port is collected before this is called). For `in`, call `vcpu.completeRead`. */
  onIo?: (exit: VcpuIoExit, vcpu: Vcpu) => HandlerVerdict;
  /** An `mmio` exit. For reads, call `vcpu.completeRead` (else the guest reads zeros). */
  onMmio?: (exit: VcpuMmioExit, vcpu: Vcpu) => HandlerVerdict;
  /**
   * A `memory-fault` exit. Default {@link serveMemoryFault} with `backing`; when it cannot serve
   * the fault the loop stops ('unresolved-fault', with `error`). A handler that leaves the fault as
   * it is stops the loop the same way when the same fault comes straight back.
   */
  onMemoryFault?: (exit: VcpuMemoryFaultExit, vm: Vm, stats: RunGuestStats) => HandlerVerdict;
  /**
   * Memory for faults outside every binding (see {@link serveMemoryFault}). On a vCPU that
   * {@link Vcpu.retriesMmio}, an MMIO exit inside the backing memory's guest range that no binding
   * covers is served the same way (bound with the VM's default access: private where the VM has
   * private memory) and the access re-executed, before `onMmio` would see it.
   */
  backing?: FaultBacking;
  /** Stop after this many exits (default 1,000,000). */
  maxExits?: number;
  /** Passed to every `vcpu.run` (an 'interrupted' exit ends the loop). */
  timeoutMs?: number;
  /** Keep every exit in `exits` (default true). */
  recordExits?: boolean;
}

/**
 * The default memory-fault service, the same on every backend:
 * - the page lies in a binding: convert `[gpa, gpa+size)` to the access the guest wanted
 *   (`vm.convert`, default discard: the side no longer used is freed);
 * - no binding covers it and `backing` is given: bind a `granule` of `backing.memory` there with
 *   that access (demand paging);
 * - otherwise `EFAULT`: nothing can serve it.
 */
export function serveMemoryFault(vm: Vm, exit: VcpuMemoryFaultExit, stats: RunGuestStats, backing?: FaultBacking): void {
  const gpa = exit.gpa - (exit.gpa % PAGE);
  const size = exit.size > 0n ? ((exit.gpa + exit.size + PAGE - 1n) / PAGE) * PAGE - gpa : PAGE;
  const covering = vm.bindings().find((b) => b.gpa <= gpa && gpa < b.gpa + b.size);
  if (covering) {
    const end = gpa + size < covering.gpa + covering.size ? gpa + size : covering.gpa + covering.size;
    vm.convert({ gpa, size: end - gpa }, exit.access);
    stats.conversions++;
    stats.pagesConverted += Number((end - gpa) / PAGE);
    return;
  }
  if (!backing)
    throw gmErr(
      'EFAULT',
      'runGuest',
      vm.capabilities.backend,
      `memory fault at 0x${exit.gpa.toString(16)}: no binding covers it and no backing memory was given`,
    );
  const base = BigInt(backing.base);
  const granule = BigInt(backing.granule ?? PAGE);
  let from = gpa - (gpa % granule);
  let to = from + granule;
  // Stay inside the backing memory and clear of neighbouring bindings.
  if (from < base) from = base;
  if (to > base + backing.memory.size) to = base + backing.memory.size;
  for (const b of vm.bindings() as readonly MemoryBinding[]) {
    const bEnd = b.gpa + b.size;
    if (bEnd <= gpa && bEnd > from) from = bEnd;
    if (b.gpa > gpa && b.gpa < to) to = b.gpa;
  }
  if (gpa < base || from >= to)
    throw gmErr('EFAULT', 'runGuest', vm.capabilities.backend, `memory fault at 0x${exit.gpa.toString(16)} is outside the backing memory`);
  vm.bind({ memory: backing.memory, offset: from - base, gpa: from, size: to - from, access: exit.access as MemoryAccess });
  stats.pagesMapped += Number((to - from) / PAGE);
}

/** True when `gpa` lies in `backing`'s guest range and no binding covers it. */
function inBacking(vm: Vm, gpa: bigint, backing: FaultBacking): boolean {
  const base = BigInt(backing.base);
  if (gpa < base || gpa >= base + backing.memory.size) return false;
  return !vm.bindings().some((b) => b.gpa <= gpa && gpa < b.gpa + b.size);
}

/**
 * Runs `vcpu` until it halts, shuts down, fails, a handler stops it, or `maxExits` is reached.
 * Memory faults are served (see {@link RunGuestOptions.onMemoryFault}) and the access retried.
 */
export function runGuest(vm: Vm, vcpu: Vcpu, opts: RunGuestOptions = {}): RunGuestResult {
  const maxExits = opts.maxExits ?? 1_000_000;
  const record = opts.recordExits ?? true;
  const stats: RunGuestStats = { faults: 0, conversions: 0, pagesConverted: 0, pagesMapped: 0 };
  const exits: VcpuExit[] = [];
  const exitCounts: Record<string, number> = {};
  const out: number[] = [];
  let lastFault: string | undefined;
  const done = (last: VcpuExit, stoppedBy: RunGuestResult['stoppedBy'], error?: GuestMemError): RunGuestResult => ({
    ...stats,
    exits,
    exitCounts,
    last,
    stoppedBy,
    output: Buffer.from(out).toString('latin1'),
    ...(error ? { error } : {}),
  });
  let last: VcpuExit | undefined;
  for (let n = 0; n < maxExits; n++) {
    const exit = vcpu.run(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
    last = exit;
    if (record) exits.push(exit);
    exitCounts[exit.kind] = (exitCounts[exit.kind] ?? 0) + 1;
    switch (exit.kind) {
      case 'hlt':
      case 'shutdown':
      case 'internal-error':
      case 'interrupted':
        return done(exit, exit.kind);
      case 'io': {
        lastFault = undefined;
        if (exit.direction === 'out' && exit.port === GUEST_OUTPUT_PORT) for (const b of exit.data) out.push(b);
        if (opts.onIo?.(exit, vcpu) === 'stop') return done(exit, 'handler');
        break;
      }
      case 'mmio':
        lastFault = undefined;
        if (opts.backing && vcpu.retriesMmio && inBacking(vm, exit.gpa, opts.backing)) {
          const access: MemoryAccess = vm.capabilities.has('private-memory') ? 'private' : 'shared';
          try {
            serveMemoryFault(vm, { kind: 'memory-fault', gpa: exit.gpa, size: PAGE, access, info: exit.info }, stats, opts.backing);
          } catch (e) {
            if (!GuestMemError.is(e)) throw e;
            return done(exit, 'unresolved-fault', e);
          }
          stats.faults++;
          vcpu.retryMmio();
          break;
        }
        if (opts.onMmio?.(exit, vcpu) === 'stop') return done(exit, 'handler');
        break;
      case 'memory-fault': {
        const key = `${exit.gpa}:${exit.size}:${exit.access}:${exit.operation}`;
        if (key === lastFault) return done(exit, 'unresolved-fault');
        lastFault = key;
        stats.faults++;
        if (opts.onMemoryFault) {
          if (opts.onMemoryFault(exit, vm, stats) === 'stop') return done(exit, 'handler');
        } else {
          try {
            serveMemoryFault(vm, exit, stats, opts.backing);
          } catch (e) {
            // Nothing can serve it (no conversion on this VM, no backing there): report, do not throw.
            if (!GuestMemError.is(e)) throw e;
            return done(exit, 'unresolved-fault', e);
          }
        }
        break;
      }
    }
  }
  if (!last) throw gmErr('EINVAL', 'runGuest', vm.capabilities.backend, `maxExits ${maxExits} must be >= 1`);
  return done(last, 'max-exits');
}
