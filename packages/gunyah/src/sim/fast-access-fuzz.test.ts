/**
 * v17 `SimVm.fastAccess` (with its remembered page) against the full `step` path, with `fastAccess`
 * disabled on every VM instance. Two VMs on one device, two memories (one bound in both VMs), two
 * vCPUs per VM, host mappings, punch, truncate, poison, relinquish, reclaim, whole and partial
 * unmaps and remaps, system-off, VM close, memory close, vCPU removal, immediate_exit, and a guest
 * program driven by raw `run()` interleaved with the shortcut accesses. Compared after every op:
 * the op's answer, every page's state, data hash and folio handle, the provided folios, each vCPU's
 * internal state, and everything the guest programs received. (`FUZZ_RUNS` raises the run count.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemError, PAGE_SIZE } from '@guestmem/core';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUNYAH_FN,
  MAP_FLAGS_V17 as F,
  SIZEOF_FN_VCPU_ARG,
  VCPU_RUN,
  encodeFnVcpuArg,
} from '../uapi/index.js';
import { openGunyah, type SimDevice } from './device.js';
import type { SimGuestMem, SimHostMapping } from './guest-mem.js';
import type { GuestOp, GuestOpResult, SimVcpu } from './vcpu.js';
import type { SimVm } from './vm.js';
import { LEND_RW, SHARE_RW } from './test-helpers.js';

const P = PAGE_SIZE;
const RO_LEND = F.GUNYAH_MEM_FORCE_LEND | F.GUNYAH_MEM_ALLOW_READ;
const RO_SHARE = F.GUNYAH_MEM_FORCE_SHARE | F.GUNYAH_MEM_ALLOW_READ;
const FLAGS = { lend: LEND_RW, share: SHARE_RW, rolend: RO_LEND, roshare: RO_SHARE } as const;
type FlagName = keyof typeof FLAGS;
/** Each VM's window of guest pages; bindings live inside it. */
const WIN = [0x40_0000, 0x80_0000];
const DTB = [0x4000_0000n, 0x4100_0000n];
const PARK = 0x7000_0000n; // unbound: a guest program parks on an MMIO read here

/** Slot s of VM v: memory, file page, window page, pages. */
const SLOTS = (huge: boolean) =>
  huge
    ? [
        [
          { mem: 0, off: 0, at: 0, nr: 512 },
          { mem: 1, off: 0, at: 1024, nr: 512 },
        ],
        [
          { mem: 0, off: 512, at: 0, nr: 512 },
          { mem: 1, off: 512, at: 1024, nr: 512 },
        ],
      ]
    : [
        [
          { mem: 0, off: 0, at: 0, nr: 4 },
          { mem: 1, off: 0, at: 5, nr: 3 },
        ],
        [
          { mem: 0, off: 4, at: 0, nr: 4 },
          { mem: 1, off: 3, at: 5, nr: 3 },
        ],
      ];

type Op =
  | { t: 'acc'; vm: number; cpu: number; write: boolean; page: number; off: number; len: number; big: boolean; byte: number; buf: number }
  | { t: 'prog'; vm: number; write: boolean; page: number; off: number; len: number; byte: number }
  | { t: 'hmap'; mem: number; page: number; n: number }
  | { t: 'hwrite'; idx: number; off: number; len: number; byte: number }
  | { t: 'hread'; idx: number; off: number; len: number }
  | { t: 'hunmap'; idx: number }
  | { t: 'punch'; mem: number; page: number; n: number }
  | { t: 'trunc'; mem: number; pages: number }
  | { t: 'setSize'; mem: number; pages: number }
  | { t: 'poison'; mem: number; page: number }
  | { t: 'relinq'; vm: number; page: number; n: number; sanitize: boolean }
  | { t: 'reclaim'; mem: number; page: number; n: number }
  | { t: 'unmap'; vm: number; slot: number; how: 'all' | 'head' | 'tail'; n: number }
  | { t: 'map'; vm: number; slot: number; flags: FlagName }
  | { t: 'off'; vm: number }
  | { t: 'closeVm'; vm: number }
  | { t: 'closeMem'; mem: number }
  | { t: 'rmcpu'; vm: number; cpu: number }
  | { t: 'iexit'; vm: number; cpu: number; on: boolean }
  | { t: 'resume'; vm: number; cpu: number; action: 'handled' | 'fault' | 'retry' | undefined; data: number }
  | { t: 'dtb'; vm: number; cpu: number; write: boolean; off: number; len: number; byte: number };

export const stats = { calls: 0, hits: 0 };
const hash = (b: Uint8Array): number => {
  let h = 2166136261;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 16777619);
  return h >>> 0;
};

const norm = (r: unknown): unknown => {
  if (r instanceof Uint8Array) return { bytes: [...r] };
  if (!r || typeof r !== 'object') return r;
  const o = { ...(r as Record<string, unknown>) };
  if ('resume' in o) o.resume = typeof o.resume;
  if (o.run instanceof Uint8Array) o.run = [...o.run];
  if (o.data instanceof Uint8Array) o.data = [...o.data];
  if (o.buf instanceof Uint8Array) o.buf = [...o.buf];
  return o;
};

const errOf = (e: unknown) => (GuestMemError.is(e) ? { code: e.code } : { thrown: String(e) });

function makeBuf(kind: number, len: number, byte: number): Uint8Array {
  const fillIt = (u: Uint8Array) => {
    for (let k = 0; k < len; k++) u[k] = (byte + k * 7) & 0xff;
    return u;
  };
  if (kind === 0) return fillIt(new Uint8Array(len));
  if (kind === 1) return fillIt(Buffer.alloc(len)); // a Buffer (may have its own byteOffset)
  if (kind === 2) return fillIt(Buffer.from(new Uint8Array(len))); // pooled: non-zero byteOffset
  const big = new Uint8Array(len + 13);
  return fillIt(big.subarray(5, 5 + len)); // subarray with byteOffset 5
}

function run(ops: Op[], huge: boolean, fast: boolean, faultMode: 'v17' | 'proposed'): unknown[] {
  const gh = openGunyah({ driver: 'sim', pageFaultResume: faultMode }) as SimDevice;
  const slots = SLOTS(huge);
  const memPages = huge ? 1024 : 8;
  const mems = [0, 1].map(
    (i) => gh.createGuestMem({ flags: huge ? 2n : 0n, size: (i === 0 ? memPages : huge ? 1024 : 6) * P }) as unknown as SimGuestMem,
  );
  const vms: SimVm[] = [];
  const cpus: SimVcpu[][] = [];
  const dtbs: { close(): void }[] = [];
  const flagsOf: FlagName[][] = [
    ['lend', 'share'],
    ['share', 'lend'],
  ];
  const received: unknown[][] = [[], []];
  const queues: GuestOp[][] = [[], []];
  for (let v = 0; v < 2; v++) {
    const vm = gh.createVm() as SimVm;
    if (!fast) (vm as unknown as { fastAccess: unknown }).fastAccess = () => undefined;
    else {
      const orig = vm.fastAccess.bind(vm);
      (vm as unknown as { fastAccess: unknown }).fastAccess = (...a: Parameters<SimVm['fastAccess']>) => {
        const r = orig(...a);
        stats.calls++;
        if (r !== undefined) stats.hits++;
        return r;
      };
    }
    vms.push(vm);
    const dtb = gh.createGuestMem({ flags: 0n, size: P });
    dtbs.push(dtb);
    vm.mapMem({ guestAddr: DTB[v]!, flags: LEND_RW, guestMemFd: dtb.fd, offset: 0, size: P });
    vm.setDtbConfig({ guestPhysAddr: DTB[v]!, size: P });
    for (let s = 0; s < 2; s++) {
      const sl = slots[v]![s]!;
      vm.mapMem({
        guestAddr: WIN[v]! + sl.at * P,
        flags: FLAGS[flagsOf[v]![s]!],
        guestMemFd: mems[sl.mem]!.fd,
        offset: sl.off * P,
        size: sl.nr * P,
      });
    }
    const c0 = vm.vcpu(0);
    const c1 = vm.vcpu(1);
    cpus.push([c0, c1]);
    vm.start();
    // vCPU 1 runs a guest program fed from queues[v], parking on an MMIO read when it has nothing to do.
    const q = queues[v]!;
    const rec = received[v]!;
    c1.setGuest(
      (function* (): Generator<GuestOp, void, GuestOpResult> {
        for (;;) {
          const op = q.shift() ?? { kind: 'read' as const, gpa: PARK, len: 1 };
          const r = yield op;
          rec.push(norm(r));
        }
      })(),
    );
  }
  const maps: SimHostMapping[] = [];
  const resumes: (((a?: never, d?: Uint8Array) => unknown) | undefined)[][] = [
    [undefined, undefined],
    [undefined, undefined],
  ];
  const keep = (v: number, c: number, r: unknown) => {
    if (r && typeof r === 'object' && 'resume' in r) resumes[v]![c] = (r as { resume: never }).resume;
    return r;
  };
  const out: unknown[] = [];
  const attempt = (f: () => unknown) => {
    try {
      out.push(norm(f()));
    } catch (e) {
      out.push(errOf(e));
    }
  };
  const snapshot = () => {
    const s: unknown[] = [];
    for (const m of mems) {
      const f = m.file;
      const pages: unknown[] = [];
      const step = huge ? 61 : 1;
      for (let i = 0; i < f.pages; i += step) {
        const folio = f.pageIndex.load(i);
        const up = folio >= 0 && f.allocator.isUptodate(folio);
        let h = 0;
        if (up) {
          const inF = f.allocator.orderOf(folio) === 9 ? (i % 512) * P : 0;
          h = hash(f.allocator.view(folio).subarray(inF, inF + P));
        }
        pages.push([m.pageState(i), folio, up, h, f.allocator.isPoisoned(Math.max(folio, 0))]);
      }
      s.push(
        pages,
        f.pages,
        [...m.provided.values()].map((pf) => [pf.head, pf.nr, pf.binding.vm.fd, pf.binding.gfn, pf.binding.nr]),
      );
    }
    for (const vm of vms) {
      s.push(
        vm.status,
        vm.bindings().map((b) => [String(b.guestAddr), String(b.offset), String(b.size), b.flags]),
      );
    }
    for (const cs of cpus)
      for (const c of cs) {
        const x = c as unknown as Record<string, unknown>;
        s.push([x.state, norm(x.pending), x.faultPending, norm(x.lastResult), c.attached, c.hasResource, c.runPage[0]]);
      }
    s.push(structuredClone(received));
    out.push(s);
  };
  for (const o of ops) {
    switch (o.t) {
      case 'acc': {
        const c = cpus[o.vm]![o.cpu]!;
        const n = WIN[o.vm]! + o.page * P + o.off;
        const gpa = o.big ? BigInt(n) : n;
        if (o.write) attempt(() => keep(o.vm, o.cpu, c.write(gpa, makeBuf(o.buf, o.len, o.byte))));
        else attempt(() => keep(o.vm, o.cpu, c.read(gpa, o.len)));
        break;
      }
      case 'dtb': {
        const c = cpus[o.vm]![o.cpu]!;
        const gpa = Number(DTB[o.vm]!) + o.off;
        if (o.write) attempt(() => keep(o.vm, o.cpu, c.write(gpa, makeBuf(0, o.len, o.byte))));
        else attempt(() => keep(o.vm, o.cpu, c.read(gpa, o.len)));
        break;
      }
      case 'resume': {
        const f = resumes[o.vm]![o.cpu];
        attempt(() => (f ? keep(o.vm, o.cpu, f(o.action as never, Uint8Array.of(o.data, 1, 2, 3, 4, 5, 6, 7))) : 'none'));
        break;
      }
      case 'prog': {
        const gpa = BigInt(WIN[o.vm]! + o.page * P + o.off);
        queues[o.vm]!.push(o.write ? { kind: 'write', gpa, data: makeBuf(0, o.len, o.byte) } : { kind: 'read', gpa, len: o.len });
        attempt(() => {
          const c = cpus[o.vm]![1]!;
          c.run();
          return [...c.runPage.subarray(0, 64)];
        });
        break;
      }
      case 'hmap':
        attempt(() => {
          const m = mems[o.mem]!.mmap({ offset: o.page * P, length: o.n * P }) as SimHostMapping;
          maps.push(m);
          return 'mapped';
        });
        break;
      case 'hwrite':
        attempt(() => {
          const m = maps[o.idx % Math.max(maps.length, 1)];
          if (!m) return 'none';
          m.write(o.off, makeBuf(0, o.len, o.byte));
          return 'ok';
        });
        break;
      case 'hread':
        attempt(() => {
          const m = maps[o.idx % Math.max(maps.length, 1)];
          return m ? m.read(o.off, o.len) : 'none';
        });
        break;
      case 'hunmap':
        attempt(() => {
          if (maps.length === 0) return 'none';
          maps.splice(o.idx % maps.length, 1)[0]!.unmap();
          return 'ok';
        });
        break;
      case 'punch':
        attempt(() => mems[o.mem]!.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, o.page * P, o.n * P));
        break;
      case 'trunc':
        attempt(() => mems[o.mem]!.ftruncate(o.pages * P));
        break;
      case 'setSize':
        attempt(() => mems[o.mem]!.file.setSize(o.pages * P));
        break;
      case 'poison':
        attempt(() => mems[o.mem]!.file.markPoisoned(o.page));
        break;
      case 'relinq':
        attempt(() => vms[o.vm]!.relinquish(BigInt(WIN[o.vm]! + o.page * P), o.n, o.sanitize));
        break;
      case 'reclaim':
        attempt(() => mems[o.mem]!.reclaim(o.page, o.page + o.n, 'reclaim', undefined)?.code ?? 'ok');
        break;
      case 'unmap': {
        const sl = slots[o.vm]![o.slot]!;
        const k = Math.min(o.n, sl.nr);
        const first = o.how === 'tail' ? sl.nr - k : 0;
        const nr = o.how === 'all' ? sl.nr : k;
        attempt(() =>
          vms[o.vm]!.mapMem({
            guestAddr: WIN[o.vm]! + (sl.at + first) * P,
            flags: FLAGS[flagsOf[o.vm]![o.slot]!] | F.GUNYAH_MEM_UNMAP,
            guestMemFd: mems[sl.mem]!.fd,
            offset: (sl.off + first) * P,
            size: nr * P,
          }),
        );
        break;
      }
      case 'map': {
        const sl = slots[o.vm]![o.slot]!;
        attempt(() => {
          vms[o.vm]!.mapMem({
            guestAddr: WIN[o.vm]! + sl.at * P,
            flags: FLAGS[o.flags],
            guestMemFd: mems[sl.mem]!.fd,
            offset: sl.off * P,
            size: sl.nr * P,
          });
          flagsOf[o.vm]![o.slot] = o.flags;
        });
        break;
      }
      case 'off':
        attempt(() => cpus[o.vm]![0]!.systemOff());
        break;
      case 'closeVm':
        attempt(() => vms[o.vm]!.close());
        break;
      case 'closeMem':
        attempt(() => mems[o.mem]!.close());
        break;
      case 'rmcpu':
        attempt(() => vms[o.vm]!.removeFunction({ type: GUNYAH_FN.VCPU, argSize: SIZEOF_FN_VCPU_ARG, arg: encodeFnVcpuArg(o.cpu) }));
        break;
      case 'iexit':
        cpus[o.vm]![o.cpu]!.runPage[VCPU_RUN.immediateExit] = o.on ? 1 : 0;
        out.push('iexit');
        break;
    }
    snapshot();
  }
  for (const m of maps) m.unmap();
  for (const vm of vms) if (vm.status !== 'closed') vm.close();
  for (const m of [...mems, ...dtbs]) {
    try {
      m.close();
    } catch {
      /* closed */
    }
  }
  return out;
}

const opArb = (huge: boolean): fc.Arbitrary<Op> => {
  const pages = huge ? 1600 : 9;
  const mpages = huge ? 1024 : 8;
  const vm = fc.nat(1);
  const page = fc.nat(pages - 1);
  const len = fc.oneof({ weight: 6, arbitrary: fc.nat(20) }, fc.integer({ min: 4060, max: 4200 }), fc.nat(8200));
  const hot = huge ? fc.constantFrom(0, 1, 511, 1024, 1100) : fc.constantFrom(0, 5);
  return fc.oneof(
    {
      weight: 30,
      arbitrary: fc.record({
        t: fc.constant('acc' as const),
        vm,
        cpu: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.constant(1)),
        write: fc.boolean(),
        page: fc.oneof({ weight: 4, arbitrary: hot }, page),
        off: fc.oneof(fc.nat(P - 1), fc.integer({ min: P - 24, max: P - 1 })),
        len,
        big: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, fc.constant(true)),
        byte: fc.nat(255),
        buf: fc.nat(3),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('prog' as const),
        vm,
        write: fc.boolean(),
        page: fc.oneof(hot, page),
        off: fc.nat(P - 1),
        len: fc.nat(40),
        byte: fc.nat(255),
      }),
    },
    fc.record({ t: fc.constant('hmap' as const), mem: fc.nat(1), page: fc.nat(mpages - 1), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ t: fc.constant('hwrite' as const), idx: fc.nat(5), off: fc.nat(2 * P), len: fc.nat(40), byte: fc.nat(255) }),
    fc.record({ t: fc.constant('hread' as const), idx: fc.nat(5), off: fc.nat(2 * P), len: fc.nat(40) }),
    fc.record({ t: fc.constant('hunmap' as const), idx: fc.nat(5) }),
    fc.record({ t: fc.constant('punch' as const), mem: fc.nat(1), page: fc.nat(mpages - 1), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ t: fc.constant('trunc' as const), mem: fc.nat(1), pages: fc.integer({ min: 1, max: mpages + 2 }) }),
    fc.record({ t: fc.constant('setSize' as const), mem: fc.nat(1), pages: fc.integer({ min: 1, max: mpages + 2 }) }),
    fc.record({ t: fc.constant('poison' as const), mem: fc.nat(1), page: fc.nat(mpages - 1) }),
    fc.record({ t: fc.constant('relinq' as const), vm, page, n: fc.integer({ min: 1, max: 4 }), sanitize: fc.boolean() }),
    fc.record({ t: fc.constant('reclaim' as const), mem: fc.nat(1), page: fc.nat(mpages - 1), n: fc.integer({ min: 1, max: 4 }) }),
    fc.record({
      t: fc.constant('unmap' as const),
      vm,
      slot: fc.nat(1),
      how: fc.constantFrom<'all' | 'head' | 'tail'>('all', 'head', 'tail'),
      n: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({
      t: fc.constant('map' as const),
      vm,
      slot: fc.nat(1),
      flags: fc.constantFrom<FlagName>('lend', 'share', 'rolend', 'roshare'),
    }),
    { weight: 1, arbitrary: fc.record({ t: fc.constant('off' as const), vm }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('closeVm' as const), vm }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('closeMem' as const), mem: fc.nat(1) }) },
    fc.record({ t: fc.constant('rmcpu' as const), vm, cpu: fc.nat(1) }),
    fc.record({ t: fc.constant('iexit' as const), vm, cpu: fc.nat(1), on: fc.boolean() }),
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('resume' as const),
        vm,
        cpu: fc.nat(1),
        action: fc.constantFrom<'handled' | 'fault' | 'retry' | undefined>('handled', 'fault', 'retry', undefined),
        data: fc.nat(255),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('dtb' as const),
        vm,
        cpu: fc.nat(1),
        write: fc.boolean(),
        off: fc.nat(P - 1),
        len: fc.nat(20),
        byte: fc.nat(255),
      }),
    },
  );
};

describe('v17 shortcut = full path over a wide op domain', () => {
  for (const mode of ['v17', 'proposed'] as const) {
    it(`4 KiB pages (${mode})`, () => {
      fc.assert(
        fc.property(fc.array(opArb(false), { minLength: 10, maxLength: 60 }), (ops) => {
          expect(run(ops, false, true, mode)).toEqual(run(ops, false, false, mode));
        }),
        { numRuns: Number(process.env.FUZZ_RUNS ?? 250) },
      );
      expect(stats.hits).toBeGreaterThan(0); // the shortcut did serve accesses
    });
  }
  it('2 MiB folios', () => {
    fc.assert(
      fc.property(fc.array(opArb(true), { maxLength: 16 }), (ops) => {
        expect(run(ops, true, true, 'v17')).toEqual(run(ops, true, false, 'v17'));
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 250) / 5 },
    );
  });
});
