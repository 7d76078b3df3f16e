/**
 * `KVM_SET_MEMORY_ATTRIBUTES` (`kvm_vm_ioctl_set_mem_attributes`, docs/kvm-guest-memfd.md §1.4): the VM's
 * per-gfn PRIVATE attribute, checks in the kernel's order.
 */
import type { GuestMemErrorCode } from '@guestmem/core';
import type { MemoryAttributesArgs } from '../api.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../uapi/constants.js';
import { decodeKvmMemoryAttributes, encodeKvmMemoryAttributes } from './codecs.js';
import { sysErr } from './errors.js';
import type { SimVmState } from './vm-state.js';

const SYSCALL = 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)';
const PAGE_MASK = 4095n;
const U64_LIMIT = 1n << 64n;

/** The rules of `KVM_SET_MEMORY_ATTRIBUTES`. */
export type MemoryAttributesRule =
  | 'memory-attributes-not-built'
  | 'memory-attributes-flags'
  | 'memory-attributes-unsupported'
  | 'memory-attributes-range'
  | 'memory-attributes-alignment';

export interface MemoryAttributesRefusal {
  readonly rule: MemoryAttributesRule;
  readonly code: Extract<GuestMemErrorCode, 'EINVAL' | 'ENOTTY'>;
  readonly detail: string;
}

/**
 * The checks of `kvm_vm_ioctl_set_mem_attributes` as a pure judgement, in the kernel's order: ENOTTY
 * when the kernel lacks `CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES`; then flags, unsupported attributes,
 * size 0 / wrap, alignment (§1.4). The native driver names the same rules in its diagnosis.
 */
export function judgeMemoryAttributes(
  built: boolean,
  supportedAttributes: bigint,
  a: { readonly address: bigint; readonly size: bigint; readonly attributes: bigint; readonly flags: bigint },
): MemoryAttributesRefusal | undefined {
  if (!built) return { rule: 'memory-attributes-not-built', code: 'ENOTTY', detail: 'CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is off' };
  if (a.flags !== 0n) return { rule: 'memory-attributes-flags', code: 'EINVAL', detail: `flags 0x${a.flags.toString(16)} must be 0` };
  if (a.attributes & ~supportedAttributes) {
    return {
      rule: 'memory-attributes-unsupported',
      code: 'EINVAL',
      detail: `attributes 0x${a.attributes.toString(16)} are not supported by this VM`,
    };
  }
  if (a.size === 0n || a.address + a.size >= U64_LIMIT)
    return { rule: 'memory-attributes-range', code: 'EINVAL', detail: 'size is 0 or address + size wraps' };
  if ((a.address | a.size) & PAGE_MASK)
    return { rule: 'memory-attributes-alignment', code: 'EINVAL', detail: 'address and size must be page-aligned' };
  return undefined;
}

/**
 * Each EINVAL names the failed check in `info.check` (`'flags' | 'attributes' | 'range' | 'alignment'`).
 * ENOTTY when the kernel is built without memory attributes (the probe machine;
 * `SimKernelOptions.swProtectedVm: false`). A range already holding the attributes returns 0 and
 * changes nothing; a change zaps the range's guest mappings first
 * (`kvm_arch_pre_set_memory_attributes` → `kvm_unmap_gfn_range`). Attributes belong to the VM, not
 * to memslots: they survive slot deletion.
 */
export function setMemoryAttributes(vm: SimVmState, attrs: MemoryAttributesArgs): void {
  const a = decodeKvmMemoryAttributes(encodeKvmMemoryAttributes(attrs));
  // Why: the §1.4 order — not built (ENOTTY: kvm_vm_ioctl falls through to the arch ioctl, S11/S11b),
  // flags, unsupported attributes, size 0 / wrap, then alignment. A default VM supports no attribute,
  // so PRIVATE is EINVAL there even with the config on.
  const refusal = judgeMemoryAttributes(vm.kernel.config.swProtectedVm, vm.vmType.memoryAttributes, a);
  if (refusal) {
    const check =
      refusal.rule === 'memory-attributes-not-built'
        ? undefined
        : refusal.rule.slice('memory-attributes-'.length).replace('unsupported', 'attributes');
    throw sysErr(refusal.code, 'setMemoryAttributes', SYSCALL, refusal.detail, {
      ...attrs,
      rule: refusal.rule,
      ...(check ? { check } : {}),
    });
  }
  const first = Number(a.address >> 12n);
  const end = Number((a.address + a.size) >> 12n);
  const priv = (a.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n;
  // Why: kvm_vm_set_mem_attributes returns 0 early when the range already has these attributes.
  if (vm.attributes.isUniform(first, end, priv)) return;
  for (const slot of vm.slots.values()) slot.zapGfns(BigInt(first), BigInt(end));
  vm.attributes.set(first, end, priv);
}
