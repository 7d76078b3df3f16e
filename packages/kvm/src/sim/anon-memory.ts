/**
 * Anonymous host memory in the simulated process: `mmap(NULL, len, PROT_READ|PROT_WRITE,
 * MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`, the "normal" guest RAM every VMM has (QEMU, Cloud Hypervisor,
 * the kernel selftests' `VM_MEM_SRC_ANONYMOUS`).
 *
 * Why it exists: on a private-memory VM (`KVM_X86_SW_PROTECTED_VM`) guest_memfd cannot be
 * INIT_SHARED, so every host fault on it is SIGBUS (research §2.5) and the *shared* side of a gmem
 * slot must come from other host memory at `userspace_addr` (research §1.4 REGION2: "a valid
 * guest_memfd (private memory) and userspace_addr (shared memory)"). This object is that memory.
 *
 * Sim-only: it is not part of the shared `api.ts` interfaces because the native driver does not
 * offer it yet (a plain anonymous `mmap` through koffi would be the native counterpart).
 */
import { GuestMemFile, HostMapping, PAGE_SIZE_N } from '@guestmem/core';
import type { IntArg } from '../api.js';
import { u64 } from '../uapi/codec-util.js';
import { MADV_DONTNEED, MADV_REMOVE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import type { SimKernel } from './kernel.js';
import { SimMappingBase } from './mapping-base.js';

const PAGE_MASK = PAGE_SIZE_N - 1n;

/**
 * One anonymous private mapping. Pages are created and zeroed on first touch and accounted in the
 * kernel's folio allocator (so leak checks see them); `madvise(MADV_DONTNEED)` frees them and the
 * range reads zero again; {@link markPoisoned} injects a memory failure (host access then SIGBUS).
 */
export class SimAnonMapping extends SimMappingBase {
  /** The pages behind the mapping (anonymous memory has no file; core's file is its page store). */
  private readonly store: GuestMemFile<never>;

  constructor(kernel: SimKernel, address: bigint, length: number) {
    const size = (BigInt(length) + PAGE_MASK) & ~PAGE_MASK;
    const store = GuestMemFile.create<never>(size, 0n, { backend: SIM_BACKEND }, { allocator: kernel.allocator });
    super(kernel, new HostMapping(store, { length }), address, length, 0n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    this.store = store;
    // The mapping's own reference is the only one: drop the creation reference.
    store.release();
  }

  /**
   * `madvise(address + offset, len, advice)`. Supported: `MADV_DONTNEED` (frees the pages; the next
   * touch sees fresh zero pages, as for any private anonymous mapping). `MADV_REMOVE` is EINVAL on
   * a private mapping (it needs a shared, writable file mapping); other advice values are EINVAL here.
   * `offset` must be page-aligned (EINVAL); the range must lie inside the mapping (ENOMEM).
   */
  madvise(offset: IntArg, len: IntArg, advice: number): void {
    const off = u64('offset', offset);
    const ln = u64('len', len);
    const fail = (code: 'EINVAL' | 'ENOMEM', detail: string) => sysErr(code, 'madvise', 'madvise', detail, { offset, len, advice });
    if (this.unmapped) throw fail('ENOMEM', 'the mapping was unmapped');
    if (off & PAGE_MASK) throw fail('EINVAL', 'address is not page-aligned');
    const end = (off + ln + PAGE_MASK) & ~PAGE_MASK;
    if (end > this.store.size) throw fail('ENOMEM', 'range is not fully mapped');
    if (advice === MADV_REMOVE) throw fail('EINVAL', 'MADV_REMOVE needs a shared mapping');
    if (advice !== MADV_DONTNEED) throw fail('EINVAL', `advice ${advice} is not modelled`);
    if (end > off) this.store.punchHole(off, end - off);
  }

  /**
   * Sim-only memory-failure injection (`MADV_HWPOISON` on this page): the page at `offset` becomes
   * poisoned; host access to it then fails with SIGBUS (a {@link HostAccessFault}), and a guest
   * access through a memslot whose `userspace_addr` covers it fails the same way (KVM sends the
   * vCPU thread SIGBUS for a hwpoisoned hva, `kvm_send_hwpoison_signal`).
   */
  markPoisoned(offset: IntArg): void {
    const off = u64('offset', offset);
    if (this.unmapped || off >= this.store.size) {
      throw sysErr('EFAULT', 'markPoisoned', undefined, `offset ${off} is outside the mapping`, { offset });
    }
    this.store.markPoisoned(Number(off >> 12n));
  }

  /** True when the page at `offset` was poisoned by {@link markPoisoned}. */
  isPoisoned(offset: IntArg): boolean {
    const index = Number(u64('offset', offset) >> 12n);
    return index < this.store.pages && this.store.isPoisoned(index);
  }

  /** True when the page at `offset` is backed (touched and not discarded). */
  isPresent(offset: IntArg): boolean {
    return this.store.isPresent(Number(u64('offset', offset) >> 12n));
  }
}
