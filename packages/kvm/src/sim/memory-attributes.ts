/**
 * `KVM_SET_MEMORY_ATTRIBUTES` (`kvm_vm_ioctl_set_mem_attributes`, research §1.4): the VM's
 * per-gfn PRIVATE attribute, checks in the kernel's order.
 */
import { PAGE_SIZE } from '@guestmem/core';
import type { MemoryAttributesArgs } from '../api.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../uapi/constants.js';
import { decodeKvmMemoryAttributes, encodeKvmMemoryAttributes } from '../uapi/structs.js';
import { sysErr } from './errors.js';
import type { SimVmState } from './vm-state.js';

const PAGE_MASK = BigInt(PAGE_SIZE) - 1n;
const U64_LIMIT = 1n << 64n;
const SYSCALL = 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)';

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
  if (!vm.kernel.config.swProtectedVm) {
    // Not compiled in: kvm_vm_ioctl falls through to the arch ioctl, which does not know it (S11/S11b).
    throw sysErr('ENOTTY', 'setMemoryAttributes', SYSCALL, 'CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is off', { ...attrs });
  }
  const fail = (check: string, detail: string) => sysErr('EINVAL', 'setMemoryAttributes', SYSCALL, detail, { ...attrs, check });
  // Why: the §1.4 order — flags, unsupported attributes, size 0 / wrap, then alignment. A default
  // VM supports no attribute, so PRIVATE is EINVAL there even with the config on.
  if (a.flags !== 0n) throw fail('flags', `flags 0x${a.flags.toString(16)} must be 0`);
  if (a.attributes & ~vm.vmType.memoryAttributes) throw fail('attributes', `attributes 0x${a.attributes.toString(16)} are not supported by VM type ${vm.vmType.type}`);
  if (a.size === 0n || a.address + a.size >= U64_LIMIT) throw fail('range', 'size is 0 or address + size wraps');
  if ((a.address | a.size) & PAGE_MASK) throw fail('alignment', 'address and size must be page-aligned');
  const first = Number(a.address >> 12n);
  const end = Number((a.address + a.size) >> 12n);
  const priv = (a.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n;
  // Why: kvm_vm_set_mem_attributes returns 0 early when the range already has these attributes.
  if (vm.attributes.isUniform(first, end, priv)) return;
  for (const slot of vm.slots.values()) slot.zapGfns(BigInt(first), BigInt(end));
  vm.attributes.set(first, end, priv);
}
