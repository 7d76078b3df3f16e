/**
 * `pnpm bench` for guests: the same work on native KVM and on the simulated backends (kvm-sim,
 * gunyah-sim, gunyah-ack-sim generation C), side by side.
 *
 * Rows (medians of `--reps` runs, after one warm-up; fresh VM and memory per run):
 * - **touch 1 GiB**: a `GuestProgram` touching (writing one byte of) every page of 1 GiB of fresh
 *   guest memory, ns per page. Native: x86-64 code in long mode (on this PVM host every guest
 *   instruction is emulated, and the first touch of a page is a kernel fault).
 * - **8-byte guest read / write**: `Vm.guestRead(gpa, 8)` / `guestWrite` of a populated page, ns per
 *   access (simulated backends: capability 'guest-access'; native KVM has none: its guest accesses
 *   are instructions, see the touch row).
 * - **1 MiB host-view copy**: `Vm.sharedView` `readInto` and `write` of 1 MiB of guest memory (over
 *   4 MiB), GB/s, next to a plain `Uint8Array.prototype.set` of 1 MiB out of a 4 MiB host buffer
 *   measured in the same run; `read` (which returns a new array) as a diagnostic.
 *
 * Each backend (and the floor) is measured in its own child process, one after the other: a VMM
 * process runs one backend, and measuring several in one process lets the first one's types make
 * the shared core paths polymorphic for the next (a 1.5× difference on an 8-byte access). The
 * `Uint8Array#set` reference is measured in every child, next to that backend's copies.
 *
 * Options: `--reps=N` (default 5), `--touch-gib=N` (default 1); `--only=<id>|floor` runs one part
 * in this process and prints its JSON (what the children do). Prints a Markdown table and a
 * `JSON {...}` line. Run: `node --expose-gc packages/cli/dist/bench/guest-bench.js` after `npx tsc -b`.
 */
import {
  ArenaFolioAllocator,
  GuestMemFile,
  GuestProgram,
  buildGuestImage,
  loadGuest,
  runGuest,
  type FolioAllocator,
  type Hypervisor,
  type Vm,
} from '@guestmem/core';
import { GunyahAckHypervisor, GunyahHypervisor } from '@guestmem/gunyah';
import { openKvmHypervisor, probeNativeKvm } from '@guestmem/kvm';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release } from 'node:os';
import { fileURLToPath } from 'node:url';

const argText = (name: string): string | undefined => process.argv.find((x) => x.startsWith(`--${name}=`))?.split('=')[1];
const arg = (name: string, def: number): number => {
  const a = argText(name);
  return a === undefined ? def : Number(a);
};
const ONLY = argText('only');
const REPS = arg('reps', 5);
const GIB = BigInt(arg('touch-gib', 1)) << 30n;
const PAGE = 4096;
const MIB = 1 << 20;
const ACCESSES = 1_000_000;

interface Backend {
  id: string;
  /** `allocator`: the folio allocator a simulated backend takes its memory from (shared across runs, as in one long-lived process). */
  make: (allocator?: FolioAllocator) => Hypervisor;
}
const native = probeNativeKvm();
const BACKENDS: Backend[] = [
  ...(native.available ? [{ id: 'kvm', make: () => openKvmHypervisor({ driver: 'native' }) }] : []),
  { id: 'kvm-sim', make: (allocator) => openKvmHypervisor({ driver: 'sim', profile: '6.18', swProtectedVm: false, allocator }) },
  { id: 'gunyah-sim', make: (allocator) => new GunyahHypervisor({ allocator }) },
  { id: 'gunyah-ack-sim', make: (allocator) => new GunyahAckHypervisor({ generation: 'C', allocator }) },
];
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = (): number => Number(process.hrtime.bigint());

/** A VM with the image memory at 0 and `size` bytes of fresh guest memory at 4 GiB. */
function vmWith(h: Hypervisor, size: bigint): { vm: Vm; gpa: bigint } {
  const vm = h.createVm();
  const mappable = vm.capabilities.has('host-map') && vm.capabilities.has('initially-shared');
  const img = vm.createGuestMemory({ size: 2 * MIB, hostMappable: mappable, initiallyShared: mappable });
  vm.bind({ memory: img, offset: 0, gpa: 0, size: 2 * MIB, access: 'shared' });
  const mem = vm.createGuestMemory({ size, hostMappable: mappable, initiallyShared: mappable });
  const gpa = 4n << 30n;
  vm.bind({ memory: mem, offset: 0, gpa, size, access: 'shared' });
  img.close();
  mem.close();
  return { vm, gpa };
}

/**
 * ns per page of a guest touching every page of GIB: the median of the runs after the first, which
 * reuse the memory the first run faulted in (one allocator per backend, as in a long-lived
 * process; native: the kernel's page allocator); the first run is reported as `cold`.
 */
function touch(b: Backend): { warm: number; cold: number } {
  const runs: number[] = [];
  const allocator = new ArenaFolioAllocator();
  let cold = 0;
  for (let r = 0; r <= REPS; r++) {
    const h = b.make(allocator);
    try {
      const { vm, gpa } = vmWith(h, GIB);
      const vcpu = vm.createVcpu();
      loadGuest(vm, vcpu, buildGuestImage(new GuestProgram().touch(gpa, GIB, 'write', 1).hlt()));
      const t0 = now();
      const res = runGuest(vm, vcpu, { timeoutMs: 120_000 });
      const t1 = now();
      if (res.stoppedBy !== 'hlt') throw new Error(`${b.id}: touch stopped by ${res.stoppedBy}`);
      const ns = (t1 - t0) / Number(GIB / BigInt(PAGE));
      if (r > 0) runs.push(ns);
      else cold = ns;
    } finally {
      h.close();
      gc();
    }
  }
  return { warm: median(runs), cold };
}

/**
 * The floor under a simulated touch, same process, same memory: the core file's first write of one
 * byte per page (allocate a folio of reused memory, zero it, write) and a bare 4 KiB memset per page.
 */
function touchFloor(): { fileWrite: number; memset: number } {
  const allocator = new ArenaFolioAllocator();
  const pages = Number(GIB / BigInt(PAGE));
  const one = Uint8Array.of(1);
  const fw: number[] = [];
  const ms: number[] = [];
  for (let r = 0; r <= REPS; r++) {
    const f = GuestMemFile.create(GIB, 0, { backend: 'bench' }, { allocator });
    let t0 = now();
    for (let i = 0; i < pages; i++) f.write(i * PAGE, one);
    if (r > 0) fw.push((now() - t0) / pages);
    f.release();
    const folio = allocator.alloc(0);
    allocator.prepare(folio);
    const arena = allocator.arenaOf(folio);
    t0 = now();
    for (let i = 0; i + PAGE <= arena.length; i += PAGE) arena.fill(0, i, i + PAGE);
    if (r > 0) ms.push((now() - t0) / (arena.length / PAGE));
    allocator.free(folio);
    gc();
  }
  return { fileWrite: median(fw), memset: median(ms) };
}

/** ns per 8-byte guestRead / guestWrite, or undefined without 'guest-access'. */
function access(b: Backend): { read?: number; write?: number } {
  const h = b.make();
  try {
    if (!h.capabilities.has('guest-access')) return {};
    const { vm, gpa } = vmWith(h, 64n * 1024n);
    const data = new Uint8Array(8).fill(7);
    // Number addresses: what a VMM passes below 2^53 (bigint works too, through BigInt arithmetic).
    const g = Number(gpa);
    vm.guestWrite(g, data);
    const reads: number[] = [];
    const writes: number[] = [];
    for (let r = 0; r <= REPS; r++) {
      let t0 = now();
      for (let i = 0; i < ACCESSES; i++) vm.guestRead(g + (i & 511) * 8, 8);
      let t1 = now();
      if (r > 0) reads.push((t1 - t0) / ACCESSES);
      t0 = now();
      for (let i = 0; i < ACCESSES; i++) vm.guestWrite(g + (i & 511) * 8, data);
      t1 = now();
      if (r > 0) writes.push((t1 - t0) / ACCESSES);
    }
    return { read: median(reads), write: median(writes) };
  } finally {
    h.close();
  }
}

/**
 * GB/s of 1 MiB copies out of (`readInto`) and into (`write`) guest memory through `Vm.sharedView`,
 * rotating over 4 MiB, with the same run's `Uint8Array#set` of 1 MiB out of a 4 MiB host buffer
 * (same footprint, same rotation) for reference; plus `read` (a new array per copy) as a diagnostic.
 */
function copies(b: Backend): { readInto: number; read: number; write: number; set: number } {
  const h = b.make();
  try {
    const { vm, gpa } = vmWith(h, BigInt(4 * MIB));
    const view = vm.sharedView({ gpa, size: 4 * MIB });
    const host = new Uint8Array(4 * MIB).fill(1);
    const src = new Uint8Array(MIB).fill(3);
    const dst = new Uint8Array(MIB);
    view.write(0, host); // populate
    const n = 64;
    const into: number[] = [];
    const reads: number[] = [];
    const writes: number[] = [];
    const sets: number[] = [];
    const gbs = (t0: number, t1: number) => (n * MIB) / (t1 - t0);
    for (let r = 0; r <= REPS; r++) {
      let t0 = now();
      for (let i = 0; i < n; i++) dst.set(host.subarray((i & 3) * MIB, ((i & 3) + 1) * MIB));
      if (r > 0) sets.push(gbs(t0, now()));
      t0 = now();
      for (let i = 0; i < n; i++) view.readInto((i & 3) * MIB, dst);
      if (r > 0) into.push(gbs(t0, now()));
      t0 = now();
      for (let i = 0; i < n; i++) view.write((i & 3) * MIB, src);
      if (r > 0) writes.push(gbs(t0, now()));
      t0 = now();
      for (let i = 0; i < n; i++) view.read((i & 3) * MIB, MIB);
      if (r > 0) reads.push(gbs(t0, now()));
    }
    view.unmap();
    return { readInto: median(into), read: median(reads), write: median(writes), set: median(sets) };
  } finally {
    h.close();
  }
}

interface BackendResult {
  touchNsPerPage: number;
  touchColdNsPerPage: number;
  read8Ns?: number;
  write8Ns?: number;
  copyReadIntoGBs: number;
  copyReadNewGBs: number;
  copyWriteGBs: number;
  setGBs: number;
}

function measure(b: Backend): BackendResult {
  const t = touch(b);
  const a = access(b);
  gc();
  const c = copies(b);
  gc();
  return {
    touchNsPerPage: t.warm,
    touchColdNsPerPage: t.cold,
    read8Ns: a.read,
    write8Ns: a.write,
    copyReadIntoGBs: c.readInto,
    copyReadNewGBs: c.read,
    copyWriteGBs: c.write,
    setGBs: c.set,
  };
}

if (ONLY !== undefined) {
  // A child: one part, its JSON on the last line.
  const b = BACKENDS.find((x) => x.id === ONLY);
  if (ONLY !== 'floor' && !b) throw new Error(`unknown backend ${ONLY}`);
  console.log(JSON.stringify(b ? measure(b) : touchFloor()));
  process.exit(0);
}

/** Runs one part in a fresh Node process (same flags and options) and returns its JSON. */
function child(part: string): unknown {
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), `--only=${part}`, `--reps=${REPS}`, `--touch-gib=${GIB >> 30n}`],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 },
  );
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const floor = child('floor') as { fileWrite: number; memset: number };
console.error(`floor: ${JSON.stringify(floor)}`);
const results: Record<string, BackendResult> = {};
for (const b of BACKENDS) {
  results[b.id] = child(b.id) as BackendResult;
  console.error(`${b.id}: ${JSON.stringify(results[b.id])}`);
}

const f = (x: number | undefined, d = 1) => (x === undefined ? 'n/a' : x.toFixed(d));
console.log(
  `guest bench — ${cpus()[0]?.model ?? 'cpu?'} ×${cpus().length}, Linux ${release()}, node ${process.version}, ${REPS} reps, touch ${GIB >> 30n} GiB${native.available ? '' : `; native skipped: ${native.reason}`}\n`,
);
console.log(
  `| backend | touch ns/page | (cold first run) | guestRead 8 B ns | guestWrite 8 B ns | 1 MiB readInto GB/s | 1 MiB write GB/s | set GB/s | readInto/set | write/set | read (new array) GB/s |`,
);
console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
for (const [id, r] of Object.entries(results)) {
  console.log(
    `| ${id} | ${f(r.touchNsPerPage)} | ${f(r.touchColdNsPerPage)} | ${f(r.read8Ns)} | ${f(r.write8Ns)} | ${f(r.copyReadIntoGBs, 2)} | ${f(r.copyWriteGBs, 2)} | ${f(r.setGBs, 2)} | ` +
      `${f((100 * r.copyReadIntoGBs) / r.setGBs, 0)} % | ${f((100 * r.copyWriteGBs) / r.setGBs, 0)} % | ${f(r.copyReadNewGBs, 2)} |`,
  );
}
console.log(
  `\nfloor of a simulated touch, same memory reused: core file first write ${f(floor.fileWrite)} ns/page, bare 4 KiB memset ${f(floor.memset)} ns/page`,
);
console.log(`\nJSON ${JSON.stringify({ date: new Date().toISOString(), reps: REPS, load: loadavg(), results, floor })}`);
