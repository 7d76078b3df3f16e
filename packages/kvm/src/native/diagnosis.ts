/**
 * The native driver's diagnosis of a refused VM ioctl (memslots, guest_memfd creation, memory attributes): the kernel answers only an errno, so the
 * driver judges the request with the simulator's rules (`sim/memslot-rules.ts`) against its record
 * of what it created (`records.ts`) and names the first rule that gives the kernel's errno. It is
 * marked as guestmem's diagnosis (`info.diagnosis.by === 'guestmem'`); the errno stays the kernel's.
 * It is a most-likely rule, not a certainty: the record cannot see fds or slots made by other code.
 */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { release } from 'node:os';
import type { GuestMemErrorCode } from '@guestmem/core';
import { judgeMemoryRegion, judgeV1Flags, type MemslotRefusal, type MemslotRule, type MemslotWorld } from '../sim/memslot-rules.js';
import { SIM_VM_TYPES } from '../sim/vm-types.js';
import { judgeCreateGuestMemfd, type GuestMemfdCreateRefusal, type GuestMemfdCreateRule } from '../sim/guest-memfd-rules.js';
import { judgeMemoryAttributes, type MemoryAttributesRefusal, type MemoryAttributesRule } from '../sim/memory-attributes.js';
import type { KvmUserspaceMemoryRegion2Decoded } from '../uapi/structs.js';
import { gmemFds, type NativeVmRecord } from './records.js';

/** What `info.diagnosis` of a refused native call holds. */
export interface NativeDiagnosis {
  /** The rule, named as the simulated kernel names it. */
  readonly rule: MemslotRule | GuestMemfdCreateRule | MemoryAttributesRule;
  /** The simulator's description of the broken rule. */
  readonly detail: string;
  /** Always `'guestmem'`: this is the library's reading, not the kernel's. */
  readonly by: 'guestmem';
}

let maxGpaBits: number | undefined;

/**
 * `kvm_mmu_max_gfn()`'s bit count on this host: `tdp_enabled ? kvm_host.maxphyaddr : 52` (arch/x86/kvm/mmu.h).
 * TDP is on when the vendor module runs EPT (`kvm_intel.ept`) or NPT (`kvm_amd.npt`); the probe
 * machine's vendor module is `kvm_pvm` (shadow paging, `kvm.tdp_mmu=N`), so 52 although its CPUID
 * reports 48 physical bits (probed: a slot ending at 2^52 is accepted). With TDP, MAXPHYADDR is read
 * from `/proc/cpuinfo` "address sizes" (inference: the kernel takes CPUID 0x80000008, which cpuinfo
 * may report reduced by SME/MKTME key bits).
 */
export function hostMaxGpaBits(): number {
  if (maxGpaBits !== undefined) return maxGpaBits;
  const on = (path: string) => {
    try {
      return /^(Y|1)/.test(readFileSync(path, 'utf8'));
    } catch {
      return false;
    }
  };
  const tdp = on('/sys/module/kvm_intel/parameters/ept') || on('/sys/module/kvm_amd/parameters/npt');
  let bits = 52;
  if (tdp) {
    const m = /address sizes\s*:\s*(\d+) bits physical/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) bits = Number(m[1]);
  }
  return (maxGpaBits = bits);
}

/** Kernels up to 6.18 check the REGION2 offset against EOF in signed loff_t (docs/kvm-guest-memfd.md §2.6 E1). */
function signedEofCheck(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major < 6 || (major === 6 && minor <= 18);
}

function worldOf(vm: NativeVmRecord): MemslotWorld {
  return {
    readonlyMem: SIM_VM_TYPES.get(vm.type)?.readonlyMem ?? true,
    maxGfn: (1n << BigInt(hostMaxGpaBits() - 12)) - 1n,
    signedEofCheck: signedEofCheck(),
    slot: (id) => vm.slots.get(id),
    slots: () => vm.slots.values(),
    fd: (fd) => {
      const file = gmemFds.get(fd);
      if (file) return { kind: 'gmem', file: { size: file.size, sameVm: file.vm === vm, boundSlotIn: (a, b) => file.boundSlotIn(a, b) } };
      const path = `/proc/self/fd/${fd}`;
      if (!existsSync(path)) return undefined;
      try {
        return { kind: readlinkSync(path) };
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * The most likely rule behind the kernel's refusal `code` of a memslot ioctl (`v1` for
 * KVM_SET_USER_MEMORY_REGION), or undefined when no rule of the simulator gives that errno here.
 */
export function diagnoseMemoryRegion(
  code: GuestMemErrorCode,
  vm: NativeVmRecord,
  r: KvmUserspaceMemoryRegion2Decoded,
  v1: boolean,
): NativeDiagnosis | undefined {
  let refusal: MemslotRefusal | undefined = v1 ? judgeV1Flags(r.flags) : undefined;
  if (!refusal) {
    const verdict = judgeMemoryRegion(worldOf(vm), r);
    if ('rule' in verdict) refusal = verdict;
  }
  return refusal && refusal.code === code ? { rule: refusal.rule, detail: refusal.detail, by: 'guestmem' } : undefined;
}

const diagnosed = (
  refusal: GuestMemfdCreateRefusal | MemoryAttributesRefusal | undefined,
  code: GuestMemErrorCode,
): NativeDiagnosis | undefined =>
  refusal && refusal.code === code ? { rule: refusal.rule, detail: refusal.detail, by: 'guestmem' } : undefined;

/** `KVM_CREATE_GUEST_MEMFD` refused with `code`; `supportedFlags` is the VM's `KVM_CAP_GUEST_MEMFD_FLAGS` answer. */
export function diagnoseCreateGuestMemfd(
  code: GuestMemErrorCode,
  supportedFlags: bigint,
  size: bigint,
  flags: bigint,
): NativeDiagnosis | undefined {
  return diagnosed(judgeCreateGuestMemfd(supportedFlags, size, flags), code);
}

/**
 * `KVM_SET_MEMORY_ATTRIBUTES` refused with `code`: ENOTTY means the kernel lacks the ioctl;
 * `supportedAttributes` is the VM's `KVM_CAP_MEMORY_ATTRIBUTES` answer.
 */
export function diagnoseMemoryAttributes(
  code: GuestMemErrorCode,
  supportedAttributes: bigint,
  a: { readonly address: bigint; readonly size: bigint; readonly attributes: bigint; readonly flags: bigint },
): NativeDiagnosis | undefined {
  return diagnosed(judgeMemoryAttributes(code !== 'ENOTTY', supportedAttributes, a), code);
}
