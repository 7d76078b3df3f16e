/**
 * Differential scenarios for the kernel rules past the first pages (issue "KVM fidelity"): the MMU's
 * highest guest frame, host access over whole pages with the kernel's signal precedence, the mmap
 * flag policy, vCPU lifetimes, and the owned-mapping rules of the safe memslot API. Each one runs
 * on the real kernel and on the sim like every entry of `scenarios.ts`.
 */
import type { KvmGuestMemfd, KvmVm } from '../api.js';
import { KVM_MEM_GUEST_MEMFD as GMEM, KVM_MEM_LOG_DIRTY_PAGES as LOG_DIRTY } from '../uapi/constants.js';
import type { Scenario, Session } from './trace.js';

const K4 = 4096;
const K16 = 16384;
const BOTH = 3n;
/** The probe machine's `kvm_mmu_max_gfn()` + 1, as a GPA: shadow MMU → 52 bits (see SimKernelOptions.maxGpaBits). */
const GPA_LIMIT = 1n << 52n;

const table: Array<[string, (s: Session) => void]> = [];
const add = (name: string, run: (s: Session) => void): void => void table.push([name, run]);

type Body = (s: Session, vm: KvmVm, g: KvmGuestMemfd) => void;
const withFile = (size: number, body: Body) => (s: Session) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size, flags: BOTH });
  if (vm && g) body(s, vm, g);
};

// ------------------------------------------------------------------ highest guest frame (kvm_mmu_max_gfn)
add('max gfn: a gmem slot whose last page is 2^52 - 4096 is accepted; one page higher is EINVAL', withFile(K16, (s, vm, g) => {
  s.region2(vm, { slot: 0, guestPhysAddr: GPA_LIMIT - 4096n, memorySize: K4, guestMemfd: g.fd }, 'last page 2^52-4096');
  s.region2(vm, { slot: 1, guestPhysAddr: GPA_LIMIT, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: K4 }, 'first page 2^52');
  s.region2(vm, { slot: 2, guestPhysAddr: GPA_LIMIT - 4096n, memorySize: 2 * K4, guestMemfd: g.fd, guestMemfdOffset: 2 * K4 }, 'straddles 2^52 (overlaps slot 0: EEXIST first)');
}));
add('max gfn: straddling 2^52 without an overlap is EINVAL', withFile(K16, (s, vm, g) => {
  s.region2(vm, { slot: 2, guestPhysAddr: GPA_LIMIT - 4096n, memorySize: 2 * K4, guestMemfd: g.fd }, 'straddles 2^52');
  s.region2(vm, { slot: 3, guestPhysAddr: GPA_LIMIT - 8192n, memorySize: 2 * K4, guestMemfd: g.fd }, 'ends at 2^52: ok');
}));
add('max gfn: plain REGION2 and v1 slots at 2^52, 2^60, 2^63 are EINVAL', (s) => {
  const vm = s.vm();
  if (!vm) return;
  for (const gpa of [GPA_LIMIT, 1n << 60n, 1n << 63n, (1n << 64n) - 2n * 4096n]) {
    s.region2(vm, { slot: 1, flags: 0, guestPhysAddr: gpa, memorySize: K4 }, `region2 at 0x${gpa.toString(16)}`);
    s.run(`region1 at 0x${gpa.toString(16)}`, () => vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: gpa, memorySize: K4, userspaceAddr: 0 }));
  }
  s.region2(vm, { slot: 1, flags: 0, memorySize: 0 }, 'slot 1 was never created: delete is EINVAL');
});
add('max gfn: a refused gmem slot leaves its guest_memfd range free (the bind is undone)', withFile(K16, (s, vm, g) => {
  s.region2(vm, { slot: 1, guestPhysAddr: GPA_LIMIT, memorySize: K16, guestMemfd: g.fd }, 'above the max frame: EINVAL');
  s.region2(vm, { slot: 2, guestPhysAddr: 0, memorySize: K16, guestMemfd: g.fd }, 'same file range, valid GPA: ok');
  s.region2(vm, { slot: 1, flags: 0, memorySize: 0 }, 'slot 1 does not exist');
  s.region2(vm, { slot: 3, guestPhysAddr: GPA_LIMIT, memorySize: K4, guestMemfd: g.fd }, 'overlapping file range above the max frame');
}));
add('max gfn: moving a slot above the max frame is EINVAL and the slot stays', (s) => {
  const vm = s.vm();
  if (!vm) return;
  s.region2(vm, { slot: 4, flags: 0, guestPhysAddr: 0x100000, memorySize: K16 }, 'create at 1 MiB');
  s.region2(vm, { slot: 4, flags: 0, guestPhysAddr: GPA_LIMIT, memorySize: K16 }, 'move to 2^52: EINVAL');
  s.region2(vm, { slot: 5, flags: 0, guestPhysAddr: 0x100000, memorySize: K4 }, 'old range still taken: EEXIST');
  s.region2(vm, { slot: 4, flags: 0, guestPhysAddr: GPA_LIMIT - BigInt(K16), memorySize: K16 }, 'move to the top: ok');
  s.region2(vm, { slot: 4, flags: LOG_DIRTY, guestPhysAddr: GPA_LIMIT - BigInt(K16), memorySize: K16 }, 'flags-only at the top: ok');
  s.region2(vm, { slot: 5, flags: 0, guestPhysAddr: 0x100000, memorySize: K4 }, 'old range free again');
});
add('max gfn: GMEM with a bad fd above the max frame is EBADF (the bind comes first)', (s) => {
  const vm = s.vm();
  if (vm) s.region2(vm, { slot: 1, flags: GMEM, guestPhysAddr: GPA_LIMIT, memorySize: K4, guestMemfd: 1000 });
});

/** The fidelity scenarios, in a stable order. */
export const FIDELITY_SCENARIOS: readonly Scenario[] = table.map(([name, run]) => ({ name, run }));
