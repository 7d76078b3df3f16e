/**
 * Random operation sequences for the differential suite: a small language of guest_memfd/memslot
 * operations whose arguments refer to earlier objects by index, and an interpreter that plays a
 * sequence on one driver through a {@link Session}. The generator lives in the test (fast-check).
 *
 * Object references are `index % count` over every object of that kind created so far (closed ones
 * included), so the same sequence picks the same objects on both drivers as long as their traces
 * agree — and the first disagreement is itself the divergence being looked for.
 */
import type { KvmAnonMapping, KvmGuestMemfd, KvmMapping, KvmVm } from '../api.js';
import { KVM_MEM_GUEST_MEMFD } from '../uapi/constants.js';
import type { Session } from './trace.js';

/** Which fd a REGION2 passes as `guest_memfd`. */
export type FdRef = { kind: 'gmem'; g: number } | { kind: 'vm'; vm: number } | { kind: 'kvm' } | { kind: 'bad' };

export type RandomOp =
  | { op: 'createGmem'; vm: number; size: number; flags: bigint }
  | { op: 'dup'; g: number }
  | { op: 'close'; g: number }
  | { op: 'fallocate'; g: number; mode: number; offset: number; len: number }
  | { op: 'mmap'; g: number; offset: number; length: number; prot: number; flags: number }
  | { op: 'munmap'; m: number }
  | { op: 'read'; m: number; offset: number; len: number }
  | { op: 'write'; m: number; offset: number; len: number; byte: number }
  | { op: 'bind'; vm: number; slot: number; gpa: number; size: number; fd: FdRef; offset: number; flags: number; hva: number }
  | { op: 'delete'; vm: number; slot: number }
  | { op: 'closeVm'; vm: number }
  | { op: 'fstat'; g: number }
  /** `mmapAnonymous(length)`: the mapping joins the mapping list (read/write/munmap/REGION2 hva) too. */
  | { op: 'anon'; length: number }
  | { op: 'madvise'; a: number; offset: number; len: number; advice: number };

interface World {
  vms: KvmVm[];
  gmems: KvmGuestMemfd[];
  maps: KvmMapping[];
  anons: KvmAnonMapping[];
}

/** Folds a random access into the mapping, overshooting its end by up to 64 bytes now and then. */
function within(m: KvmMapping, offset: number, len: number): [number, number] {
  const off = offset % m.length;
  return [off, len % (m.length - off + 64)];
}

function pick<T>(list: T[], i: number): T | undefined {
  return list.length ? list[i % list.length] : undefined;
}

/** Plays `ops` on `s` (which starts with two VMs), recording every step. */
export function playRandomOps(s: Session, ops: readonly RandomOp[]): void {
  const w: World = { vms: [], gmems: [], maps: [], anons: [] };
  for (let i = 0; i < 2; i++) {
    const vm = s.vm();
    if (vm) w.vms.push(vm);
  }
  ops.forEach((o, i) => step(s, w, o, `#${i} `));
}

function step(s: Session, w: World, o: RandomOp, n: string): void {
  switch (o.op) {
    case 'createGmem': {
      const vm = pick(w.vms, o.vm);
      const g = vm && s.gmem(vm, { size: o.size, flags: o.flags }, `${n}createGuestMemfd(vm ${o.vm % w.vms.length}, ${o.size}, ${o.flags})`);
      if (g) w.gmems.push(g);
      return;
    }
    case 'dup': {
      const g = pick(w.gmems, o.g);
      const d = g && s.dup(g, `${n}dup(${s.fd(g.fd)})`);
      if (d) w.gmems.push(d);
      return;
    }
    case 'close': {
      const g = pick(w.gmems, o.g);
      if (g) s.run(`${n}close(g${o.g % w.gmems.length})`, () => g.close());
      return;
    }
    case 'fallocate': {
      const g = pick(w.gmems, o.g);
      if (g) s.run(`${n}fallocate(g${o.g % w.gmems.length}, 0x${o.mode.toString(16)}, ${o.offset}, ${o.len})`, () => g.fallocate(o.mode, o.offset, o.len));
      return;
    }
    case 'mmap': {
      const g = pick(w.gmems, o.g);
      const m = g && s.mmap(g, { offset: o.offset, length: o.length, prot: o.prot, flags: o.flags }, `${n}mmap(g${o.g % w.gmems.length}, off ${o.offset}, len ${o.length}, prot ${o.prot}, flags 0x${o.flags.toString(16)})`);
      if (m) w.maps.push(m);
      return;
    }
    case 'munmap': {
      const m = pick(w.maps, o.m);
      if (m) s.run(`${n}munmap(m${o.m % w.maps.length})`, () => m.munmap());
      return;
    }
    case 'read': {
      const m = pick(w.maps, o.m);
      if (!m) return;
      const [off, len] = within(m, o.offset, o.len);
      s.run(`${n}read(m${o.m % w.maps.length}, ${off}, ${len})`, () => m.read(off, len));
      return;
    }
    case 'write': {
      const m = pick(w.maps, o.m);
      if (!m) return;
      const [off, len] = within(m, o.offset, o.len);
      s.run(`${n}fill(m${o.m % w.maps.length}, ${off}, ${len}, ${o.byte})`, () => m.fill(off, len, o.byte));
      return;
    }
    case 'bind': {
      const vm = pick(w.vms, o.vm);
      if (!vm) return;
      let fd = 0x7fff_0000; // never open
      let fdName = 'bad';
      if (o.fd.kind === 'gmem') {
        const g = pick(w.gmems, o.fd.g);
        if (g) [fd, fdName] = [g.fd, `g${o.fd.g % w.gmems.length}`];
      } else if (o.fd.kind === 'vm') {
        const v = pick(w.vms, o.fd.vm);
        if (v) [fd, fdName] = [v.fd, `vm${o.fd.vm % w.vms.length}`];
      } else if (o.fd.kind === 'kvm') {
        [fd, fdName] = [s.kvm.fd, 'kvm'];
      }
      const m = o.hva >= 0 ? pick(w.maps, o.hva) : undefined;
      s.region2(
        vm,
        {
          slot: o.slot,
          flags: o.flags,
          guestPhysAddr: o.gpa,
          memorySize: o.size,
          userspaceAddr: m ? m.address : 0,
          guestMemfd: fd,
          guestMemfdOffset: o.offset,
        },
        `${n}region2(vm ${o.vm % w.vms.length}, slot ${o.slot}, flags ${o.flags}, gpa ${o.gpa}, size ${o.size}, fd ${fdName}, off ${o.offset}${m ? ', hva' : ''})`,
      );
      return;
    }
    case 'delete': {
      const vm = pick(w.vms, o.vm);
      if (vm) s.region2(vm, { slot: o.slot, memorySize: 0, flags: KVM_MEM_GUEST_MEMFD }, `${n}delete(vm ${o.vm % w.vms.length}, slot ${o.slot})`);
      return;
    }
    case 'closeVm': {
      const vm = pick(w.vms, o.vm);
      if (vm) s.run(`${n}closeVm(${o.vm % w.vms.length})`, () => vm.close());
      return;
    }
    case 'anon': {
      const m = s.anon(o.length, `${n}mmapAnonymous(${o.length})`);
      if (m) w.maps.push(m), w.anons.push(m);
      return;
    }
    case 'madvise': {
      const m = pick(w.anons, o.a);
      if (m) s.madvise(m, o.offset, o.len, o.advice, `${n}madvise(a${o.a % w.anons.length}, ${o.offset}, ${o.len}, ${o.advice})`);
      return;
    }
    case 'fstat': {
      const g = pick(w.gmems, o.g);
      if (g) s.run(`${n}fstat(g${o.g % w.gmems.length}).size`, () => g.fstat().size);
      return;
    }
  }
}
