/**
 * Random operation sequences for the differential suite: a small language covering the whole
 * driver-neutral KVM API (`api.ts`) whose arguments refer to earlier objects by index, and an
 * interpreter that plays a sequence on one driver through a {@link Session}. The generators live in
 * `random-gen.ts`.
 *
 * Object references are `index % count` over every object of that kind created so far (closed ones
 * included), so the same sequence picks the same objects on both drivers as long as their traces
 * agree — and the first disagreement is itself the divergence being looked for.
 *
 * Raw fd positions (REGION2's `guest_memfd`, the other end of `sendfile`, the target of a KVM ioctl)
 * take every kind of fd this API can open: guest_memfd, VM, `/dev/kvm`, vCPU, memfd, `/dev/null`, and
 * a number that is not open. Two kinds are left out on purpose: fds 0–2 (what they are depends on how
 * the test runner was started, so the kernel's answer is not reproducible), and fd numbers closed
 * earlier (Node may reuse the number for its own files at any time).
 */
import type { KvmAnonMapping, KvmGmemMapping, KvmGuestMemfd, KvmMapping, KvmVcpuFd, KvmVm, OtherFd } from '../api.js';
import {
  FALLOC_FL_KEEP_SIZE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_VM_TYPES,
  KVM_MEM_GUEST_MEMFD,
  KVM_X86_SW_PROTECTED_VM,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MLOCK_ONFAULT,
} from '../uapi/constants.js';
import { isGmemMapping, type Session } from './trace.js';

/** The kinds of fd a raw fd position can name. */
export type FdKind = 'gmem' | 'vm' | 'kvm' | 'vcpu' | 'memfd' | 'devnull' | 'bad';
export const FD_KINDS: readonly FdKind[] = ['gmem', 'vm', 'kvm', 'vcpu', 'memfd', 'devnull', 'bad'];
/** A raw fd argument: the `i`-th object of `kind` (mod count); `bad` is a number that is never open. */
export interface FdRef {
  readonly kind: FdKind;
  readonly i: number;
}

/**
 * A slot's host memory in a REGION2 call: none (`userspace_addr` 0), an owned mapping plus an offset
 * (the safe API, whose own checks run first), or a raw address through `unsafeSetUserMemoryRegion` —
 * a mapping's address plus a delta, or any 64-bit value — to reach the kernel's own
 * `userspace_addr` checks.
 */
export type SlotMem =
  | { readonly kind: 'none' }
  | { readonly kind: 'owned'; readonly m: number; readonly offset: bigint }
  | { readonly kind: 'raw'; readonly m: number; readonly delta: bigint }
  | { readonly kind: 'rawAddr'; readonly addr: bigint };

export type FileCall = 'readv' | 'writev' | 'fsync' | 'fdatasync' | 'fchmod' | 'fchown' | 'getfl' | 'setfl' | 'fionread' | 'reopen';

export type RandomOp =
  | { op: 'createVm'; type: bigint }
  | { op: 'createGmem'; vm: number; size: bigint; flags: bigint }
  | { op: 'dup'; g: number }
  | { op: 'close'; g: number }
  | { op: 'closeVm'; vm: number }
  | { op: 'fallocate'; g: number; mode: number; offset: bigint; len: bigint }
  | { op: 'mmap'; g: number; offset: bigint; length: bigint; prot: number; flags: number }
  | { op: 'munmap'; m: number }
  | { op: 'read'; m: number; offset: number; len: number }
  | { op: 'write'; m: number; offset: number; len: number; byte: number }
  | {
      op: 'bind';
      vm: number;
      slot: number;
      gpa: bigint;
      size: bigint;
      fd: FdRef;
      offset: bigint;
      flags: number;
      mem: SlotMem;
      pads: boolean;
    }
  | { op: 'delete'; vm: number; slot: number }
  | { op: 'fstat'; g: number }
  /** `mmapAnonymous(length)`: the mapping joins the mapping list (read/write/munmap/REGION2 hva) too. */
  | { op: 'anon'; length: bigint }
  | { op: 'madvise'; a: number; offset: bigint; len: bigint; advice: number }
  | { op: 'gmadvise'; m: number; offset: bigint; len: bigint; advice: number }
  | { op: 'mprotect'; m: number; offset: bigint; len: bigint; prot: number }
  | { op: 'mlock'; m: number; offset: bigint; len: bigint; flags: number }
  | { op: 'munlock'; m: number; offset: bigint; len: bigint }
  | { op: 'vcpu'; vm: number; id: bigint }
  | { op: 'closeVcpu'; c: number }
  | { op: 'other'; kind: 'memfd' | 'devnull' }
  | { op: 'closeOther'; o: number }
  | { op: 'wrongIoctl'; target: FdRef; call: 'checkExtension' | 'createGuestMemfd'; cap: bigint; size: bigint; flags: bigint }
  | { op: 'fileOp'; g: number; call: FileCall; arg: number; arg2: number; bufs: readonly number[] }
  | { op: 'sendfile'; g: number; dir: 'to' | 'from'; other: FdRef; count: bigint; offset: bigint | null }
  | { op: 'setAttrs'; vm: number; address: bigint; size: bigint; attributes: bigint; flags: bigint }
  | { op: 'checkExt'; on: 'kvm' | 'vm'; vm: number; cap: bigint };

/**
 * Operations whose answer depends on the kernel configuration (`CONFIG_KVM_SW_PROTECTED_VM`): only
 * the probe-host configuration (`swProtectedVm: false`) is compared with the real kernel for them.
 */
export function isConfigDependent(o: RandomOp): boolean {
  return (
    (o.op === 'createVm' && o.type === BigInt(KVM_X86_SW_PROTECTED_VM)) ||
    o.op === 'setAttrs' ||
    ((o.op === 'checkExt' ||
      (o.op === 'wrongIoctl' && o.call === 'checkExtension' && (o.target.kind === 'kvm' || o.target.kind === 'vm'))) &&
      (o.cap === BigInt(KVM_CAP_MEMORY_ATTRIBUTES) || o.cap === BigInt(KVM_CAP_VM_TYPES)))
  );
}

/** Bytes an operation may make the kernel allocate at most: larger requests that would allocate are shrunk to this. */
export const ALLOC_CAP = 1n << 20n;
const I64_LIMIT = 1n << 63n;

interface GmemMap {
  readonly m: KvmGmemMapping;
  /** File bytes reachable from the mapping's first byte before EOF (0 for a file without INIT_SHARED). */
  readonly populatable: bigint;
}

interface World {
  vms: KvmVm[];
  gmems: KvmGuestMemfd[];
  maps: KvmMapping[];
  gmaps: GmemMap[];
  anons: KvmAnonMapping[];
  vcpus: Array<{ c: KvmVcpuFd; vm: KvmVm }>;
  others: OtherFd[];
}

/** What the interpreter reports about each call it made (see {@link playRandomOps}). */
export interface StepMeter {
  /** Called before a call; `name` is the operation. */
  begin(name: string): void;
  /**
   * Called after it, with whether it reached the kernel when the meter cannot tell from syscalls:
   * `true`/`false` for host accesses (served by the kernel's fault handler iff the access ran),
   * undefined for everything else.
   */
  end(hostAccessRan?: boolean): void;
}

/** Folds a random access into the mapping, overshooting its end by up to 64 bytes now and then. */
function within(m: KvmMapping, offset: number, len: number): [number, number] {
  const off = offset % m.length;
  return [off, len % (m.length - off + 64)];
}

function pick<T>(list: readonly T[], i: number): T | undefined {
  return list.length ? list[i % list.length] : undefined;
}

/**
 * Like {@link pick}, but indices 0–5 choose among the objects still live (so most calls meet a live
 * object) and 6–7 among all of them, closed or unmapped ones included (the EBADF/EFAULT paths). Used
 * for objects whose state is the same on both drivers by construction.
 */
function pickLive<T>(list: readonly T[], i: number, live: (x: T) => boolean): T | undefined {
  if (i < 6) {
    const open = list.filter(live);
    if (open.length) return open[i % open.length];
  }
  return pick(list, i);
}
const isOpen = (x: { readonly closed: boolean }) => !x.closed;
const isMapped = (x: { readonly unmapped: boolean }) => !x.unmapped;

/**
 * Plays `ops` on `s`, recording every step. The world starts with one VM, a 16 KiB MMAP|INIT_SHARED
 * guest_memfd of it and a read-write shared mapping of that file, so operations on files and
 * mappings find an object from the first step. `meter` (optional) learns where each generated call
 * begins and ends (the starting objects are not metered).
 */
export function playRandomOps(s: Session, ops: readonly RandomOp[], meter?: StepMeter): void {
  const w: World = { vms: [], gmems: [], maps: [], gmaps: [], anons: [], vcpus: [], others: [] };
  const vm = s.vm();
  if (vm) w.vms.push(vm);
  const g = vm && s.gmem(vm, { size: 4n * 4096n, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  if (g) w.gmems.push(g);
  const m = g && s.mmapFile(g, { length: 4 * 4096 });
  if (m) w.maps.push(m), w.gmaps.push({ m, populatable: 4n * 4096n });
  ops.forEach((o, i) => step(s, w, o, `#${i} `, meter));
}

/**
 * The raw fd number of `ref` in world `w`, and its trace name. The number is an fd open right now: a
 * closed handle's number is never passed (the process may have reused it), so with no open object of
 * the kind it is a number that is never open. The name is the reference itself (`vcpu[2]`), never
 * what it resolved to, so both drivers label the step alike.
 */
function resolveFd(s: Session, w: World, ref: FdRef): [number, string] {
  const name = `${ref.kind}[${ref.i}]`;
  const open = (all: readonly { fd: number; closed: boolean }[]) =>
    pick(
      all.filter((x) => !x.closed),
      ref.i,
    )?.fd ?? 0x7fff_0000;
  switch (ref.kind) {
    case 'gmem':
      return [open(w.gmems), name];
    case 'vm':
      return [open(w.vms), name];
    case 'kvm':
      return [s.kvm.fd, name];
    case 'vcpu':
      return [open(w.vcpus.map((v) => v.c)), name];
    case 'memfd':
    case 'devnull':
      return [open(w.others.filter((o) => o.kind === ref.kind)), name];
    case 'bad':
      return [ref.i % 2 ? 0x7fff_0000 : 1_000_000, name];
  }
}

/** Shrinks `len` so that a request at `offset` inside `room` allocatable bytes allocates at most {@link ALLOC_CAP}. */
function capAllocation(offset: bigint, len: bigint, room: bigint): bigint {
  if (offset < 0n || offset >= room || len <= ALLOC_CAP || len >= I64_LIMIT || offset + len >= I64_LIMIT) return len;
  return ALLOC_CAP;
}

function step(s: Session, w: World, o: RandomOp, n: string, meter: StepMeter | undefined): void {
  /** Runs one call under the meter. */
  const call = <T>(label: string, fn: () => T, host?: boolean): T | undefined => {
    meter?.begin(o.op);
    const before = s.trace.steps.length;
    const v = s.run(`${n}${label}`, fn);
    const out = s.trace.steps[before]?.out as { err?: string } | undefined;
    meter?.end(host === undefined ? undefined : !(out && typeof out === 'object' && 'err' in out));
    return v;
  };
  switch (o.op) {
    case 'createVm': {
      meter?.begin(o.op);
      const vm = s.vm(o.type, `${n}createVm(${o.type})`);
      meter?.end();
      if (vm) w.vms.push(vm);
      return;
    }
    case 'createGmem': {
      const vm = pickLive(w.vms, o.vm, isOpen);
      if (!vm) return;
      meter?.begin(o.op);
      const g = s.gmem(vm, { size: o.size, flags: o.flags }, `${n}createGuestMemfd(vm ${o.vm % w.vms.length}, ${o.size}, ${o.flags})`);
      meter?.end();
      if (g) w.gmems.push(g);
      return;
    }
    case 'dup': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (!g) return;
      meter?.begin(o.op);
      const d = s.dup(g, `${n}dup(g${o.g % w.gmems.length})`);
      meter?.end();
      if (d) w.gmems.push(d);
      return;
    }
    case 'close': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (g) call(`close(g${o.g % w.gmems.length})`, () => g.close());
      return;
    }
    case 'closeVm': {
      const vm = pickLive(w.vms, o.vm, isOpen);
      if (vm) call(`closeVm(${o.vm % w.vms.length})`, () => vm.close());
      return;
    }
    case 'fallocate': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (!g) return;
      // Only a plain KEEP_SIZE allocation allocates; keep it small (see ALLOC_CAP).
      const len = o.mode === FALLOC_FL_KEEP_SIZE && o.offset + o.len <= g.size ? capAllocation(o.offset, o.len, g.size) : o.len;
      call(`fallocate(g${o.g % w.gmems.length}, 0x${o.mode.toString(16)}, ${o.offset}, ${len})`, () => g.fallocate(o.mode, o.offset, len));
      return;
    }
    case 'mmap': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (!g) return;
      meter?.begin(o.op);
      const m = s.mmap(
        g,
        { offset: o.offset, length: o.length, prot: o.prot, flags: o.flags },
        `${n}mmap(g${o.g % w.gmems.length}, off ${o.offset}, len ${o.length}, prot ${o.prot}, flags 0x${o.flags.toString(16)})`,
      );
      meter?.end();
      if (m) {
        w.maps.push(m);
        if (isGmemMapping(m)) {
          const room = g.flags & GUEST_MEMFD_FLAG_INIT_SHARED && g.size > m.offset ? g.size - m.offset : 0n;
          w.gmaps.push({ m, populatable: room });
        } else w.anons.push(m);
      }
      return;
    }
    case 'munmap': {
      const m = pickLive(w.maps, o.m, isMapped);
      if (m) call(`munmap(m${o.m % w.maps.length})`, () => m.munmap());
      return;
    }
    case 'read': {
      const m = pickLive(w.maps, o.m, isMapped);
      if (!m) return;
      const [off, len] = within(m, o.offset, o.len);
      call(`read(m${o.m % w.maps.length}, ${off}, ${len})`, () => m.read(off, len), true);
      return;
    }
    case 'write': {
      const m = pickLive(w.maps, o.m, isMapped);
      if (!m) return;
      const [off, len] = within(m, o.offset, o.len);
      call(`fill(m${o.m % w.maps.length}, ${off}, ${len}, ${o.byte})`, () => m.fill(off, len, o.byte), true);
      return;
    }
    case 'bind': {
      const vm = pickLive(w.vms, o.vm, isOpen);
      if (!vm) return;
      const [fd, fdName] = resolveFd(s, w, o.fd);
      const pads = o.pads ? { pad1: 0xffff_ffff, pad2: [1n, 2n ** 64n - 1n] } : {};
      const head = `${n}region2(vm ${o.vm % w.vms.length}, slot ${o.slot}, flags ${o.flags}, gpa ${o.gpa}, size ${o.size}, fd ${fdName}, off ${o.offset}`;
      const tail = o.pads ? ', pads)' : ')';
      const fields = {
        slot: o.slot,
        flags: o.flags,
        guestPhysAddr: o.gpa,
        memorySize: o.size,
        guestMemfd: fd,
        guestMemfdOffset: o.offset,
        ...pads,
      };
      const mem = o.mem;
      meter?.begin(o.op);
      if (mem.kind === 'none') {
        s.region2Owned(vm, fields, `${head}${tail}`);
      } else if (mem.kind === 'owned') {
        const m = pickLive(w.maps, mem.m, isMapped);
        if (m)
          s.region2Owned(
            vm,
            { ...fields, userspace: { mapping: m, offset: mem.offset } },
            `${head}, mem m${mem.m % w.maps.length} +${mem.offset}${tail}`,
          );
        else s.region2Owned(vm, fields, `${head}${tail}`);
      } else {
        // The raw escape hatch: a mapping's address moved by a delta, or any value (labelled by what
        // it was made from: the address itself differs between drivers).
        const m = mem.kind === 'raw' ? pickLive(w.maps, mem.m, isMapped) : undefined;
        const addr = mem.kind === 'rawAddr' ? mem.addr : m ? BigInt.asUintN(64, m.address + mem.delta) : 0n;
        const what =
          mem.kind === 'rawAddr'
            ? `hva 0x${addr.toString(16)}`
            : m
              ? `hva m${mem.m % w.maps.length}${mem.delta < 0n ? '' : '+'}${mem.delta}`
              : 'hva 0';
        s.region2(vm, { ...fields, userspaceAddr: addr }, `${head}, ${what}${tail}`);
      }
      meter?.end();
      return;
    }
    case 'delete': {
      const vm = pickLive(w.vms, o.vm, isOpen);
      if (!vm) return;
      meter?.begin(o.op);
      s.region2Owned(
        vm,
        { slot: o.slot, memorySize: 0, flags: KVM_MEM_GUEST_MEMFD },
        `${n}delete(vm ${o.vm % w.vms.length}, slot ${o.slot})`,
      );
      meter?.end();
      return;
    }
    case 'fstat': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (g)
        call(`fstat(g${o.g % w.gmems.length})`, () => {
          const st = g.fstat();
          return { size: st.size, mode: st.mode, nlink: st.nlink, blocks: st.blocks, blksize: st.blksize };
        });
      return;
    }
    case 'anon': {
      meter?.begin(o.op);
      const m = s.anon(o.length, `${n}mmapAnonymous(${o.length})`);
      meter?.end();
      if (m) w.maps.push(m), w.anons.push(m);
      return;
    }
    case 'madvise': {
      const m = pickLive(w.anons, o.a, isMapped);
      if (!m) return;
      const populate = o.advice === MADV_POPULATE_READ || o.advice === MADV_POPULATE_WRITE;
      const len = populate ? capAllocation(o.offset, o.len, BigInt(m.length)) : o.len;
      meter?.begin(o.op);
      s.madvise(m, o.offset, len, o.advice, `${n}madvise(a${o.a % w.anons.length}, ${o.offset}, ${len}, ${o.advice})`);
      meter?.end();
      return;
    }
    case 'gmadvise': {
      const gm = pickLive(w.gmaps, o.m, (x) => !x.m.unmapped);
      if (!gm) return;
      const populate = o.advice === MADV_POPULATE_READ || o.advice === MADV_POPULATE_WRITE;
      const len = populate ? capAllocation(o.offset, o.len, gm.populatable) : o.len;
      call(`gmadvise(m${o.m % w.gmaps.length}, ${o.offset}, ${len}, ${o.advice})`, () => gm.m.madvise(o.offset, len, o.advice));
      return;
    }
    case 'mprotect': {
      const gm = pickLive(w.gmaps, o.m, (x) => !x.m.unmapped);
      if (gm)
        call(`mprotect(m${o.m % w.gmaps.length}, ${o.offset}, ${o.len}, 0x${(o.prot >>> 0).toString(16)})`, () =>
          gm.m.mprotect(o.offset, o.len, o.prot),
        );
      return;
    }
    case 'mlock': {
      const gm = pickLive(w.gmaps, o.m, (x) => !x.m.unmapped);
      if (!gm) return;
      const len = o.flags & MLOCK_ONFAULT ? o.len : capAllocation(o.offset, o.len, gm.populatable);
      call(`mlock(m${o.m % w.gmaps.length}, ${o.offset}, ${len}, ${o.flags})`, () => gm.m.mlock(o.offset, len, o.flags));
      return;
    }
    case 'munlock': {
      const gm = pickLive(w.gmaps, o.m, (x) => !x.m.unmapped);
      if (gm) call(`munlock(m${o.m % w.gmaps.length}, ${o.offset}, ${o.len})`, () => gm.m.munlock(o.offset, o.len));
      return;
    }
    case 'vcpu': {
      const vm = pickLive(w.vms, o.vm, isOpen);
      if (!vm) return;
      meter?.begin(o.op);
      const c = s.vcpu(vm, o.id, `${n}createVcpu(vm ${o.vm % w.vms.length}, ${o.id})`);
      meter?.end();
      if (c) w.vcpus.push({ c, vm });
      return;
    }
    case 'closeVcpu': {
      const v = pickLive(w.vcpus, o.c, (x) => !x.c.closed);
      if (v) call(`closeVcpu(${o.c % w.vcpus.length})`, () => v.c.close());
      return;
    }
    case 'other': {
      meter?.begin(o.op);
      const x = s.other(o.kind);
      meter?.end();
      if (x) w.others.push(x);
      return;
    }
    case 'closeOther': {
      const x = pick(w.others, o.o);
      if (x) call(`closeOther(${o.o % w.others.length})`, () => x.close());
      return;
    }
    case 'wrongIoctl':
      return wrongIoctl(s, w, o, n, meter, call);
    case 'fileOp': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (!g) return;
      const label = `${o.call}(g${o.g % w.gmems.length}, ${o.arg}, ${o.arg2}, [${o.bufs.join(',')}])`;
      const bufs = () => o.bufs.map((len) => new Uint8Array(len));
      switch (o.call) {
        case 'readv':
          return void call(label, () => g.readv(bufs()));
        case 'writev':
          return void call(label, () => g.writev(bufs()));
        case 'fsync':
          return void call(label, () => g.fsync());
        case 'fdatasync':
          return void call(label, () => g.fdatasync());
        case 'fchmod':
          return void call(label, () => g.fchmod(o.arg));
        case 'fchown':
          return void call(label, () => g.fchown(o.arg, o.arg2));
        case 'getfl':
          return void call(label, () => g.getStatusFlags());
        case 'setfl':
          return void call(label, () => g.setStatusFlags(o.arg));
        case 'fionread':
          return void call(label, () => g.fionread());
        case 'reopen': {
          meter?.begin(o.op);
          const r = s.reopen(g, o.arg, `${n}${label}`);
          meter?.end();
          if (r) w.gmems.push(r);
          return;
        }
      }
      return;
    }
    case 'sendfile': {
      const g = pickLive(w.gmems, o.g, isOpen);
      if (!g) return;
      const [fd, name] = resolveFd(s, w, o.other);
      const off = o.offset ?? undefined;
      const label = `sendfile${o.dir === 'to' ? 'To' : 'From'}(g${o.g % w.gmems.length}, ${name}, ${o.count}, ${o.offset ?? 'null'})`;
      call(label, () => (o.dir === 'to' ? g.sendfileTo(fd, o.count, off) : g.sendfileFrom(fd, o.count, off)));
      return;
    }
    case 'setAttrs': {
      const vm = pickLive(w.vms, o.vm, isOpen);
      if (vm)
        call(`setMemoryAttributes(vm ${o.vm % w.vms.length}, ${o.address}, ${o.size}, ${o.attributes}, ${o.flags})`, () =>
          vm.setMemoryAttributes(o),
        );
      return;
    }
    case 'checkExt': {
      const target = o.on === 'kvm' ? s.kvm : pickLive(w.vms, o.vm, isOpen);
      if (target) call(`checkExtension(${o.on}, ${o.cap})`, () => target.checkExtension(o.cap));
      return;
    }
  }
}

function wrongIoctl(
  s: Session,
  w: World,
  o: Extract<RandomOp, { op: 'wrongIoctl' }>,
  n: string,
  meter: StepMeter | undefined,
  call: <T>(label: string, fn: () => T) => T | undefined,
): void {
  const args = { size: o.size, flags: o.flags };
  let target: { checkExtension(cap: bigint): number; createGuestMemfd(a: typeof args): KvmGuestMemfd } | undefined;
  let name: string = o.target.kind;
  switch (o.target.kind) {
    case 'kvm':
      target = s.kvm;
      break;
    case 'vm': {
      const vm = pickLive(w.vms, o.target.i, isOpen);
      if (vm && o.call === 'createGuestMemfd') {
        // The right kind of fd: a real guest_memfd may come back, owned by the session.
        meter?.begin(o.op);
        const g = s.gmem(vm, args, `${n}vm${o.target.i % w.vms.length}.createGuestMemfd(${o.size}, ${o.flags})`);
        meter?.end();
        if (g) w.gmems.push(g);
        return;
      }
      target = vm;
      break;
    }
    case 'gmem':
      target = pickLive(w.gmems, o.target.i, isOpen);
      break;
    case 'vcpu':
      target = pickLive(w.vcpus, o.target.i, (x) => !x.c.closed)?.c;
      break;
    case 'memfd':
    case 'devnull':
      target = pick(
        w.others.filter((x) => x.kind === o.target.kind),
        o.target.i,
      );
      break;
    case 'bad':
      return;
  }
  if (!target) return;
  name += o.target.i;
  if (o.call === 'checkExtension') call(`${name}.checkExtension(${o.cap})`, () => target.checkExtension(o.cap));
  else {
    // A wrong-kind fd never returns a guest_memfd on the probed kernel; if it ever did, the session owns it.
    const g = call(`${name}.createGuestMemfd(${o.size}, ${o.flags})`, () => target.createGuestMemfd(args));
    if (g) s.own(g), w.gmems.push(g);
  }
}
