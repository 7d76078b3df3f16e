/**
 * What the simulated kernel answers about itself: `KVM_CHECK_EXTENSION` and the VM types it offers.
 *
 * The answers are those of the probe machine (docs/kvm-guest-memfd.md §0.2, §1.3): Linux 6.18 on x86-64 with the
 * PVM backend, no SMM, shadow MMU. One kernel-config knob changes them ({@link SimKernelConfig}):
 * `CONFIG_KVM_SW_PROTECTED_VM`, which adds `KVM_X86_SW_PROTECTED_VM` to the VM-type table and
 * compiles in `CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES` (so `KVM_SET_MEMORY_ATTRIBUTES` exists and
 * `KVM_CAP_MEMORY_ATTRIBUTES` answers). The probe machine has it off.
 */
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_VM_TYPES,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM,
} from '../uapi/constants.js';

/**
 * The kernel-config choices a simulated kernel is "built" with.
 *
 * `swProtectedVm`: `CONFIG_KVM_SW_PROTECTED_VM=y`. It selects `CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES`
 * (through `KVM_GENERIC_PRIVATE_MEM`), so both come together: VM type 1 is offered,
 * `KVM_SET_MEMORY_ATTRIBUTES` is implemented, and `KVM_CAP_MEMORY_ATTRIBUTES` answers PRIVATE on the
 * system fd and on type-1 VMs. Off, the kernel is the probe machine's (ENOTTY, type 1 EINVAL).
 *
 * Decision: upstream also requires the TDP MMU for type 1 (`supported_vm_types` only gains it when
 * `tdp_mmu_enabled`). The simulated kernel keeps the probe machine's other answers (shadow-MMU
 * `KVM_CAP_PRE_FAULT_MEMORY` = 0, …) because it does not model the TDP MMU; only the capabilities
 * named above change.
 */
export interface SimKernelConfig {
  readonly swProtectedVm: boolean;
}

/** The probe machine's configuration (what the differential suite compares against). */
export const PROBE_HOST_CONFIG: SimKernelConfig = { swProtectedVm: false };
/** The default simulated kernel: the probe machine plus `CONFIG_KVM_SW_PROTECTED_VM=y`. */
export const SW_PROTECTED_CONFIG: SimKernelConfig = { swProtectedVm: true };

/** The policy a VM type implies (the `kvm_arch_*` predicates the guest_memfd code asks). */
export interface SimVmType {
  readonly type: number;
  /** `kvm_arch_has_private_mem()`: SW_PROTECTED, SNP, TDX. */
  readonly hasPrivateMem: boolean;
  /** `kvm_arch_has_readonly_mem()`: KVM_MEM_READONLY is a valid non-gmem memslot flag. */
  readonly readonlyMem: boolean;
  /** `kvm_gmem_get_supported_flags(kvm)`: MMAP, plus INIT_SHARED unless the VM has private memory. */
  readonly guestMemfdFlags: bigint;
  /** `kvm_supported_mem_attributes(kvm)` (0 on a default VM; 0 everywhere when the config is off). */
  readonly memoryAttributes: bigint;
}

/** x86 default VM (type 0), the only type `KVM_CAP_VM_TYPES` offers on the probe machine. */
const DEFAULT_VM: SimVmType = {
  type: KVM_X86_DEFAULT_VM,
  hasPrivateMem: false,
  readonlyMem: true,
  guestMemfdFlags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
  memoryAttributes: 0n,
};

/**
 * x86 `KVM_X86_SW_PROTECTED_VM` (type 1): private memory without hardware protection.
 * - `kvm_arch_has_private_mem()` is true, so `kvm_arch_supports_gmem_init_shared()` is false:
 *   `KVM_CAP_GUEST_MEMFD_FLAGS` answers MMAP only and INIT_SHARED at creation is EINVAL (§1.3).
 * - `kvm_supported_mem_attributes()` is PRIVATE (§1.3).
 * - No protected state (that is SEV-ES/SNP/TDX), so KVM_MEM_READONLY stays valid for plain slots.
 */
const SW_PROTECTED_VM: SimVmType = {
  type: KVM_X86_SW_PROTECTED_VM,
  hasPrivateMem: true,
  readonlyMem: true,
  guestMemfdFlags: GUEST_MEMFD_FLAG_MMAP,
  memoryAttributes: KVM_MEMORY_ATTRIBUTE_PRIVATE,
};

/** Every VM type the simulated kernel knows, by `KVM_CREATE_VM` type number. */
export const SIM_VM_TYPES: ReadonlyMap<number, SimVmType> = new Map([
  [DEFAULT_VM.type, DEFAULT_VM],
  [SW_PROTECTED_VM.type, SW_PROTECTED_VM],
]);

/** The VM types a kernel built with `config` offers (`KVM_CAP_VM_TYPES`); others give EINVAL at `KVM_CREATE_VM`. */
export function offeredVmType(config: SimKernelConfig, type: number): SimVmType | undefined {
  if (type === KVM_X86_SW_PROTECTED_VM && !config.swProtectedVm) return undefined;
  return SIM_VM_TYPES.get(type);
}

/** Supported guest_memfd flags without a VM context (system fd): MMAP | INIT_SHARED (docs/kvm-guest-memfd.md §1.3). */
const SYSTEM_GUEST_MEMFD_FLAGS = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;

/**
 * Non-zero `KVM_CHECK_EXTENSION` answers of the probe machine's system fd, captured by enumerating
 * capabilities 0–299 on the real kernel (the differential suite re-checks 0–299 on both fds). Kept
 * whole so a VMM under test sees the same host as on the real machine; the guest_memfd ones are
 * 10 NR_MEMSLOTS=32764, 231 USER_MEMORY2, 232 MEMORY_FAULT_INFO, 234 GUEST_MEMFD, 235 VM_TYPES,
 * 244 GUEST_MEMFD_FLAGS; 233 MEMORY_ATTRIBUTES, 236 PRE_FAULT_MEMORY and 118 MULTI_ADDRESS_SPACE are 0.
 */
const PROBED_CAPS: ReadonlyMap<number, number> = new Map(
  (
    '0:1 1:1 2:1 3:1 4:1 6:1 7:1 8:1 9:2 10:32764 11:1 12:1 14:1 15:2 16:1 21:1 22:1 23:1 24:1 25:4096 26:1 ' +
    '30:1 31:32 32:1 33:1 34:1 35:1 36:1 37:1 39:14 40:1 41:1 47:1 50:1 51:1 54:1 55:1 56:1 59:1 61:1 66:1024 ' +
    '70:1 72:1 74:7 76:1 77:1 81:1 82:1 89:1 95:1 97:1 98:1 100:1 105:1 116:1 121:1 122:1 127:1 128:4096 129:15 ' +
    '136:1 143:14 153:1 159:1 162:1 164:1 168:3 173:1 182:1 183:1 184:1 185:1 187:1 188:1 189:1 190:1 ' +
    '192:1048576 195:2031619 197:1 200:1 201:4096 203:1 204:1 206:1 208:4096 209:1 213:1535 215:1 218:1 ' +
    '220:1 223:1048576 226:1 231:1 232:1 234:1 235:1 237:1 238:1 244:3'
  )
    .split(' ')
    .map((kv) => kv.split(':').map(Number) as [number, number]),
);

/** Where the VM fd answers differently from the system fd on the probe machine. */
const PROBED_VM_CAP_OVERRIDES: ReadonlyMap<number, number> = new Map([
  // 129 = KVM_CAP_X86_DISABLE_EXITS: the VM fd leaves out the exits this VM cannot disable (probe).
  [129, 11],
]);

/**
 * `KVM_CHECK_EXTENSION` on the system fd (`vm` undefined) or on a VM fd of type `vm`, for a kernel
 * built with `config`.
 */
export function checkExtension(cap: bigint, config: SimKernelConfig, vm?: SimVmType): number {
  if (cap > 0xffff_ffffn) return 0;
  const c = Number(cap);
  switch (c) {
    case KVM_CAP_VM_TYPES: {
      let bitmap = 0;
      for (const t of SIM_VM_TYPES.keys()) if (offeredVmType(config, t)) bitmap |= 1 << t;
      return bitmap;
    }
    case KVM_CAP_GUEST_MEMFD_FLAGS:
      return Number(vm ? vm.guestMemfdFlags : SYSTEM_GUEST_MEMFD_FLAGS);
    case KVM_CAP_MEMORY_ATTRIBUTES:
      // Why: not compiled in → 0 everywhere (probe machine). Compiled in, kvm_supported_mem_attributes
      // answers PRIVATE for `!kvm` (the system fd) and for private-memory VMs, 0 for a default VM (§1.3).
      if (!config.swProtectedVm) return 0;
      return Number(vm ? vm.memoryAttributes : KVM_MEMORY_ATTRIBUTE_PRIVATE);
  }
  return (vm && PROBED_VM_CAP_OVERRIDES.get(c)) ?? PROBED_CAPS.get(c) ?? 0;
}
