/**
 * The native driver's own cost per call, side by side with the bare koffi binding it wraps: the
 * acceptance bound is **driver − bare koffi ≤ 15 ns per call** on the per-call paths
 * (`KVM_CHECK_EXTENSION`, a 4 KiB `fallocate`).
 *
 * Why a separate measurement: kvm-bench.ts times 10^6-call loops seconds apart, and on this shared
 * 2-core machine the speed drifts by more than the quantity measured. Here the driver call and the
 * bare call alternate in short blocks (BLOCK calls each, order flipped every block) and the result is
 * the median over blocks of the paired per-call difference, so drift cancels within a block pair.
 * A memslot create+delete through the safe owned-mapping API is listed too (informational): the
 * owned-mapping record and the diagnosis live on that path only, never on the two hot paths.
 *
 * Run: `node packages/kvm/dist/bench/driver-overhead.js [--blocks=N]` after `npx tsc -b packages/kvm`.
 */
import type { KvmGuestMemfd } from '../api.js';
import { NativeKvm } from '../native/driver.js';
import { libc } from '../native/libc.js';
import { probeNativeKvm } from '../native/probe.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, KVM_CAP_GUEST_MEMFD } from '../uapi/constants.js';
import { KVM_CHECK_EXTENSION, KVM_SET_USER_MEMORY_REGION2 } from '../uapi/ioctl.js';
import { encodeKvmUserspaceMemoryRegion2 } from '../uapi/structs.js';

const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const now = (): number => Number(process.hrtime.bigint());
const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Pair {
  label: string;
  /** Calls per block. */
  block: number;
  driver: (n: number) => void;
  bare: (n: number) => void;
  /** The ≤ 15 ns bound applies (hot per-call paths). */
  bound: boolean;
}

function measure(p: Pair, blocks: number): { driver: number; bare: number; diff: number; q1: number; q3: number } {
  const d: number[] = [];
  const b: number[] = [];
  const diffs: number[] = [];
  for (let i = 0; i < blocks + 5; i++) {
    let td: number;
    let tb: number;
    if (i % 2) {
      let t = now();
      p.driver(p.block);
      td = now() - t;
      t = now();
      p.bare(p.block);
      tb = now() - t;
    } else {
      let t = now();
      p.bare(p.block);
      tb = now() - t;
      t = now();
      p.driver(p.block);
      td = now() - t;
    }
    if (i < 5) continue; // warm-up (JIT)
    d.push(td / p.block);
    b.push(tb / p.block);
    diffs.push((td - tb) / p.block);
  }
  const s = [...diffs].sort((x, y) => x - y);
  return {
    driver: median(d),
    bare: median(b),
    diff: median(diffs),
    q1: s[Math.floor(s.length / 4)]!,
    q3: s[Math.floor((3 * s.length) / 4)]!,
  };
}

const probe = probeNativeKvm();
if (!probe.available) {
  console.log(`driver-overhead: skipped, native KVM unavailable: ${probe.reason}`);
} else {
  const blocks = Number(/^--blocks=(\d+)$/.exec(process.argv.find((a) => a.startsWith('--blocks=')) ?? '')?.[1] ?? 301);
  const c = libc();
  const kvm = NativeKvm.open();
  const vm = kvm.createVm(0);
  const gmem: KvmGuestMemfd = vm.createGuestMemfd({ size: 1 << 20, flags: 3n });
  const anon = kvm.mmapAnonymous(1 << 20);
  const regionBuf = Buffer.alloc(160);
  let sink = 0;
  const pairs: Pair[] = [
    {
      label: 'KVM_CHECK_EXTENSION (kvm.checkExtension vs ioctl)',
      block: 2000,
      bound: true,
      driver: (n) => {
        for (let i = 0; i < n; i++) sink += kvm.checkExtension(KVM_CAP_GUEST_MEMFD);
      },
      bare: (n) => {
        const ioctl = c.ioctlArg;
        for (let i = 0; i < n; i++) sink += ioctl(kvm.fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
      },
    },
    {
      label: '4 KiB fallocate PUNCH_HOLE|KEEP_SIZE (gmem.fallocate vs fallocate)',
      block: 1000,
      bound: true,
      driver: (n) => {
        for (let i = 0; i < n; i++) gmem.fallocate(PUNCH, (i & 255) * 4096, 4096);
      },
      bare: (n) => {
        const f = c.fallocate;
        for (let i = 0; i < n; i++) sink += f(gmem.fd, PUNCH, (i & 255) * 4096, 4096);
      },
    },
    {
      label: 'memslot create+delete, owned mapping (setUserMemoryRegion2 ×2 vs ioctl ×2) — informational',
      block: 200,
      bound: false,
      driver: (n) => {
        for (let i = 0; i < n; i++) {
          vm.setUserMemoryRegion2({
            slot: 1,
            flags: 0,
            guestPhysAddr: 0x100000,
            memorySize: 1 << 20,
            userspace: { mapping: anon },
            guestMemfdOffset: 0,
            guestMemfd: 0,
          });
          vm.setUserMemoryRegion2({ slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
        }
      },
      bare: (n) => {
        for (let i = 0; i < n; i++) {
          encodeKvmUserspaceMemoryRegion2(
            {
              slot: 1,
              flags: 0,
              guestPhysAddr: 0x100000,
              memorySize: 1 << 20,
              userspaceAddr: anon.address,
              guestMemfdOffset: 0,
              guestMemfd: 0,
            },
            regionBuf,
          );
          sink += c.ioctlPtr(vm.fd, KVM_SET_USER_MEMORY_REGION2, regionBuf);
          encodeKvmUserspaceMemoryRegion2(
            { slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: 0, userspaceAddr: 0, guestMemfdOffset: 0, guestMemfd: 0 },
            regionBuf,
          );
          sink += c.ioctlPtr(vm.fd, KVM_SET_USER_MEMORY_REGION2, regionBuf);
        }
      },
    },
  ];
  const rows = pairs.map((p) => ({ ...p, ...measure(p, blocks) }));
  console.log(`**Native driver overhead over the bare koffi binding** — ${blocks} interleaved block pairs, medians\n`);
  console.log('| call | bare koffi ns/call | native driver ns/call | driver − bare koffi ns/call (paired median; IQR) | target | holds |');
  console.log('|---|---:|---:|---:|---|---|');
  for (const r of rows) {
    const holds = r.bound ? (r.diff <= 15 ? 'yes' : 'NO') : '';
    console.log(
      `| ${r.label} | ${r.bare.toFixed(1)} | ${r.driver.toFixed(1)} | ${r.diff >= 0 ? '+' : ''}${r.diff.toFixed(1)} (${r.q1.toFixed(1)} … ${r.q3.toFixed(1)}) | ${r.bound ? '≤ 15 ns' : '(informational)'} | ${holds} |`,
    );
  }
  console.log(
    'JSON ' +
      JSON.stringify({
        bench: 'kvm-driver-overhead',
        blocks,
        rows: rows.map(({ label, block, driver, bare, diff, q1, q3, bound }) => ({ label, block, driver, bare, diff, q1, q3, bound })),
        sink: sink !== 0,
      }),
  );
  anon.munmap();
  gmem.close();
  vm.close();
  kvm.close();
}
