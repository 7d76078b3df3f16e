/**
 * `KVM_SET_USER_MEMORY_REGION(2)` on the simulated VM: the judgement of `memslot-rules.ts` (every
 * check, in the kernel's order), then the change — memslot creation, move, flags change or deletion,
 * and the guest_memfd bind (docs/kvm-guest-memfd.md §2.6). Each refusal names its rule in `info.rule`.
 */
import { GUEST_MEMFD_FLAG_MMAP } from '../uapi/constants.js';
import type { KvmUserspaceMemoryRegion2Decoded } from '../uapi/structs.js';
import type { SlotReferencedMapping } from '../slot-memory.js';
import { sysErr } from './errors.js';
import type { SimGmemFile } from './guest-memfd.js';
import { SimMemslot } from './memslot.js';
import { judgeMemoryRegion, type MemslotWorld } from './memslot-rules.js';
import type { SimVmState } from './vm-state.js';

/** The simulated VM as the rules see it. */
function worldOf(vm: SimVmState): MemslotWorld {
  return {
    readonlyMem: vm.vmType.readonlyMem,
    maxGfn: vm.kernel.maxGfn,
    signedEofCheck: vm.kernel.profile === '6.18',
    slot: (id) => vm.slots.get(id),
    slots: () => vm.slots.values(),
    fd: (fd) => {
      const entry = vm.kernel.fds.get(fd);
      if (!entry) return undefined;
      if (entry.kind !== 'gmem') return { kind: entry.kind };
      const file = entry.file as SimGmemFile;
      return {
        kind: 'gmem',
        file: { size: file.core.size, sameVm: file.vm === vm, boundSlotIn: (first, end) => file.findBinding(first, end)?.id },
      };
    },
  };
}

/**
 * Applies one REGION/REGION2 request. `hostMapping` is the owned mapping behind `userspace_addr`
 * (safe API): a created slot pins it; a moved, flags-changed or identically re-issued slot keeps its
 * pin (the kernel refuses a different `userspace_addr`), or takes one if it had none (it was made
 * through the unsafe API at the mapping's address); a deleted slot releases it.
 */
export function setMemoryRegion(
  vm: SimVmState,
  r: KvmUserspaceMemoryRegion2Decoded,
  op: string,
  syscall: string,
  args: object,
  hostMapping?: SlotReferencedMapping,
): void {
  const verdict = judgeMemoryRegion(worldOf(vm), r);
  if ('rule' in verdict) throw sysErr(verdict.code, op, syscall, verdict.detail, { ...args, rule: verdict.rule });
  const old = vm.slots.get(verdict.id);
  if (verdict.change === 'none') {
    // Why: an identical re-issue through the safe API names the owned mapping of a slot made through
    // the unsafe one (same userspace_addr): from now on the slot references it, and pins it, as
    // after a move or flags change (the native driver's record does the same).
    if (old && !old.hostMapping && hostMapping) {
      hostMapping.pinForSlot();
      old.hostMapping = hostMapping;
    }
    return;
  }
  if (verdict.change === 'delete') {
    // kvm_invalidate_memslot zaps the slot's SPTEs; kvm_free_memslot unbinds. Data stays (B47/B48).
    old!.zapAll();
    old!.unbind();
    old!.releaseHostMapping();
    vm.slots.delete(verdict.id);
    return;
  }
  const slot = new SimMemslot(verdict.id, r.flags, verdict.baseGfn, verdict.npages, r.userspaceAddr);
  if (verdict.gmem) {
    // kvm_gmem_bind: the file's pages [first, end) now belong to this slot.
    const file = vm.kernel.fds.get(verdict.gmem.fd)!.file as SimGmemFile;
    file.bind(slot, verdict.gmem.first, verdict.gmem.end);
    slot.gmem = { file, pgoff: verdict.gmem.first };
    slot.gmemOnly = (file.core.flags & GUEST_MEMFD_FLAG_MMAP) !== 0n;
  }
  if (old) {
    // kvm_set_memslot: MOVE drops the old slot's mappings; FLAGS_ONLY keeps the data. The host
    // mapping is the same range (userspace_addr cannot change): its pin moves to the new slot.
    old.zapAll();
    slot.hostMapping = old.hostMapping;
  }
  if (!slot.hostMapping && hostMapping) {
    hostMapping.pinForSlot();
    slot.hostMapping = hostMapping;
  }
  vm.slots.set(verdict.id, slot);
}
