import { describe, expect, it } from 'vitest';
import { detectHostVirtualization } from './host-virtualization.js';

const cpu = (flags: string): string => `processor\t: 0\nflags\t\t: fpu sse ${flags}\n\nprocessor\t: 1\n`;

describe('detectHostVirtualization', () => {
  it('names the kind from the loaded modules first, the CPU flags second', () => {
    expect(detectHostVirtualization({ cpuinfo: cpu('hypervisor avx2'), modules: ['kvm', 'kvm_pvm', 'ext4'] })).toMatchObject({
      kind: 'PVM',
      modules: ['kvm', 'kvm_pvm'],
      cpuFlags: ['hypervisor'],
      nested: true,
    });
    expect(detectHostVirtualization({ cpuinfo: cpu('vmx'), modules: ['kvm', 'kvm_intel'] })).toMatchObject({ kind: 'VMX', nested: false });
    expect(detectHostVirtualization({ cpuinfo: cpu('svm'), modules: ['kvm', 'kvm_amd'] })).toMatchObject({ kind: 'SVM' });
    expect(detectHostVirtualization({ cpuinfo: cpu('svm'), modules: [] })).toMatchObject({
      kind: 'SVM',
      evidence: expect.stringContaining('no KVM module'),
    });
    expect(detectHostVirtualization({ cpuinfo: cpu('avx'), modules: [] })).toMatchObject({ kind: 'none' });
    expect(detectHostVirtualization({ cpuinfo: undefined, modules: [] })).toMatchObject({
      kind: 'none',
      evidence: expect.stringContaining('unreadable'),
    });
  });

  it('reads this host without throwing', () => {
    const v = detectHostVirtualization();
    expect(['PVM', 'VMX', 'SVM', 'none']).toContain(v.kind);
  });
});
