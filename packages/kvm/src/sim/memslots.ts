/**
 * `KVM_SET_USER_MEMORY_REGION(2)`: memslot creation, move, flags change and deletion, and the
 * guest_memfd bind (`kvm_vm_ioctl_set_memory_region` + `kvm_set_memory_region` + `kvm_gmem_bind`,
 * research §2.6). Every check is here, in the kernel's order; each refusal names its rule.
 */
import { PAGE_SIZE, type GuestMemError } from '@guestmem/core';
import {
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_USER_MEM_SLOTS,
} from '../uapi/constants.js';
import type { KvmUserspaceMemoryRegion2Decoded } from '../uapi/structs.js';
import { TASK_SIZE } from './address-space.js';
import { sysErr } from './errors.js';
import type { SimGmemFile } from './guest-memfd.js';
import { SimMemslot } from './memslot.js';
import type { SimVmState } from './vm-state.js';

const PAGE = BigInt(PAGE_SIZE);
const PAGE_MASK = PAGE - 1n;
const U64_LIMIT = 1n << 64n;
/** `KVM_MEM_MAX_NR_PAGES` on x86: slot sizes are indexed with an unsigned int in dirty bitmaps. */
const KVM_MEM_MAX_NR_PAGES = 2n ** 31n - 1n;
/** Address spaces of the probe machine: no SMM, so only AS 0 (research §0.2, B40/B41). */
const NR_ADDRESS_SPACES = 1;

/**
 * `kvm_vm_ioctl_set_memory_region` + `kvm_set_memory_region` + `kvm_gmem_bind`, with the checks in
 * the kernel's order (research §2.6 steps 3–12).
 */
export function setMemoryRegion(vm: SimVmState, r: KvmUserspaceMemoryRegion2Decoded, op: string, syscall: string, args: object): void {
  const fail = (code: 'EINVAL' | 'EEXIST' | 'EBADF', detail: string) => sysErr(code, op, syscall, detail, { ...args });
  const asId = r.slot >>> 16;
  const id = r.slot & 0xffff;
  const size = r.memorySize;
  const gmem = (r.flags & KVM_MEM_GUEST_MEMFD) !== 0;
  // 3. (u16)slot >= KVM_USER_MEM_SLOTS (B38).
  if (id >= KVM_USER_MEM_SLOTS) throw fail('EINVAL', `slot id ${id} >= ${KVM_USER_MEM_SLOTS}`);
  // 4. check_memory_region_flags: GUEST_MEMFD drops LOG_DIRTY and never allows READONLY (B29–B31).
  let valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD;
  if (gmem) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
  else if (vm.vmType.readonlyMem) valid |= KVM_MEM_READONLY;
  if (r.flags & ~valid) throw fail('EINVAL', `invalid flags 0x${r.flags.toString(16)}`);
  // 5. alignment; userspace_addr must pass access_ok (end ≤ TASK_SIZE_MAX, probed), 0 is fine (B37).
  if (size & PAGE_MASK) throw fail('EINVAL', 'memory_size is not page-aligned');
  if (r.guestPhysAddr & PAGE_MASK) throw fail('EINVAL', 'guest_phys_addr is not page-aligned');
  if (r.userspaceAddr & PAGE_MASK || r.userspaceAddr + size > TASK_SIZE) {
    throw fail('EINVAL', 'userspace_addr is not page-aligned or not a user address range');
  }
  // 6. guest_memfd_offset alignment and u64 wrap (B13–B16).
  if (gmem && (r.guestMemfdOffset & PAGE_MASK || r.guestMemfdOffset + size >= U64_LIMIT)) {
    throw fail('EINVAL', 'guest_memfd_offset is not page-aligned or offset + size wraps');
  }
  // 7. address space, GPA wrap, slot size limit.
  if (asId >= NR_ADDRESS_SPACES) throw fail('EINVAL', `address space ${asId} does not exist`);
  if (r.guestPhysAddr + size >= U64_LIMIT) throw fail('EINVAL', 'guest_phys_addr + memory_size wraps');
  const npagesBig = size >> 12n;
  if (npagesBig > KVM_MEM_MAX_NR_PAGES) throw fail('EINVAL', 'memory_size exceeds KVM_MEM_MAX_NR_PAGES');
  const npages = Number(npagesBig);
  const baseGfn = r.guestPhysAddr >> 12n;
  const old = vm.slots.get(id);
  // 8. delete: flags, fd and offset are ignored (B44/B45); a missing slot is EINVAL (B22/B46).
  if (size === 0n) {
    if (!old) throw fail('EINVAL', `slot ${id} does not exist`);
    return deleteSlot(vm, old);
  }
  let change: 'create' | 'move' | 'flags';
  if (!old) {
    change = 'create';
  } else {
    // 9. Why: gmem slots are immutable — even an identical re-issue with GUEST_MEMFD is EINVAL (B2/B4).
    if (gmem) throw fail('EINVAL', `slot ${id} exists and GUEST_MEMFD slots cannot be modified`);
    if (r.userspaceAddr !== old.userspaceAddr || npages !== old.npages || (r.flags ^ old.flags) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD)) {
      throw fail('EINVAL', `slot ${id}: only the GPA and LOG_DIRTY_PAGES may change`);
    }
    if (baseGfn !== old.baseGfn) change = 'move';
    else if (r.flags !== old.flags) change = 'flags';
    else return; // nothing to change
  }
  // 10. Why: the GPA overlap check precedes any guest_memfd validation, so it wins even with a
  // bad fd (research §2.6 step 10, B8/B9/B33/B35; set_memory_region_test's EEXIST cases).
  if (change !== 'flags') {
    const end = baseGfn + npagesBig;
    for (const s of vm.slots.values()) {
      if (s.id !== id && s.baseGfn < end && baseGfn < s.endGfn) throw fail('EEXIST', `GPA range overlaps slot ${s.id}`);
    }
  }
  const slot = new SimMemslot(id, r.flags, baseGfn, npages, r.userspaceAddr);
  // 11. kvm_gmem_bind.
  if (gmem) bindGuestMemfd(vm, slot, r.guestMemfd, r.guestMemfdOffset, size, fail);
  // 12a. kvm_set_memslot → kvm_arch_prepare_memory_region: a new or moved slot's last frame must not
  // exceed kvm_mmu_max_gfn() (x86.c). Why here: the bind above already happened, so a refusal takes
  // the out_unbind path of kvm_set_memory_region (kvm_gmem_unbind) and the file range is free again.
  if (change !== 'flags' && baseGfn + npagesBig - 1n > vm.kernel.maxGfn) {
    if (gmem) slot.unbind();
    throw fail('EINVAL', `the slot's last frame 0x${(baseGfn + npagesBig - 1n).toString(16)} is above the MMU's highest frame 0x${vm.kernel.maxGfn.toString(16)}`);
  }
  // 12b. kvm_set_memslot: install (MOVE drops the old slot's mappings; FLAGS_ONLY keeps the data).
  if (old) old.zapAll();
  vm.slots.set(id, slot);
}

function bindGuestMemfd(
  vm: SimVmState,
  slot: SimMemslot,
  fd: number,
  offset: bigint,
  size: bigint,
  fail: (code: 'EINVAL' | 'EBADF', detail: string) => GuestMemError,
): void {
  const entry = vm.kernel.fds.get(fd);
  if (!entry) throw fail('EBADF', `fd ${fd} is not open`);
  if (entry.kind !== 'gmem') throw fail('EINVAL', `fd ${fd} is not a guest_memfd (${entry.kind})`);
  const file = entry.file as SimGmemFile;
  if (file.vm !== vm) throw fail('EINVAL', `fd ${fd} is a guest_memfd of another VM`);
  const fileSize = file.core.size;
  if (BigInt.asIntN(64, offset) < 0n) throw fail('EINVAL', 'guest_memfd_offset is negative as loff_t');
  if (vm.kernel.profile === '6.18') {
    // Why: 6.18 computes offset + size in signed loff_t, so 0x7ffffffffffff000 + 16 KiB wraps
    // negative and passes the EOF check (research §2.6 E1); the slot is then bound past EOF.
    if (BigInt.asIntN(64, offset + size) > fileSize) throw fail('EINVAL', 'offset + size is past EOF');
  } else if (offset + size > fileSize) {
    throw fail('EINVAL', 'offset + size is past EOF');
  }
  const first = Number(offset >> 12n);
  const end = first + slot.npages;
  // Why: an overlap of guest_memfd *ranges* is EINVAL (the GPA overlap above is EEXIST) (B5/B6).
  const clash = file.findBinding(first, end);
  if (clash) throw fail('EINVAL', `guest_memfd pages [${first}, ${end}) are already bound to slot ${clash.id}`);
  file.bind(slot, first, end);
  slot.gmem = { file, pgoff: first };
  slot.gmemOnly = (file.core.flags & GUEST_MEMFD_FLAG_MMAP) !== 0n;
}

function deleteSlot(vm: SimVmState, slot: SimMemslot): void {
  // kvm_invalidate_memslot zaps the slot's SPTEs; kvm_free_memslot unbinds. Data stays (B47/B48).
  slot.zapAll();
  slot.unbind();
  vm.slots.delete(slot.id);
}
