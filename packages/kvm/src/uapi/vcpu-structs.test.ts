import { describe, expect, it } from 'vitest';
import {
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MEMORY_FAULT,
  KVM_EXIT_MMIO,
  KVM_INTERNAL_ERROR_EMULATION,
} from './constants.js';
import {
  KVM_CREATE_VCPU,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_IOCTL_NAMES,
  KVM_RUN,
  KVM_SET_REGS,
  KVM_SET_SIGNAL_MASK,
  KVM_SET_SREGS,
  SIZEOF_KVM_REGS,
  SIZEOF_KVM_RUN,
  SIZEOF_KVM_SREGS,
} from './ioctl.js';
import {
  KVM_REGS_FIELDS,
  KVM_RUN_OFFSETS,
  SIZEOF_KVM_DTABLE,
  SIZEOF_KVM_SEGMENT,
  decodeKvmRegs,
  decodeKvmRunExit,
  decodeKvmSregs,
  encodeKvmRegs,
  encodeKvmSregs,
} from './vcpu-structs.js';

// Every literal below is what a C probe printed on the 6.18 machine (sizeof/offsetof against
// <linux/kvm.h>, and the ioctl macros expanded).
describe('vCPU ioctl numbers and struct sizes', () => {
  it('match <linux/kvm.h> on x86-64', () => {
    expect([SIZEOF_KVM_REGS, SIZEOF_KVM_SREGS, SIZEOF_KVM_RUN, SIZEOF_KVM_SEGMENT, SIZEOF_KVM_DTABLE]).toEqual([144, 312, 2352, 24, 16]);
    expect(KVM_GET_REGS).toBe(0x8090ae81);
    expect(KVM_SET_REGS).toBe(0x4090ae82);
    expect(KVM_GET_SREGS).toBe(0x8138ae83);
    expect(KVM_SET_SREGS).toBe(0x4138ae84);
    expect(KVM_RUN).toBe(0xae80);
    expect(KVM_SET_SIGNAL_MASK).toBe(0x4004ae8b);
    expect(KVM_CREATE_VCPU).toBe(0xae41);
    expect(KVM_GET_VCPU_MMAP_SIZE).toBe(0xae04);
    expect(KVM_IOCTL_NAMES.get(0x8138ae83)).toBe('KVM_GET_SREGS');
  });
  it('exit reasons and sub-codes', () => {
    expect([KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_MMIO, KVM_EXIT_INTR, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_MEMORY_FAULT]).toEqual([
      2, 5, 6, 10, 17, 39,
    ]);
    expect([KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_INTERNAL_ERROR_EMULATION]).toEqual([0, 1, 1]);
  });
});

describe('struct kvm_regs (144 B)', () => {
  it('18 u64 in the order rax rbx rcx rdx rsi rdi rsp rbp r8-r15 rip (+128) rflags (+136)', () => {
    expect(KVM_REGS_FIELDS.indexOf('rip') * 8).toBe(128);
    expect(KVM_REGS_FIELDS.indexOf('rflags') * 8).toBe(136);
    const b = encodeKvmRegs({ rax: 1, rsi: 0x1234, rip: 0x1000, rflags: 2, r15: -1 });
    expect(b.length).toBe(144);
    expect(b.readBigUInt64LE(0)).toBe(1n);
    expect(b.readBigUInt64LE(32)).toBe(0x1234n);
    expect(b.readBigUInt64LE(120)).toBe(0xffff_ffff_ffff_ffffn);
    expect(b.readBigUInt64LE(128)).toBe(0x1000n);
    expect(b.readBigUInt64LE(136)).toBe(2n);
    const d = decodeKvmRegs(b);
    expect(d).toMatchObject({ rax: 1n, rbx: 0n, rsi: 0x1234n, rip: 0x1000n, rflags: 2n });
    expect(encodeKvmRegs(d)).toEqual(b);
  });
});

describe('struct kvm_sregs (312 B)', () => {
  it('segments at 24 B strides, gdt +192, idt +208, cr0 +224 … apic_base +272, interrupt_bitmap +280', () => {
    const raw = Buffer.alloc(312);
    // cs (+0): base, limit +8, selector +12, type +14 … padding +23
    raw.writeBigUInt64LE(0xffff0000n, 0);
    raw.writeUInt32LE(0xffff, 8);
    raw.writeUInt16LE(0xf000, 12);
    raw.writeUInt8(11, 14);
    raw.writeUInt8(1, 15);
    raw.writeUInt8(1, 18);
    raw.writeUInt8(1, 22);
    raw.writeBigUInt64LE(0x10000n, 24 * 5); // ss.base
    raw.writeUInt16LE(0x28, 24 * 6 + 12); // tr.selector
    raw.writeBigUInt64LE(0xabc000n, 192);
    raw.writeUInt16LE(0x7f, 200);
    raw.writeUInt16LE(0x3ff, 216);
    raw.writeBigUInt64LE(0x60000010n, 224);
    raw.writeBigUInt64LE(0x5000n, 240);
    raw.writeBigUInt64LE(0x500n, 264);
    raw.writeBigUInt64LE(0xfee00900n, 272);
    raw.writeBigUInt64LE(1n << 63n, 304);
    const s = decodeKvmSregs(raw);
    expect(s.cs).toEqual({
      base: 0xffff0000n,
      limit: 0xffff,
      selector: 0xf000,
      type: 11,
      present: 1,
      dpl: 0,
      db: 0,
      s: 1,
      l: 0,
      g: 0,
      avl: 0,
      unusable: 1,
      padding: 0,
    });
    expect(s.ss.base).toBe(0x10000n);
    expect(s.tr.selector).toBe(0x28);
    expect(s.gdt).toEqual({ base: 0xabc000n, limit: 0x7f });
    expect(s.idt).toEqual({ base: 0n, limit: 0x3ff });
    expect([s.cr0, s.cr3, s.efer, s.apic_base]).toEqual([0x60000010n, 0x5000n, 0x500n, 0xfee00900n]);
    expect(s.interruptBitmap).toEqual([0n, 0n, 0n, 1n << 63n]);
    expect(encodeKvmSregs(s)).toEqual(raw);
  });
});

describe('struct kvm_run exits', () => {
  const run = () => Buffer.alloc(12288);
  it('header offsets', () => {
    expect(KVM_RUN_OFFSETS).toMatchObject({ immediateExit: 1, exitReason: 8, ifFlag: 13, cr8: 16, apicBase: 24 });
  });
  it('KVM_EXIT_IO: direction +32, size +33, port +34, count +36, data_offset +40; data copied from the mapping', () => {
    const b = run();
    b.writeUInt32LE(KVM_EXIT_IO, 8);
    b.writeUInt8(KVM_EXIT_IO_OUT, 32);
    b.writeUInt8(2, 33);
    b.writeUInt16LE(0x11, 34);
    b.writeUInt32LE(1, 36);
    b.writeBigUInt64LE(4096n, 40);
    b.writeUInt16LE(0xbeef, 4096);
    const e = decodeKvmRunExit(b);
    expect(e).toEqual({
      reason: 2,
      reasonName: 'KVM_EXIT_IO',
      io: { direction: 'out', size: 2, port: 0x11, count: 1, dataOffset: 4096, data: new Uint8Array([0xef, 0xbe]) },
    });
    b.writeUInt16LE(0, 4096);
    expect(e.io!.data[0]).toBe(0xef); // a copy
    b.writeUInt8(KVM_EXIT_IO_IN, 32);
    expect(decodeKvmRunExit(b).io!.direction).toBe('in');
  });
  it('KVM_EXIT_MMIO: phys_addr +32, data[8] +40, len +48, is_write +52', () => {
    const b = run();
    b.writeUInt32LE(KVM_EXIT_MMIO, 8);
    b.writeBigUInt64LE(0x20010n, 32);
    b.writeUInt8(0x5a, 40);
    b.writeUInt32LE(1, 48);
    b.writeUInt8(1, 52);
    expect(decodeKvmRunExit(b).mmio).toEqual({ physAddr: 0x20010n, isWrite: true, len: 1, data: new Uint8Array([0x5a]) });
  });
  it('KVM_EXIT_INTERNAL_ERROR: suberror +32, ndata +36, data[16] +40', () => {
    const b = run();
    b.writeUInt32LE(KVM_EXIT_INTERNAL_ERROR, 8);
    b.writeUInt32LE(KVM_INTERNAL_ERROR_EMULATION, 32);
    b.writeUInt32LE(2, 36);
    b.writeBigUInt64LE(7n, 40);
    b.writeBigUInt64LE(0x1000n, 48);
    expect(decodeKvmRunExit(b).internal).toEqual({ suberror: 1, ndata: 2, data: [7n, 0x1000n] });
  });
  it('KVM_EXIT_MEMORY_FAULT: flags +32, gpa +40, size +48; HLT and unknown reasons have no arm', () => {
    const b = run();
    b.writeUInt32LE(KVM_EXIT_MEMORY_FAULT, 8);
    b.writeBigUInt64LE(8n, 32);
    b.writeBigUInt64LE(0xc0000000n, 40);
    b.writeBigUInt64LE(4096n, 48);
    expect(decodeKvmRunExit(b).memoryFault).toEqual({ flags: 8n, gpa: 0xc0000000n, size: 4096n });
    b.writeUInt32LE(KVM_EXIT_HLT, 8);
    expect(decodeKvmRunExit(b)).toEqual({ reason: 5, reasonName: 'KVM_EXIT_HLT' });
    b.writeUInt32LE(99, 8);
    expect(decodeKvmRunExit(b).reasonName).toBe('exit 99');
  });
});
