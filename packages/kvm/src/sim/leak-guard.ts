/**
 * The simulated kernel's garbage-collection safety net (core's `guardLeak`), mirroring the native
 * driver's (`native/leak-guard.ts`): a handle dropped without `close()`/`munmap()` is released when
 * collected, with one warning per collection.
 *
 * What is reachable: the handle object (`SimKvm`, `SimKvmVm`, `SimGuestMemfd`, `SimVcpu`, a mapping).
 * Its fd number stays open exactly as long as the handle is reachable or until `close()`. An fd
 * number kept only as a number (for a raw `guestMemfd` field, say) does not keep the file open:
 * once its handle is collected the number is closed, and may be reused, as it is on the native
 * driver — the kernel's own fd-table rule. Keep the handle for as long as you use its fd.
 *
 * Never released while in use:
 * - a mapping a memslot made through the safe API references is held by that slot, so it is never
 *   collected while the slot lives;
 * - a collected mapping whose address range a raw (`unsafeSetUserMemoryRegion`) slot still points
 *   into gives its memory back but keeps the range reserved as an inaccessible placeholder (the
 *   guest faults there) until no live slot points into it, so the address is never reused under a
 *   live slot;
 * - a guest_memfd file lives while any fd or mapping refers to it, and a VM while any fd or file
 *   pins it (core's reference counts, as in the kernel).
 *
 * Once a VM has no reachable VM or vCPU handle left, no guest can run on it again: the safety net
 * then drops its slots' references to their mappings (the native driver stops pinning those ranges
 * at the same point), so a graph of dropped handles is released as a whole.
 */
import { guardLeak, unguard, type HostMapping } from '@guestmem/core';
import type { SimFdKind } from './fd-table.js';
import type { SimGmemFile } from './guest-memfd.js';
import type { SimKernel } from './kernel.js';
import type { SimVmState } from './vm-state.js';

const FD_NAMES: Record<SimFdKind, string> = {
  stdio: 'stdio',
  kvm: '/dev/kvm',
  vm: 'VM',
  gmem: 'guest_memfd',
  vcpu: 'vCPU',
  memfd: 'memfd',
  devnull: '/dev/null',
};

/** Guards the fd of a simulated handle: closed (with the reference it holds dropped) if `owner` is collected first. */
export function guardSimFd(owner: object, kernel: SimKernel, fd: number): void {
  const entry = kernel.fds.get(fd);
  if (!entry) return;
  guardLeak(owner, {
    kind: `kvm-sim ${FD_NAMES[entry.kind]} fd`,
    what: `kvm-sim ${FD_NAMES[entry.kind]} fd ${fd}`,
    release: () => {
      if (kernel.fds.get(fd) !== entry) return;
      kernel.fds.remove(fd);
      // What each handle's onClose() does for its kind (keep in step with the handle classes).
      if (entry.kind === 'gmem') (entry.file as SimGmemFile).core.release();
      else if (entry.kind === 'vm' || entry.kind === 'vcpu') {
        const vm = entry.file as SimVmState;
        vm.put();
        if (!vm.destroyed && !kernel.fds.list().some((n) => kernel.fds.get(n)?.file === vm)) {
          for (const slot of vm.slots.values()) slot.releaseHostMapping();
        }
      }
    },
  });
}

/** True while a live slot of `kernel` points into `[start, end)` by its `userspace_addr`. */
function slotPointsInto(kernel: SimKernel, start: bigint, end: bigint): boolean {
  for (const vm of kernel.vms) {
    for (const s of vm.slots.values()) {
      if (s.userspaceAddr !== 0n && s.userspaceAddr < end && start < s.userspaceAddr + BigInt(s.npages) * 4096n) return true;
    }
  }
  return false;
}

/** Guards a simulated mapping: its memory released and its range freed (see above) if `owner` is collected before munmap(). */
export function guardSimMapping(owner: object, kernel: SimKernel, host: HostMapping, address: bigint, length: number, what: string): void {
  const end = address + BigInt(host.length);
  guardLeak(owner, {
    kind: `kvm-sim ${what}`,
    what: `kvm-sim ${what} at 0x${address.toString(16)} (${length} bytes)`,
    release: () => {
      host.unmap();
      kernel.addressSpace.releaseCollected(address, () => slotPointsInto(kernel, address, end));
    },
  });
}

export { unguard };
