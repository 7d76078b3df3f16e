import { describe, expect, it } from 'vitest';
import {
  KVM_CHECK_EXTENSION,
  KVM_CREATE_GUEST_MEMFD,
  KVM_CREATE_VM,
  KVM_IOCTL_NAMES,
  KVM_PRE_FAULT_MEMORY,
  KVM_RUN,
  KVM_SET_MEMORY_ATTRIBUTES,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_USER_MEMORY_REGION2,
  KVMIO,
  _IO,
  _IOC,
  _IOR,
  _IOW,
  _IOWR,
} from './ioctl.js';

describe('ioctl number encoding', () => {
  it('computes the literal values of docs/kvm-guest-memfd.md §1.1', () => {
    expect(KVMIO).toBe(0xae);
    expect(KVM_CHECK_EXTENSION).toBe(0xae03);
    expect(KVM_CREATE_VM).toBe(0xae01);
    expect(KVM_SET_USER_MEMORY_REGION).toBe(0x4020ae46);
    expect(KVM_SET_USER_MEMORY_REGION2).toBe(0x40a0ae49);
    expect(KVM_SET_MEMORY_ATTRIBUTES).toBe(0x4020aed2);
    expect(KVM_CREATE_GUEST_MEMFD).toBe(0xc040aed4);
    expect(KVM_PRE_FAULT_MEMORY).toBe(0xc040aed5);
    expect(KVM_RUN).toBe(0xae80);
  });

  it('puts nr, type, size and direction in their asm-generic bit fields', () => {
    expect(_IO(0x12, 0x34)).toBe(0x1234);
    expect(_IOR(0x12, 0x34, 8)).toBe(0x80081234);
    expect(_IOW(0x12, 0x34, 8)).toBe(0x40081234);
    expect(_IOWR(0x12, 0x34, 0x3fff)).toBe(0xffff1234);
    expect(_IOC(3, 0xff, 0xff, 0x3fff)).toBe(0xffffffff);
    expect(_IOWR(0xae, 0xd4, 64)).toBeGreaterThan(0); // unsigned, not a negative int32
  });

  it('refuses a size that does not fit 14 bits', () => {
    expect(() => _IOW(KVMIO, 1, 1 << 14)).toThrow(RangeError);
  });

  it('names every ioctl for error messages', () => {
    expect(KVM_IOCTL_NAMES.get(0xc040aed4)).toBe('KVM_CREATE_GUEST_MEMFD');
    expect(KVM_IOCTL_NAMES.get(0x40a0ae49)).toBe('KVM_SET_USER_MEMORY_REGION2');
  });
});
