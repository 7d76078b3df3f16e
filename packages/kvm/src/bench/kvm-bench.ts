/**
 * `pnpm bench` for @guestmem/kvm: the native driver against the same syscalls issued from C
 * (`packages/kvm/bench/kvm-bench.c`, built here with gcc), and the simulated kernel on the same
 * work, measured **interleaved in one run**. Every round has two phases:
 * - bulk: C, native and sim each run the 1 GiB workloads once (the order rotates from round to
 *   round so none of them always runs first);
 * - small: C, native and sim alternate `SMALL_ALTERNATIONS` times on the short per-call workloads
 *   (4 KiB fallocates, ioctls), which take ~0.1–0.3 s each, so that every C sample has native and
 *   sim samples taken within a second of it (this machine's speed drifts over seconds).
 * The ns/op columns are medians over all samples. The ratio and difference columns are medians of
 * *paired* values: each C sample against the native (sim) sample taken right next to it in the same
 * round/alternation. This machine's speed switches between two modes (about 1.7× apart, whenever
 * the other vCPU gets busy) every few seconds; a ratio of two medians can then compare one mode
 * with the other, a median of paired ratios does not. Both are in the JSON line. Round 0 is a
 * discarded warm-up (JIT, and the very first touch of memory on a fresh machine also pays the
 * hypervisor's own first-touch cost).
 *
 * Before its timed work every run pre-faults its 1 GiB file once (mmap, touch, munmap, punch;
 * untimed), exactly like kvm-bench.c: on a VM guest with free page reporting (this machine is a
 * Firecracker guest with the balloon's page reporting at order 9), pages freed more than ~2 s ago
 * are handed back to the host, and touching them again costs a hypervisor fault — without the
 * pre-fault whichever program runs first after a pause pays for them.
 *
 * Workloads (identical in C, see the header of kvm-bench.c), per round on a fresh VM and a fresh
 * 1 GiB guest_memfd (MMAP | INIT_SHARED):
 *   fallocate 1 GiB · punch 1 GiB (fully allocated) · first touch of 1 GiB through mmap (mmap +
 *   one byte written per 4 KiB page, through the public `KvmMapping.fill` accessor, one call per
 *   page) · 16,384 × 4 KiB fallocate · 10^6 × KVM_CHECK_EXTENSION.
 * Diagnostic rows: a second byte per page of the same mapping (nothing faults any more, so it is the
 * cost of the access path alone: a store in C, one checked `fill` call through the driver), and the
 * bare koffi binding of `ioctl` (no driver code around it) so the
 * ioctl overhead can be split into koffi's share and the driver's share.
 *
 * Prints a Markdown table (ns/op, ratios) and a `JSON {...}` line. Options:
 *   --rounds=N   measured rounds (default 7; plus one warm-up); about 10 s per round here
 * Run: `node packages/kvm/dist/bench/kvm-bench.js` after `npx tsc -b packages/kvm`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kvm, KvmDriverKind, KvmGuestMemfd } from '../api.js';
import { libc } from '../native/libc.js';
import { probeNativeKvm } from '../native/probe.js';
import { openKvm } from '../open.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CAP_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';
import { KVM_CHECK_EXTENSION } from '../uapi/ioctl.js';

const GIB = 1 << 30;
const PAGE = 4096;
const SMALL_OPS = 16_384;
const IOCTL_OPS = 1_000_000;
const KEEP = FALLOC_FL_KEEP_SIZE;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

type Workload = 'fallocate_1g' | 'punch_1g' | 'touch_1g' | 'retouch_1g' | 'fallocate_4k' | 'check_extension';
type Kind = 'bulk' | 'small' | 'ioctl' | 'diagnostic';
const WORKLOADS: readonly { id: Workload; label: string; ops: number; kind: Kind }[] = [
  { id: 'fallocate_1g', label: 'fallocate 1 GiB (KEEP_SIZE)', ops: 1, kind: 'bulk' },
  { id: 'punch_1g', label: 'punch 1 GiB (PUNCH_HOLE, allocated)', ops: 1, kind: 'bulk' },
  { id: 'touch_1g', label: 'first touch 1 GiB via mmap (per 4 KiB page)', ops: GIB / PAGE, kind: 'bulk' },
  { id: 'retouch_1g', label: '  ↳ diagnostic: second touch, pages mapped (access path only)', ops: GIB / PAGE, kind: 'diagnostic' },
  { id: 'fallocate_4k', label: '16,384 × 4 KiB fallocate', ops: SMALL_OPS, kind: 'small' },
  { id: 'check_extension', label: '10^6 × KVM_CHECK_EXTENSION', ops: IOCTL_OPS, kind: 'ioctl' },
];
type RawKey = 'fallocate_4k_raw_koffi' | 'check_extension_raw_koffi';
/** Totals in ns of one step (one driver, one phase), by workload; native steps also carry the raw-koffi diagnostics. */
type Sample = Partial<Record<Workload | RawKey, number>>;
type Phase = 'bulk' | 'small';
const SMALL_ALTERNATIONS = 3;
type Column = 'c' | KvmDriverKind;

const rounds = Number(process.argv.find((a) => a.startsWith('--rounds='))?.slice(9) ?? 7);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error(`--rounds must be 1..50, got ${rounds}`);

const now = (): number => Number(process.hrtime.bigint());
let sink = 0;

// ---------------------------------------------------------------------------------------------
// C baseline

/** Builds kvm-bench.c into a temp dir; returns the binary path or the reason it could not. */
function buildC(dir: string): { bin: string } | { skip: string } {
  const src = fileURLToPath(new URL('../../bench/kvm-bench.c', import.meta.url));
  if (!existsSync(src)) return { skip: `C source not found at ${src}` };
  const bin = join(dir, 'kvm-bench');
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', bin, src], { encoding: 'utf8' });
  if (r.error) return { skip: `gcc not available (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` };
  if (r.status !== 0) return { skip: `gcc failed: ${r.stderr.trim()}` };
  return { bin };
}

/** One C repetition of one phase in a child process (its own timers; start-up is not measured). */
function runC(bin: string, phase: Phase): Sample {
  const r = spawnSync(bin, ['1', phase], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kvm-bench.c exited with ${r.status}: ${r.stderr.trim()}`);
  const out = JSON.parse(r.stdout) as { workloads: Partial<Record<Workload, { median_ns: number }>> };
  const s: Sample = {};
  for (const [w, v] of Object.entries(out.workloads)) s[w as Workload] = v.median_ns;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Drivers (native and sim run the very same code through the public uAPI-level API)

function runApi(kvm: Kvm, phase: Phase): Sample {
  const s: Sample = {};
  const vm = kvm.createVm(0);
  const gmem = vm.createGuestMemfd({ size: GIB, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  try {
    if (phase === 'bulk') runBulk(gmem, s);
    else runSmallFallocate(gmem, s);
  } finally {
    gmem.close();
    vm.close();
  }
  // Like kvm-bench.c, the ioctls run on the system fd after the VM is gone.
  if (phase === 'small') s.check_extension = runCheckExtension(kvm);
  return s;
}

/** The 1 GiB workloads. Every call is one syscall on the native driver, its simulation on sim. */
function runBulk(gmem: KvmGuestMemfd, s: Sample): void {
  // Untimed pre-fault (see the header): the timed work below reuses these pages.
  const pre = gmem.mmap({ length: GIB, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
  for (let off = 0; off < GIB; off += PAGE) pre.fill(off, 1, 1);
  pre.munmap();
  gmem.fallocate(PUNCH, 0, GIB);

  let t0 = now();
  // Why: allocate every folio of the file in one call.
  gmem.fallocate(KEEP, 0, GIB);
  s.fallocate_1g = now() - t0;

  t0 = now();
  // Why: free the whole, fully allocated file in one call.
  gmem.fallocate(PUNCH, 0, GIB);
  s.punch_1g = now() - t0;

  t0 = now();
  // Why: the host's window onto the (now empty) file; the first touches below fault pages in.
  const map = gmem.mmap({ length: GIB, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
  // One byte per page through the public accessor: each call is checked by the driver (SIGBUS
  // and bounds pre-checks) and then first-touches one page.
  for (let off = 0; off < GIB; off += PAGE) map.fill(off, 1, 1);
  s.touch_1g = now() - t0;

  t0 = now();
  // Diagnostic: every page is mapped now, so this is the access path alone.
  for (let off = 0; off < GIB; off += PAGE) map.fill(off, 1, 2);
  s.retouch_1g = now() - t0;
  map.munmap();
  gmem.fallocate(PUNCH, 0, GIB);
}

function runSmallFallocate(gmem: KvmGuestMemfd, s: Sample): void {
  const t0 = now();
  // Why: one folio per call, so the per-call cost dominates.
  for (let i = 0; i < SMALL_OPS; i++) gmem.fallocate(KEEP, i * PAGE, PAGE);
  s.fallocate_4k = now() - t0;
  gmem.fallocate(PUNCH, 0, GIB);
}

function runCheckExtension(kvm: Kvm): number {
  let acc = 0;
  const t0 = now();
  // Why: the cheapest KVM ioctl, so the call path itself is what is measured.
  for (let i = 0; i < IOCTL_OPS; i++) acc += kvm.checkExtension(KVM_CAP_GUEST_MEMFD);
  const t = now() - t0;
  sink += acc;
  return t;
}

/**
 * Diagnostic: 16,384 × 4 KiB fallocate straight through the driver's koffi binding of fallocate,
 * on a guest_memfd made by the native driver (untimed), to split the overhead the same way.
 */
function runRawKoffiFallocate(kvm: Kvm): number {
  const c = libc();
  const fallocate = c.fallocate;
  const vm = kvm.createVm(0);
  const gmem = vm.createGuestMemfd({ size: GIB, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  try {
    const fd = gmem.fd;
    let bad = 0;
    const t0 = now();
    // Why: the same allocation as the driver's fallocate, with no driver code around the call.
    for (let i = 0; i < SMALL_OPS; i++) bad |= fallocate(fd, KEEP, i * PAGE, PAGE);
    const t = now() - t0;
    if (bad) throw new Error('raw fallocate failed');
    gmem.fallocate(PUNCH, 0, GIB);
    return t;
  } finally {
    gmem.close();
    vm.close();
  }
}

/** Diagnostic: the bare koffi binding the driver uses, without any driver code around it. */
function runRawKoffiIoctl(kvmFd: number): number {
  const c = libc();
  const ioctl = c.ioctlArg;
  let acc = 0;
  const t0 = now();
  // Why: the same capability query as the driver's checkExtension, straight into koffi, to split the
  // overhead over C into koffi's share and the driver's share.
  for (let i = 0; i < IOCTL_OPS; i++) acc += ioctl(kvmFd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
  const t = now() - t0;
  if (acc !== IOCTL_OPS) throw new Error(`raw ioctl answered ${acc / IOCTL_OPS} on average, expected 1`);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Run

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

const skipped: Partial<Record<Column | 'raw', string>> = {};
/** Samples by column, keyed by `round/phase/alternation` so C, native and sim can be paired. */
const samples: Record<Column, Map<string, Sample>> = { c: new Map(), native: new Map(), sim: new Map() };

const probe = probeNativeKvm();
let cBin: string | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'guestmem-kvm-bench-'));
if (!probe.available) {
  skipped.native = skipped.c = skipped.raw = `native KVM unavailable: ${probe.reason}`;
} else {
  const b = buildC(tmp);
  if ('skip' in b) skipped.c = b.skip;
  else cBin = b.bin;
}

let native: Kvm | undefined;
let sim: Kvm | undefined;
if (!skipped.native) native = openKvm({ driver: 'native' });
try {
  sim = openKvm({ driver: 'sim' });
} catch (e) {
  skipped.sim = `openKvm({driver:'sim'}) failed: ${e instanceof Error ? e.message : String(e)}`;
}

const t0 = Date.now();
try {
  const columns: Column[] = ['c', 'native', 'sim'];
  const step = (r: number, col: Column, phase: Phase, a: number): void => {
    const keep = r > 0; // round 0 is the warm-up
    const key = `${r}/${phase}/${a}`;
    if (col === 'c' && cBin && !skipped.c) {
      try {
        const s = runC(cBin, phase);
        if (keep) samples.c.set(key, s);
      } catch (e) {
        skipped.c = `C program failed during round ${r}: ${e instanceof Error ? e.message : String(e)}`;
      }
    } else if (col === 'native' && native) {
      const s = runApi(native, phase);
      if (phase === 'small') {
        s.fallocate_4k_raw_koffi = runRawKoffiFallocate(native);
        s.check_extension_raw_koffi = runRawKoffiIoctl(native.fd);
      }
      if (keep) samples.native.set(key, s);
    } else if (col === 'sim' && sim && !skipped.sim) {
      try {
        const s = runApi(sim, phase);
        if (keep) samples.sim.set(key, s);
      } catch (e) {
        skipped.sim = `sim driver failed during round ${r}: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
  };
  for (let r = 0; r <= rounds; r++) {
    for (let k = 0; k < columns.length; k++) step(r, columns[(r + k) % columns.length]!, 'bulk', 0);
    for (let a = 0; a < SMALL_ALTERNATIONS; a++) {
      for (let k = 0; k < columns.length; k++) step(r, columns[(r + a + k) % columns.length]!, 'small', a);
    }
    process.stderr.write(`kvm-bench: round ${r}${r > 0 ? '' : ' (warm-up)'} done after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }
} finally {
  native?.close();
  sim?.close();
  rmSync(tmp, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Report

type Key = Workload | RawKey;
/** The bare-koffi diagnostic of each per-call workload (same syscall, no driver code around it). */
const RAW_OF: Partial<Record<Workload, RawKey>> = { fallocate_4k: 'fallocate_4k_raw_koffi', check_extension: 'check_extension_raw_koffi' };
/** Median ns per operation of column `col`'s samples of `key`. */
const perOp = (col: Column, key: Key, ops: number): number | undefined => {
  const v = skipped[col] ? [] : [...samples[col].values()].flatMap((s) => (s[key] === undefined ? [] : [s[key]!]));
  return v.length ? median(v) / ops : undefined;
};
/** Median over paired samples (same round/phase/alternation) of `f(a, b)`, a from `ca`, b from `cb`. */
const paired = (ca: Column, ka: Key, cb: Column, kb: Key, f: (a: number, b: number) => number): number | undefined => {
  if (skipped[ca] || skipped[cb]) return undefined;
  const v: number[] = [];
  for (const [key, sa] of samples[ca]) {
    const a = sa[ka];
    const b = samples[cb].get(key)?.[kb];
    if (a !== undefined && b !== undefined) v.push(f(a, b));
  }
  return v.length ? median(v) : undefined;
};
const pairedRatio = (ca: Column, ka: Key, cb: Column, kb: Key): number | undefined => paired(ca, ka, cb, kb, (a, b) => a / b);
const pairedDiff = (ca: Column, ka: Key, cb: Column, kb: Key, ops: number): number | undefined =>
  paired(ca, ka, cb, kb, (a, b) => (a - b) / ops);
const fmt = (n: number | undefined): string => (n === undefined ? '—' : n >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined ? undefined : a / b;
const fmtRatio = (r: number | undefined): string => (r === undefined ? '—' : `${r.toFixed(3)}×`);

interface Row {
  workload: Key;
  label: string;
  ops: number;
  c_ns_per_op?: number;
  native_ns_per_op?: number;
  sim_ns_per_op?: number;
  native_over_c?: number;
  sim_over_c?: number;
  native_minus_c_ns?: number;
  /** The driver's own cost: native minus the bare koffi binding of the same call, paired, ns per call. */
  native_minus_koffi_ns?: number;
  /** Ratios of the medians (the columns above are medians of paired ratios). */
  native_over_c_of_medians?: number;
  sim_over_c_of_medians?: number;
  target: string;
  holds?: boolean;
}

const rows: Row[] = [];
for (const w of WORKLOADS) {
  const c = perOp('c', w.id, w.ops);
  const n = perOp('native', w.id, w.ops);
  const sm = perOp('sim', w.id, w.ops);
  const nr = pairedRatio('native', w.id, 'c', w.id);
  // "The kernel" for the sim targets is the C program; the native driver stands in when C is skipped.
  const kernel: Column = c === undefined ? 'native' : 'c';
  const sr = pairedRatio('sim', w.id, kernel, w.id);
  const row: Row = {
    workload: w.id,
    label: w.label,
    ops: w.ops,
    c_ns_per_op: c,
    native_ns_per_op: n,
    sim_ns_per_op: sm,
    native_over_c: nr,
    sim_over_c: sr,
    native_over_c_of_medians: ratio(n, c),
    sim_over_c_of_medians: ratio(sm, kernel === 'c' ? c : n),
    target: '',
  };
  // The per-operation difference is meaningful for repeated small operations only.
  if (w.ops > 1) row.native_minus_c_ns = pairedDiff('native', w.id, 'c', w.id, w.ops);
  const rawKey = RAW_OF[w.id];
  if (rawKey) row.native_minus_koffi_ns = paired('native', w.id, 'native', rawKey, (a, b) => (a - b) / w.ops);
  if (w.kind === 'diagnostic') {
    row.target = '(diagnostic)';
  } else if (w.kind === 'ioctl') {
    row.target = 'native ≤ C + 50 ns';
    row.holds = row.native_minus_c_ns === undefined ? undefined : row.native_minus_c_ns <= 50;
  } else if (w.kind === 'bulk') {
    const simToo = w.id === 'fallocate_1g' || w.id === 'punch_1g';
    row.target = simToo ? 'native ≤ 1.05×; sim ≤ 0.2×' : 'native ≤ 1.05×';
    const nh = nr === undefined ? undefined : nr <= 1.05;
    const sh = simToo ? (sr === undefined ? undefined : sr <= 0.2) : true;
    row.holds = nh === undefined || sh === undefined ? undefined : nh && sh;
  } else {
    row.target = 'native ≤ 1.25×';
    row.holds = nr === undefined ? undefined : nr <= 1.25;
  }
  if (rawKey) {
    // The acceptance bound of the native driver: at most 15 ns per call over the bare FFI binding.
    row.target += '; driver − bare koffi ≤ 15 ns';
    const kh = row.native_minus_koffi_ns === undefined ? undefined : row.native_minus_koffi_ns <= 15;
    row.holds = row.holds === undefined || kh === undefined ? undefined : row.holds && kh;
  }
  rows.push(row);
}
/** Inserts a "bare koffi" diagnostic row right after the row of `after`. */
function rawRow(after: Workload, workload: RawKey, label: string): void {
  const w = WORKLOADS.find((x) => x.id === after)!;
  const raw = perOp('native', workload, w.ops);
  if (raw === undefined) return;
  const c = perOp('c', after, w.ops);
  rows.splice(rows.findIndex((r) => r.workload === after) + 1, 0, {
    workload,
    label,
    ops: w.ops,
    c_ns_per_op: c,
    native_ns_per_op: raw,
    native_over_c: pairedRatio('native', workload, 'c', after),
    native_minus_c_ns: pairedDiff('native', workload, 'c', after, w.ops),
    native_over_c_of_medians: ratio(raw, c),
    target: '(koffi floor)',
  });
}
rawRow('fallocate_4k', 'fallocate_4k_raw_koffi', '  ↳ diagnostic: bare koffi `fallocate` binding, no driver');
rawRow('check_extension', 'check_extension_raw_koffi', '  ↳ diagnostic: bare koffi `ioctl` binding, no driver');

const mark = (h: boolean | undefined): string => (h === undefined ? 'n/a' : h ? 'yes' : 'NO');
const lines = [
  `| workload | C ns/op | native ns/op | sim ns/op | native/C (paired) | sim/${skipped.c && !skipped.native ? 'native' : 'C'} (paired) | native−C ns/op (paired) | native−bare koffi ns/op (paired) | target | holds |`,
  '|---|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ...rows.map((r) =>
    [
      '',
      r.label,
      fmt(r.c_ns_per_op),
      fmt(r.native_ns_per_op),
      fmt(r.sim_ns_per_op),
      fmtRatio(r.native_over_c),
      fmtRatio(r.sim_over_c),
      r.native_minus_c_ns === undefined ? '—' : `${r.native_minus_c_ns >= 0 ? '+' : ''}${r.native_minus_c_ns.toFixed(1)}`,
      r.native_minus_koffi_ns === undefined ? '—' : `${r.native_minus_koffi_ns >= 0 ? '+' : ''}${r.native_minus_koffi_ns.toFixed(1)}`,
      r.target,
      r.holds === undefined && r.target.startsWith('(') ? '' : mark(r.holds),
      '',
    ]
      .join(' | ')
      .trim(),
  ),
];

const cpuModel = (() => {
  try {
    return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown';
  } catch {
    return cpus()[0]?.model ?? 'unknown';
  }
})();
const machine = { kernel: release(), cpu: cpuModel, cores: cpus().length, node: process.version, date: new Date().toISOString() };

console.log(
  `**KVM bench** — ${machine.kernel}, ${machine.cpu} (${machine.cores} cores), node ${machine.node}, ${rounds} rounds (medians of ${rounds} bulk and ${rounds * SMALL_ALTERNATIONS} small-workload samples)\n`,
);
for (const [col, why] of Object.entries(skipped)) console.log(`- skipped ${col}: ${why}`);
if (Object.keys(skipped).length) console.log('');
console.log(lines.join('\n'));
console.log(
  'JSON ' +
    JSON.stringify({
      bench: 'kvm',
      machine,
      rounds,
      skipped,
      rows,
      samples_ns: Object.fromEntries(Object.entries(samples).map(([col, m]) => [col, Object.fromEntries(m)])),
      sink: sink > 0,
    }),
);
