import { describe, expect, it } from 'vitest';
import { decodeGuestMemfdFlags, decodeVmTypes, kvmDeviceHint } from './probe.js';

describe('probe decoding', () => {
  it('decodes KVM_CAP_VM_TYPES and KVM_CAP_GUEST_MEMFD_FLAGS bit by bit, naming unknown bits', () => {
    expect(decodeVmTypes(0b11)).toEqual(['KVM_X86_DEFAULT_VM', 'KVM_X86_SW_PROTECTED_VM']);
    expect(decodeVmTypes(1 << 5)).toEqual(['KVM_X86_TDX_VM']);
    expect(decodeVmTypes(1 << 9)).toEqual(['type 9']);
    expect(decodeVmTypes(0)).toEqual([]);
    expect(decodeGuestMemfdFlags(0b11)).toEqual(['GUEST_MEMFD_FLAG_MMAP', 'GUEST_MEMFD_FLAG_INIT_SHARED']);
    expect(decodeGuestMemfdFlags(0b100)).toEqual(['GUEST_MEMFD_FLAG_NO_DIRECT_MAP']);
    expect(decodeGuestMemfdFlags(1 << 31)).toEqual(['bit 31']);
  });

  it('hints: EACCES → kvm group, ENOENT → load a module, ENOTTY → not KVM', () => {
    expect(kvmDeviceHint('EACCES', '/dev/kvm')).toMatch(/add the user to the 'kvm' group/);
    expect(kvmDeviceHint('ENOENT', '/dev/kvm')).toMatch(/kvm_intel, kvm_amd or kvm_pvm/);
    expect(kvmDeviceHint('ENOTTY', '/dev/null')).toMatch(/not a KVM device/);
    expect(kvmDeviceHint('EINVAL', '/dev/kvm')).toBeUndefined();
  });
});
