import { describe, expect, it } from 'vitest';
import * as c from './constants.js';

describe('uAPI constants (docs/kvm-guest-memfd.md §1.3)', () => {
  it('memslot, guest_memfd and attribute flags', () => {
    expect([c.KVM_MEM_LOG_DIRTY_PAGES, c.KVM_MEM_READONLY, c.KVM_MEM_GUEST_MEMFD]).toEqual([1, 2, 4]);
    expect([c.GUEST_MEMFD_FLAG_MMAP, c.GUEST_MEMFD_FLAG_INIT_SHARED, c.GUEST_MEMFD_FLAG_NO_DIRECT_MAP]).toEqual([1n, 2n, 4n]);
    expect(c.KVM_MEMORY_ATTRIBUTE_PRIVATE).toBe(8n);
    expect(c.KVM_MEMORY_EXIT_FLAG_PRIVATE).toBe(8n);
    expect([c.KVM_EXIT_MEMORY_FAULT, c.KVM_EXIT_INTERNAL_ERROR]).toEqual([39, 17]);
  });
  it('capability numbers', () => {
    expect([
      c.KVM_CAP_USER_MEMORY2,
      c.KVM_CAP_MEMORY_FAULT_INFO,
      c.KVM_CAP_MEMORY_ATTRIBUTES,
      c.KVM_CAP_GUEST_MEMFD,
      c.KVM_CAP_VM_TYPES,
      c.KVM_CAP_PRE_FAULT_MEMORY,
      c.KVM_CAP_GUEST_MEMFD_FLAGS,
    ]).toEqual([231, 232, 233, 234, 235, 236, 244]);
  });
  it('VM types and fallocate modes', () => {
    expect([c.KVM_X86_DEFAULT_VM, c.KVM_X86_SW_PROTECTED_VM, c.KVM_X86_SNP_VM, c.KVM_X86_TDX_VM]).toEqual([0, 1, 4, 5]);
    expect([
      c.FALLOC_FL_KEEP_SIZE,
      c.FALLOC_FL_PUNCH_HOLE,
      c.FALLOC_FL_COLLAPSE_RANGE,
      c.FALLOC_FL_ZERO_RANGE,
      c.FALLOC_FL_INSERT_RANGE,
      c.FALLOC_FL_UNSHARE_RANGE,
    ]).toEqual([1, 2, 8, 0x10, 0x20, 0x40]);
  });
  it('mmap constants', () => {
    expect([c.PROT_READ, c.PROT_WRITE, c.PROT_EXEC, c.MAP_SHARED, c.MAP_PRIVATE, c.MAP_FIXED]).toEqual([1, 2, 4, 1, 2, 0x10]);
    expect(c.MAP_FAILED).toBe(2n ** 64n - 1n);
  });
});
