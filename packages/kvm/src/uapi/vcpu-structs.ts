/**
 * Codecs for the x86-64 vCPU structs: `struct kvm_regs` (144 B), `struct kvm_sregs` (312 B, with
 * `struct kvm_segment` 24 B and `struct kvm_dtable` 16 B) and the header and exit arms of
 * `struct kvm_run` (2352 B). Sizes and offsets were checked with a C `sizeof`/`offsetof` probe
 * against `<linux/kvm.h>` on the 6.18 machine; `vcpu-structs.test.ts` pins every one of them.
 *
 * Registers decode to `bigint` (they are 64-bit); segment fields and small counts to `number`.
 */
import { checkBuffer, u32, u64, type IntArg } from './codec-util.js';
import {
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_IN,
  KVM_EXIT_MEMORY_FAULT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
} from './constants.js';
import { SIZEOF_KVM_REGS, SIZEOF_KVM_RUN, SIZEOF_KVM_SREGS } from './ioctl.js';

function target(struct: string, size: number, buf: Uint8Array | undefined): Buffer {
  if (buf === undefined) return Buffer.alloc(size);
  const b = checkBuffer(struct, buf, size);
  b.fill(0, 0, size);
  return b;
}

// ---- struct kvm_regs (144 B) ----------------------------------------------------------------------
/** The field order of `struct kvm_regs`: 18 `__u64`s at `8 * index`. */
export const KVM_REGS_FIELDS = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const;
export type KvmRegName = (typeof KVM_REGS_FIELDS)[number];
/** `struct kvm_regs`, decoded. */
export type KvmRegs = Record<KvmRegName, bigint>;
/** `struct kvm_regs` to encode: omitted registers are 0. */
export type KvmRegsInput = Partial<Record<KvmRegName, IntArg>>;

export function encodeKvmRegs(v: KvmRegsInput, buf?: Uint8Array): Buffer {
  const b = target('kvm_regs', SIZEOF_KVM_REGS, buf);
  KVM_REGS_FIELDS.forEach((name, i) => {
    const r = v[name];
    if (r !== undefined) b.writeBigUInt64LE(u64(name, r), 8 * i);
  });
  return b;
}
export function decodeKvmRegs(buf: Uint8Array): KvmRegs {
  const b = checkBuffer('kvm_regs', buf, SIZEOF_KVM_REGS);
  const out = {} as KvmRegs;
  KVM_REGS_FIELDS.forEach((name, i) => (out[name] = b.readBigUInt64LE(8 * i)));
  return out;
}

// ---- struct kvm_segment (24 B) / struct kvm_dtable (16 B) -----------------------------------------
/**
 * `struct kvm_segment { __u64 base; __u32 limit; __u16 selector; __u8 type, present, dpl, db, s, l,
 * g, avl, unusable, padding; }`: base +0, limit +8, selector +12, type +14, present +15, dpl +16,
 * db +17, s +18, l +19, g +20, avl +21, unusable +22, padding +23.
 */
export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
  padding: number;
}
const SEGMENT_BYTES = ['type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable', 'padding'] as const;
export const SIZEOF_KVM_SEGMENT = 24;
/** `struct kvm_dtable { __u64 base; __u16 limit; __u16 padding[3]; }`. */
export interface KvmDtable {
  base: bigint;
  limit: number;
}
export const SIZEOF_KVM_DTABLE = 16;

function writeSegment(b: Buffer, at: number, s: KvmSegment): void {
  b.writeBigUInt64LE(u64('segment.base', s.base), at);
  b.writeUInt32LE(u32('segment.limit', s.limit), at + 8);
  b.writeUInt16LE(s.selector & 0xffff, at + 12);
  SEGMENT_BYTES.forEach((f, i) => b.writeUInt8(s[f] & 0xff, at + 14 + i));
}
function readSegment(b: Buffer, at: number): KvmSegment {
  const s = { base: b.readBigUInt64LE(at), limit: b.readUInt32LE(at + 8), selector: b.readUInt16LE(at + 12) } as KvmSegment;
  SEGMENT_BYTES.forEach((f, i) => (s[f] = b.readUInt8(at + 14 + i)));
  return s;
}

// ---- struct kvm_sregs (312 B) ---------------------------------------------------------------------
/** Segment registers of `struct kvm_sregs`, in layout order (24 B each from +0). */
export const KVM_SREGS_SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
/** Control registers of `struct kvm_sregs`, in layout order (8 B each from +224). */
export const KVM_SREGS_CONTROL = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apic_base'] as const;
/**
 * `struct kvm_sregs`: cs ds es fs gs ss tr ldt (+0 … +168), gdt +192, idt +208, cr0 +224, cr2 +232,
 * cr3 +240, cr4 +248, cr8 +256, efer +264, apic_base +272, `__u64 interrupt_bitmap[4]` +280.
 */
export type KvmSregs = Record<(typeof KVM_SREGS_SEGMENTS)[number], KvmSegment> &
  Record<(typeof KVM_SREGS_CONTROL)[number], bigint> & {
    gdt: KvmDtable;
    idt: KvmDtable;
    interruptBitmap: bigint[];
  };

export function encodeKvmSregs(v: KvmSregs, buf?: Uint8Array): Buffer {
  const b = target('kvm_sregs', SIZEOF_KVM_SREGS, buf);
  KVM_SREGS_SEGMENTS.forEach((name, i) => writeSegment(b, SIZEOF_KVM_SEGMENT * i, v[name]));
  for (const [name, at] of [
    ['gdt', 192],
    ['idt', 208],
  ] as const) {
    b.writeBigUInt64LE(u64(`${name}.base`, v[name].base), at);
    b.writeUInt16LE(v[name].limit & 0xffff, at + 8);
  }
  KVM_SREGS_CONTROL.forEach((name, i) => b.writeBigUInt64LE(u64(name, v[name]), 224 + 8 * i));
  v.interruptBitmap.slice(0, 4).forEach((w, i) => b.writeBigUInt64LE(u64(`interrupt_bitmap[${i}]`, w), 280 + 8 * i));
  return b;
}
export function decodeKvmSregs(buf: Uint8Array): KvmSregs {
  const b = checkBuffer('kvm_sregs', buf, SIZEOF_KVM_SREGS);
  const out = {} as KvmSregs;
  KVM_SREGS_SEGMENTS.forEach((name, i) => (out[name] = readSegment(b, SIZEOF_KVM_SEGMENT * i)));
  out.gdt = { base: b.readBigUInt64LE(192), limit: b.readUInt16LE(200) };
  out.idt = { base: b.readBigUInt64LE(208), limit: b.readUInt16LE(216) };
  KVM_SREGS_CONTROL.forEach((name, i) => (out[name] = b.readBigUInt64LE(224 + 8 * i)));
  out.interruptBitmap = Array.from({ length: 4 }, (_, i) => b.readBigUInt64LE(280 + 8 * i));
  return out;
}

// ---- struct kvm_run (2352 B): header and the exit arms we decode ---------------------------------
/** Byte offsets in `struct kvm_run` (x86-64). The exit union starts at +32. */
export const KVM_RUN_OFFSETS = {
  requestInterruptWindow: 0,
  immediateExit: 1,
  exitReason: 8,
  readyForInterruptInjection: 12,
  ifFlag: 13,
  flags: 14,
  cr8: 16,
  apicBase: 24,
  /** `io`: `__u8 direction` +32, `__u8 size` +33, `__u16 port` +34, `__u32 count` +36, `__u64 data_offset` +40. */
  io: { direction: 32, size: 33, port: 34, count: 36, dataOffset: 40 },
  /** `mmio`: `__u64 phys_addr` +32, `__u8 data[8]` +40, `__u32 len` +48, `__u8 is_write` +52. */
  mmio: { physAddr: 32, data: 40, len: 48, isWrite: 52 },
  /** `internal`: `__u32 suberror` +32, `__u32 ndata` +36, `__u64 data[16]` +40. */
  internal: { suberror: 32, ndata: 36, data: 40 },
  /** `fail_entry`: `__u64 hardware_entry_failure_reason` +32, `__u32 cpu` +40. */
  failEntry: { reason: 32, cpu: 40 },
  /** `memory_fault`: `__u64 flags` +32, `__u64 gpa` +40, `__u64 size` +48. */
  memoryFault: { flags: 32, gpa: 40, size: 48 },
} as const;

/** Names of the exit reasons this package knows, for messages. */
export const KVM_EXIT_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'KVM_EXIT_UNKNOWN'],
  [1, 'KVM_EXIT_EXCEPTION'],
  [KVM_EXIT_IO, 'KVM_EXIT_IO'],
  [3, 'KVM_EXIT_HYPERCALL'],
  [4, 'KVM_EXIT_DEBUG'],
  [KVM_EXIT_HLT, 'KVM_EXIT_HLT'],
  [KVM_EXIT_MMIO, 'KVM_EXIT_MMIO'],
  [KVM_EXIT_SHUTDOWN, 'KVM_EXIT_SHUTDOWN'],
  [KVM_EXIT_FAIL_ENTRY, 'KVM_EXIT_FAIL_ENTRY'],
  [KVM_EXIT_INTR, 'KVM_EXIT_INTR'],
  [KVM_EXIT_INTERNAL_ERROR, 'KVM_EXIT_INTERNAL_ERROR'],
  [24, 'KVM_EXIT_SYSTEM_EVENT'],
  [KVM_EXIT_MEMORY_FAULT, 'KVM_EXIT_MEMORY_FAULT'],
]);

/** `kvm_run.io` plus a copy of the `size * count` data bytes at `kvm_run + data_offset`. */
export interface KvmRunIo {
  direction: 'in' | 'out';
  /** Bytes per access: 1, 2 or 4. */
  size: number;
  port: number;
  /** Accesses (more than 1 for `rep ins`/`rep outs`). */
  count: number;
  /** Offset of the data in the vCPU mapping (a page of its own: 4096 on x86). */
  dataOffset: number;
  /** For `out`: what the guest wrote. For `in`: the current buffer (the host fills it before the next run). */
  data: Uint8Array;
}
export interface KvmRunMmio {
  physAddr: bigint;
  isWrite: boolean;
  len: number;
  /** For writes: the `len` bytes written. For reads: the current buffer (the host fills it). */
  data: Uint8Array;
}
export interface KvmRunInternal {
  suberror: number;
  ndata: number;
  data: bigint[];
}
export interface KvmRunMemoryFault {
  flags: bigint;
  gpa: bigint;
  size: bigint;
}
export interface KvmRunFailEntry {
  hardwareEntryFailureReason: bigint;
  cpu: number;
}

/** A decoded `kvm_run` after KVM_RUN: the exit reason and the arm of the union it selects. */
export interface KvmRunExit {
  reason: number;
  /** `KVM_EXIT_*` name, or `exit <n>` for one this package does not name. */
  reasonName: string;
  io?: KvmRunIo;
  mmio?: KvmRunMmio;
  internal?: KvmRunInternal;
  memoryFault?: KvmRunMemoryFault;
  failEntry?: KvmRunFailEntry;
}

/**
 * Decodes the exit recorded in a `kvm_run` area. `buf` is the whole vCPU mapping (the I/O data
 * lives past the 2352-byte struct, at `data_offset`); data bytes are copied, so the result stays
 * valid after the next KVM_RUN.
 */
export function decodeKvmRunExit(buf: Uint8Array): KvmRunExit {
  const b = checkBuffer('kvm_run', buf, SIZEOF_KVM_RUN);
  const O = KVM_RUN_OFFSETS;
  const reason = b.readUInt32LE(O.exitReason);
  const exit: KvmRunExit = { reason, reasonName: KVM_EXIT_NAMES.get(reason) ?? `exit ${reason}` };
  switch (reason) {
    case KVM_EXIT_IO: {
      const size = b.readUInt8(O.io.size);
      const count = b.readUInt32LE(O.io.count);
      const dataOffset = Number(b.readBigUInt64LE(O.io.dataOffset));
      const n = size * count;
      const data = dataOffset + n <= b.byteLength ? Uint8Array.from(b.subarray(dataOffset, dataOffset + n)) : new Uint8Array(0);
      exit.io = {
        direction: b.readUInt8(O.io.direction) === KVM_EXIT_IO_IN ? 'in' : 'out',
        size,
        port: b.readUInt16LE(O.io.port),
        count,
        dataOffset,
        data,
      };
      break;
    }
    case KVM_EXIT_MMIO: {
      const len = b.readUInt32LE(O.mmio.len);
      exit.mmio = {
        physAddr: b.readBigUInt64LE(O.mmio.physAddr),
        isWrite: b.readUInt8(O.mmio.isWrite) !== 0,
        len,
        data: Uint8Array.from(b.subarray(O.mmio.data, O.mmio.data + Math.min(len, 8))),
      };
      break;
    }
    case KVM_EXIT_INTERNAL_ERROR: {
      const ndata = b.readUInt32LE(O.internal.ndata);
      exit.internal = {
        suberror: b.readUInt32LE(O.internal.suberror),
        ndata,
        data: Array.from({ length: Math.min(ndata, 16) }, (_, i) => b.readBigUInt64LE(O.internal.data + 8 * i)),
      };
      break;
    }
    case KVM_EXIT_MEMORY_FAULT:
      exit.memoryFault = {
        flags: b.readBigUInt64LE(O.memoryFault.flags),
        gpa: b.readBigUInt64LE(O.memoryFault.gpa),
        size: b.readBigUInt64LE(O.memoryFault.size),
      };
      break;
    case KVM_EXIT_FAIL_ENTRY:
      exit.failEntry = { hardwareEntryFailureReason: b.readBigUInt64LE(O.failEntry.reason), cpu: b.readUInt32LE(O.failEntry.cpu) };
      break;
  }
  return exit;
}
