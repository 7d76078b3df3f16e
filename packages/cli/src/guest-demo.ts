/**
 * The guest part of `guestmem demo`: one guest program, built once with `GuestProgram`, run on
 * every backend through the neutral API — as x86-64 long-mode code on the real /dev/kvm (its code,
 * page tables and data in guest_memfd), as its op list on the simulated backends. Returns a
 * JSON-able result ({@link GuestDemoResult}) and renders it as text ({@link renderGuestDemo}).
 */
import {
  GuestProgram,
  HYPERVISOR_REGISTRY,
  buildGuestImage,
  loadGuest,
  runGuest,
  type GuestMemory,
  type Hypervisor,
  type HypervisorRegistry,
  type VcpuExit,
  type Vm,
} from '@guestmem/core';
import { makeContainer } from './container.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Low RAM: the image (page tables, code) at 0x1000 and data at 1 MiB. */
const LOW = { gpa: 0n, size: 2 * MiB };
/** High RAM above 4 GiB, reachable through the identity map. */
const HIGH = { gpa: 5n << 30n, size: 64 * KiB };
const TEXT_GPA = 0x10_0000n;
const FILL_GPA = 0x18_0000n;

/** Ports the demo guest reports values on (its text goes to the output port, 0xe9). */
export const DEMO_PORTS = { textSum: 0x10, highWord: 0x11, highSum: 0x12 } as const;

/** The demo guest: prints, stores, reads back, fills, touches every page above 4 GiB, checksums. */
export function demoGuestProgram(): GuestProgram {
  const text = new TextEncoder().encode('guest_memfd!');
  return new GuestProgram()
    .print('hello from a guest whose code, page tables and data live in guest memory\n')
    .store(TEXT_GPA, text)
    .checksum(TEXT_GPA, text.length, DEMO_PORTS.textSum)
    .store(HIGH.gpa + 8n, Uint8Array.of(0x11, 0x22, 0x33, 0x44))
    .loadReport(HIGH.gpa + 8n, 4, DEMO_PORTS.highWord)
    .fill(FILL_GPA, 16 * KiB, 0xab)
    .touch(HIGH.gpa, HIGH.size, 'write', 0x5a)
    .checksum(HIGH.gpa, HIGH.size, DEMO_PORTS.highSum)
    .print('wrote above 4 GiB, checksums reported, halting\n')
    .hlt();
}

/** One exit as JSON: `kind` plus the neutral fields (bigints as hex strings, data as hex). */
export type ExitJson = { kind: VcpuExit['kind'] } & Record<string, string | number | boolean>;

/** What one backend ran and held. */
export interface GuestDemoBackend {
  id: string;
  simulated: boolean;
  guest: {
    exits: ExitJson[];
    /** Text the guest wrote to its output port. */
    output: string;
    /** Values reported on the other ports, as hex. */
    reports: Record<string, string>;
    stoppedBy: string;
    ms: number;
  };
  memory: {
    /** Bytes per page of the counts below. */
    pageSize: number;
    /**
     * Pages with backing in the VM's memory objects (`Vm.memoryReport()` totals), when the backend
     * counts them exactly; null where it only tracks explicit allocations (native KVM: the kernel
     * offers no count of pages a guest faulted in).
     */
    pagesAllocated: number | null;
    /** How `pagesAllocated` was counted (`GuestMemoryStats.accounting`). */
    accounting: 'exact' | 'tracked';
    boundRanges: { gpa: string; size: number; access: string }[];
    privatePages: number;
    sharedPages: number;
    faultsServed: number;
    conversions: number;
    pagesMapped: number;
  };
  /** Set when the backend could not run the guest. */
  error?: string;
}

export interface GuestDemoResult {
  /** The backend chosen first, and why. */
  selected: { id: string; reason: string };
  backends: GuestDemoBackend[];
  /** True when every backend that ran printed the same output. */
  outputIdentical: boolean;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function exitJson(e: VcpuExit): ExitJson {
  switch (e.kind) {
    case 'io':
      return { kind: e.kind, port: e.port, size: e.size, direction: e.direction, data: hex(e.data) };
    case 'mmio':
      return { kind: e.kind, gpa: `0x${e.gpa.toString(16)}`, size: e.size, write: e.write, data: hex(e.data) };
    case 'memory-fault':
      return {
        kind: e.kind,
        gpa: `0x${e.gpa.toString(16)}`,
        size: Number(e.size),
        access: e.access,
        ...(e.operation ? { operation: e.operation } : {}),
      };
    default:
      return { kind: e.kind };
  }
}

/** The demo's memory report: the VM's own `memoryReport()` plus what the run loop served. */
function memoryReport(vm: Vm, served: { faults: number; conversions: number; pagesMapped: number }): GuestDemoBackend['memory'] {
  const report = vm.memoryReport();
  const exact = report.memories.every((m) => m.accounting === 'exact');
  let priv = 0;
  let shared = 0;
  const boundRanges = vm.bindings().map((b) => {
    const first = Number(b.gpa / 4096n);
    const end = first + Number(b.size / 4096n);
    const runs = vm.memoryState.runs(first, end);
    for (const r of runs) {
      if (r.state === 'private') priv += r.end - r.first;
      else shared += r.end - r.first;
    }
    return { gpa: `0x${b.gpa.toString(16)}`, size: Number(b.size), access: [...new Set(runs.map((r) => r.state))].join('+') };
  });
  return {
    pageSize: 4096,
    pagesAllocated: exact ? Number(report.totals.allocatedBytes / 4096n) : null,
    accounting: exact ? 'exact' : 'tracked',
    boundRanges,
    privatePages: priv,
    sharedPages: shared,
    faultsServed: served.faults,
    conversions: served.conversions,
    pagesMapped: served.pagesMapped,
  };
}

/** Runs the demo guest on one hypervisor (closes nothing: the caller owns `h`). */
export function runDemoGuest(h: Hypervisor): GuestDemoBackend {
  const base = { id: h.id, simulated: h.capabilities.simulated };
  const vm = h.createVm();
  const memories: GuestMemory[] = [];
  try {
    const mappable = vm.capabilities.has('host-map') && vm.capabilities.has('initially-shared');
    for (const r of [LOW, HIGH]) {
      const mem = vm.createGuestMemory({ size: r.size, hostMappable: mappable, initiallyShared: mappable });
      memories.push(mem); // open until the report: memoryReport() covers open memory objects
      vm.bind({ memory: mem, offset: 0, gpa: r.gpa, size: r.size, access: 'shared' });
    }
    const image = buildGuestImage(demoGuestProgram());
    const vcpu = vm.createVcpu();
    loadGuest(vm, vcpu, image);
    const t0 = performance.now();
    const r = runGuest(vm, vcpu, { timeoutMs: 30_000, maxExits: 10_000 });
    const ms = performance.now() - t0;
    const reports: Record<string, string> = {};
    for (const e of r.exits) if (e.kind === 'io' && e.port !== 0xe9) reports[`0x${e.port.toString(16)}`] = hex(e.data);
    return {
      ...base,
      guest: { exits: r.exits.map(exitJson), output: r.output, reports, stoppedBy: r.stoppedBy, ms: Math.round(ms * 10) / 10 },
      memory: memoryReport(vm, r),
    };
  } finally {
    vm.destroy();
    for (const m of memories) m.close();
  }
}

/**
 * Runs the demo guest on the best available backend first (native KVM when /dev/kvm works, else
 * the simulation, with the reason), then on every other available one. `only` limits it to one id.
 */
export function runGuestDemo(opts: { only?: string; registry?: HypervisorRegistry } = {}): GuestDemoResult {
  const registry = opts.registry ?? makeContainer().resolve<HypervisorRegistry>(HYPERVISOR_REGISTRY);
  const sel = registry.select(opts.only);
  const why = sel.considered
    .filter((c) => c.id !== sel.provider.id)
    .map((c) => `${c.id}: ${typeof c.result === 'string' ? c.result : c.result.reason}`);
  const reason =
    opts.only !== undefined
      ? 'chosen explicitly'
      : sel.provider.id === 'kvm'
        ? 'native /dev/kvm is available'
        : `native KVM not used (${why.join('; ') || 'not registered'}), running simulated`;
  const order = [
    sel.provider,
    ...registry
      .probeAll()
      .filter(({ provider, result }) => !opts.only && provider.id !== sel.provider.id && result.available && !provider.fake)
      .map(({ provider }) => provider),
  ];
  const backends: GuestDemoBackend[] = [];
  for (const p of order) {
    const h = p.create();
    try {
      backends.push(runDemoGuest(h));
    } catch (e) {
      backends.push({
        id: p.id,
        simulated: h.capabilities.simulated,
        guest: { exits: [], output: '', reports: {}, stoppedBy: 'error', ms: 0 },
        memory: {
          pageSize: 4096,
          pagesAllocated: null,
          accounting: 'tracked',
          boundRanges: [],
          privatePages: 0,
          sharedPages: 0,
          faultsServed: 0,
          conversions: 0,
          pagesMapped: 0,
        },
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      h.close();
    }
  }
  const ran = backends.filter((b) => !b.error);
  return {
    selected: { id: sel.provider.id, reason },
    backends,
    outputIdentical: ran.every((b) => b.guest.output === ran[0]?.guest.output),
  };
}

/** The text form of {@link runGuestDemo}'s result. */
export function renderGuestDemo(r: GuestDemoResult): string {
  const lines = [`guest demo — selected ${r.selected.id} (${r.selected.reason})`];
  for (const b of r.backends) {
    lines.push('', `== ${b.id}${b.simulated ? ' (simulated)' : ' (real kernel)'}${b.error ? `: failed: ${b.error}` : ''}`);
    if (b.error) continue;
    lines.push('   guest output:');
    for (const l of b.guest.output.split('\n').filter(Boolean)) lines.push(`     | ${l}`);
    const counts = new Map<string, number>();
    for (const e of b.guest.exits) {
      const k = e.kind === 'io' ? `io port 0x${(e.port as number).toString(16)}` : e.kind;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    lines.push(`   exits: ${[...counts].map(([k, n]) => `${n}× ${k}`).join(', ')}; stopped by ${b.guest.stoppedBy} after ${b.guest.ms} ms`);
    lines.push(
      `   reports: ${Object.entries(b.guest.reports)
        .map(([p, v]) => `${p}=${v}`)
        .join(' ')}`,
    );
    const m = b.memory;
    lines.push(
      `   memory: ${m.pagesAllocated ?? 'uncounted'} pages allocated (${m.accounting}); bound ${m.boundRanges.map((x) => `${x.gpa}+${x.size / 1024}KiB(${x.access})`).join(', ')}; ` +
        `${m.privatePages} private / ${m.sharedPages} shared pages; ${m.faultsServed} faults served`,
    );
  }
  lines.push('', r.outputIdentical ? 'guest output identical on every backend' : '!! guest output differs between backends');
  return lines.join('\n');
}
