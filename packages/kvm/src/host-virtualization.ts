/**
 * What kind of hardware virtualization backs `/dev/kvm` on this host, read from the CPU flags
 * (`/proc/cpuinfo`) and the loaded kernel modules (`/proc/modules`, else `/sys/module`). No
 * device is opened and nothing native is loaded.
 */
import { existsSync, readFileSync } from 'node:fs';

/**
 * - `'PVM'`: the `kvm_pvm` module — KVM without hardware virtualization extensions; every guest
 *   instruction runs through KVM's emulation. guest_memfd behaves as on other hosts, guest code is slow.
 * - `'VMX'`: Intel VT-x (`vmx` CPU flag, `kvm_intel`).
 * - `'SVM'`: AMD-V (`svm` CPU flag, `kvm_amd`).
 * - `'none'`: no KVM module and no virtualization CPU flag found.
 */
export type HostVirtualizationKind = 'PVM' | 'VMX' | 'SVM' | 'none';

/** What {@link detectHostVirtualization} found, with the evidence. */
export interface HostVirtualization {
  readonly kind: HostVirtualizationKind;
  /** KVM modules found loaded (`kvm`, `kvm_intel`, `kvm_amd`, `kvm_pvm`). */
  readonly modules: readonly string[];
  /** Virtualization-related CPU flags present (`vmx`, `svm`, `hypervisor`). */
  readonly cpuFlags: readonly string[];
  /** True when the CPU reports running under a hypervisor (the `hypervisor` flag): a nested host. */
  readonly nested: boolean;
  /** One sentence: how the kind was decided. */
  readonly evidence: string;
}

const KVM_MODULES = ['kvm', 'kvm_intel', 'kvm_amd', 'kvm_pvm'] as const;

/** Where to read from; tests pass fixtures. */
export interface HostVirtualizationSources {
  /** Contents of `/proc/cpuinfo`, or undefined when unreadable. */
  cpuinfo?: string;
  /** Names of loaded modules. */
  modules?: readonly string[];
}

function readSources(): HostVirtualizationSources {
  let cpuinfo: string | undefined;
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    cpuinfo = undefined;
  }
  let modules: string[];
  try {
    modules = readFileSync('/proc/modules', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean);
  } catch {
    // Some sandboxes hide /proc/modules; /sys/module/<name> exists for loaded and built-in modules.
    modules = KVM_MODULES.filter((m) => existsSync(`/sys/module/${m}`));
  }
  return { cpuinfo, modules };
}

/** Decides the host's virtualization kind. Never throws. */
export function detectHostVirtualization(sources: HostVirtualizationSources = readSources()): HostVirtualization {
  const flagLine = /^flags\s*:\s*(.*)$/m.exec(sources.cpuinfo ?? '')?.[1] ?? '';
  const flags = new Set(flagLine.split(/\s+/));
  const cpuFlags = ['vmx', 'svm', 'hypervisor'].filter((f) => flags.has(f));
  const modules = KVM_MODULES.filter((m) => sources.modules?.includes(m));
  const nested = flags.has('hypervisor');
  const has = (m: string): boolean => modules.includes(m as (typeof KVM_MODULES)[number]);
  let kind: HostVirtualizationKind;
  let evidence: string;
  if (has('kvm_pvm')) {
    kind = 'PVM';
    evidence = 'the kvm_pvm module is loaded (guest instructions are emulated by KVM)';
  } else if (has('kvm_intel') || (flags.has('vmx') && has('kvm'))) {
    kind = 'VMX';
    evidence = has('kvm_intel') ? 'the kvm_intel module is loaded' : 'the vmx CPU flag with the kvm module';
  } else if (has('kvm_amd') || (flags.has('svm') && has('kvm'))) {
    kind = 'SVM';
    evidence = has('kvm_amd') ? 'the kvm_amd module is loaded' : 'the svm CPU flag with the kvm module';
  } else if (flags.has('vmx') || flags.has('svm')) {
    kind = flags.has('vmx') ? 'VMX' : 'SVM';
    evidence = `the ${flags.has('vmx') ? 'vmx' : 'svm'} CPU flag (no KVM module found loaded)`;
  } else {
    kind = 'none';
    evidence =
      sources.cpuinfo === undefined ? '/proc/cpuinfo is unreadable and no KVM module was found' : 'no vmx/svm CPU flag and no KVM module';
  }
  return { kind, modules, cpuFlags, nested, evidence };
}
