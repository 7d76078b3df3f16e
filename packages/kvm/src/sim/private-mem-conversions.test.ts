/**
 * Port of the kernel selftest `x86/private_mem_conversions_test.c` (docs/kvm-guest-memfd.md §3.3) to the simulated
 * kernel, which offers `KVM_X86_SW_PROTECTED_VM` where the probe machine does not.
 *
 * How the C test maps onto this file:
 * - The guest code is a generator per vCPU. Its memory accesses are simulated vCPU accesses
 *   (`SimKvmVm.guestAccess`); on a SW_PROTECTED VM the kernel decides private vs shared from the
 *   gfn's attribute, exactly as it does for the real guest's plain loads and stores.
 * - Each `yield` is a VM exit: `KVM_EXIT_HYPERCALL` for `KVM_HC_MAP_GPA_RANGE` (handled by the host's
 *   conversion handler, `handle_exit_hypercall`) or a ucall `SYNC` (the host checks and writes the
 *   shared memory through its own mapping, `addr_gpa2hva`). The host loop runs the vCPUs round-robin,
 *   one exit at a time, the way the C test's vCPU threads interleave.
 * - The backing is the C test's: one guest_memfd (flags 0) of `per_cpu_size × nr_vcpus`, split over
 *   `nr_memslots` GUEST_MEMFD slots at 4 GiB (slot 10+i), whose shared side is anonymous memory.
 * - Phases, ranges and patterns are the C test's: explicit conversion without and with fallocate,
 *   then the punch-hole test (all memory faulted in, then only the target range), then the
 *   guest_memfd outliving the VM.
 */
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  KVM_CAP_VM_TYPES,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEM_GUEST_MEMFD,
  KVM_X86_SW_PROTECTED_VM,
} from '../uapi/constants.js';
import type { SimAnonMapping } from './anon-memory.js';
import type { SimGuestMemfd } from './guest-memfd.js';
import { openSimKvm, type SimKvm, type SimKvmVm } from './index.js';

const PAGE_SIZE = 4096;
const SZ_2M = 2 * 1024 * 1024;
const BASE_DATA_SLOT = 10;
const BASE_DATA_GPA = 1n << 32n;
const PER_CPU_DATA_SIZE = SZ_2M + PAGE_SIZE;

/** The guest's MAP_GPA_RANGE attribute bits (arbitrary values: KVM passes them through). */
const MAP_GPA_SET_ATTRIBUTES = 1n << 0n;
const MAP_GPA_SHARED = 1n << 1n;
const MAP_GPA_DO_FALLOCATE = 1n << 2n;

const TEST_RANGES: ReadonlyArray<{ offset: number; size: number }> = [
  { offset: 0, size: PAGE_SIZE },
  { offset: 0, size: SZ_2M },
  { offset: PAGE_SIZE, size: PAGE_SIZE },
  { offset: PAGE_SIZE, size: SZ_2M },
  { offset: SZ_2M, size: PAGE_SIZE },
];

/** A VM exit the guest code produces. */
type Exit =
  | { kind: 'hypercall'; gpa: bigint; npages: bigint; attrs: bigint }
  | { kind: 'sync'; op: 'shared' | 'private'; gpa: bigint; size: number; current: number; next: number };

const alignUp = (v: number, a: number) => Math.ceil(v / a) * a;

/** The guest side: what `guest_code(base_gpa)` does, with exits as `yield`s. */
function* guestCode(vm: SimKvmVm, base: bigint): Generator<Exit, void, void> {
  const memset = (gpa: bigint, byte: number, size: number) => void vm.guestAccess({ gpa, len: size, write: true, fill: byte });
  /** memcmp_g: a guest assertion (GUEST_ASSERT → UCALL_ABORT, reported by the host). */
  const memcmp = (gpa: bigint, pattern: number, size: number) => {
    const got = vm.guestAccess({ gpa, len: size });
    for (let i = 0; i < size; i++) {
      if (got[i] !== pattern)
        throw new Error(
          `Guest expected 0x${pattern.toString(16)} at gpa 0x${(gpa + BigInt(i)).toString(16)}, got 0x${got[i]!.toString(16)}`,
        );
    }
  };
  const mapGpa = (gpa: bigint, size: number, attrs: bigint): Exit => ({ kind: 'hypercall', gpa, npages: BigInt(size / PAGE_SIZE), attrs });
  const mapMem = (gpa: bigint, size: number, shared: boolean, fallocate: boolean) =>
    mapGpa(gpa, size, MAP_GPA_SET_ATTRIBUTES | (shared ? MAP_GPA_SHARED : 0n) | (fallocate ? MAP_GPA_DO_FALLOCATE : 0n));
  const syncShared = (gpa: bigint, size: number, current: number, next: number): Exit => ({
    kind: 'sync',
    op: 'shared',
    gpa,
    size,
    current,
    next,
  });
  const syncPrivate = (gpa: bigint, size: number, pattern: number): Exit => ({
    kind: 'sync',
    op: 'private',
    gpa,
    size,
    current: pattern,
    next: 0,
  });

  function* explicitConversion(doFallocate: boolean): Generator<Exit, void, void> {
    const defP = 0xaa;
    const initP = 0xcc;
    // Memory is shared by default.
    memset(base, defP, PER_CPU_DATA_SIZE);
    memcmp(base, defP, PER_CPU_DATA_SIZE);
    yield syncShared(base, PER_CPU_DATA_SIZE, defP, initP);
    memcmp(base, initP, PER_CPU_DATA_SIZE);

    for (const r of TEST_RANGES) {
      const gpa = base + BigInt(r.offset);
      const size = r.size;
      const [p1, p2, p3, p4] = [0x11, 0x22, 0x33, 0x44];
      memset(gpa, p1, size);
      // Convert to private; the host must keep seeing the shared data (p1).
      yield mapMem(gpa, size, false, doFallocate);
      if (size > PAGE_SIZE) {
        memset(gpa, p2, PAGE_SIZE);
      } else {
        memset(gpa, p2, size);
        yield syncPrivate(gpa, size, p1);
        memcmp(gpa, p2, size);
        if (gpa > base) memcmp(base, initP, Number(gpa - base));
        const end = base + BigInt(PER_CPU_DATA_SIZE);
        if (gpa + BigInt(size) < end) memcmp(gpa + BigInt(size), initP, Number(end - (gpa + BigInt(size))));
        // Odd page frames go back to shared, to exercise holes in private ranges.
        for (let j = 0; j < size; j += PAGE_SIZE) {
          if ((j / PAGE_SIZE) & 1) {
            yield mapMem(gpa + BigInt(j), PAGE_SIZE, true, doFallocate);
            yield syncShared(gpa + BigInt(j), PAGE_SIZE, p1, p3);
            memcmp(gpa + BigInt(j), p3, PAGE_SIZE);
          } else {
            yield syncPrivate(gpa + BigInt(j), PAGE_SIZE, p1);
          }
        }
      }
      // skip: everything back to shared; the guest fills the even frames, the host verifies.
      yield mapMem(gpa, size, true, doFallocate);
      memset(gpa, p3, size);
      yield syncShared(gpa, size, p3, p4);
      memcmp(gpa, p4, size);
      memset(gpa, initP, size);
      // Free all private memory so the next range starts from a clean guest_memfd.
      yield mapMem(base, PER_CPU_DATA_SIZE, true, true);
    }
  }

  function* punchHole(precise: boolean): Generator<Exit, void, void> {
    const initP = 0xcc;
    // Everything private: this phase is about punching holes in guest_memfd only.
    yield mapMem(base, PER_CPU_DATA_SIZE, false, false);
    for (const r of TEST_RANGES) {
      const gpa = base + BigInt(r.offset);
      // "Mapping" shared with fallocate but without SET_ATTRIBUTES is a bare PUNCH_HOLE.
      yield mapGpa(base, PER_CPU_DATA_SIZE, MAP_GPA_SHARED | MAP_GPA_DO_FALLOCATE);
      if (precise) {
        memset(gpa, initP, r.size);
        memcmp(gpa, initP, r.size);
      } else {
        memset(base, initP, PER_CPU_DATA_SIZE);
        memcmp(base, initP, PER_CPU_DATA_SIZE);
      }
      // Punch the target; private reads there must now return zero (fresh folios).
      yield mapGpa(gpa, r.size, MAP_GPA_SHARED | MAP_GPA_DO_FALLOCATE);
      memcmp(gpa, 0, r.size);
    }
  }

  yield* explicitConversion(false);
  yield* explicitConversion(true);
  yield* punchHole(false);
  yield* punchHole(true);
}

/** The host side of the test: the VM, its memory layout and the exit handlers. */
class ConversionsTest {
  readonly kvm: SimKvm;
  readonly vm: SimKvmVm;
  readonly memfd: SimGuestMemfd;
  readonly memfdSize: number;
  readonly perCpuSize: number;
  readonly slots: Array<{ id: number; gpa: bigint; size: number; offset: number; hva: SimAnonMapping }> = [];
  /** Exits handled, by kind (coverage evidence). */
  readonly exits = { hypercall: 0, sync: 0 };

  constructor(
    readonly nrVcpus: number,
    nrMemslots: number,
  ) {
    this.kvm = openSimKvm();
    // TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)).
    expect(this.kvm.checkExtension(KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM)).not.toBe(0);
    this.perCpuSize = alignUp(PER_CPU_DATA_SIZE, SZ_2M);
    this.memfdSize = this.perCpuSize * nrVcpus;
    const slotSize = this.memfdSize / nrMemslots;
    expect(slotSize * nrMemslots).toBe(this.memfdSize);
    this.vm = this.kvm.createVm(KVM_X86_SW_PROTECTED_VM) as SimKvmVm;
    this.memfd = this.vm.createGuestMemfd({ size: this.memfdSize, flags: 0n }) as SimGuestMemfd;
    for (let i = 0; i < nrMemslots; i++) {
      const hva = this.kvm.mmapAnonymous(slotSize);
      const slot = { id: BASE_DATA_SLOT + i, gpa: BASE_DATA_GPA + BigInt(slotSize * i), size: slotSize, offset: slotSize * i, hva };
      this.vm.setUserMemoryRegion2({
        slot: slot.id,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: slot.gpa,
        memorySize: slotSize,
        userspace: { mapping: hva },
        guestMemfdOffset: slot.offset,
        guestMemfd: this.memfd.fd,
      });
      this.slots.push(slot);
    }
  }

  /** `addr_gpa2hva`: the host mapping and offset behind `gpa`. */
  private hva(gpa: bigint): { m: SimAnonMapping; off: number } {
    const s = this.slots.find((x) => x.gpa <= gpa && gpa < x.gpa + BigInt(x.size));
    if (!s) throw new Error(`no memslot for gpa 0x${gpa.toString(16)}`);
    return { m: s.hva, off: Number(gpa - s.gpa) };
  }

  /** `vm_guest_mem_fallocate`: one fallocate per memslot piece of `[gpa, gpa+size)`. */
  private guestMemFallocate(gpa: bigint, size: number, punch: boolean): void {
    const mode = FALLOC_FL_KEEP_SIZE | (punch ? FALLOC_FL_PUNCH_HOLE : 0);
    let at = gpa;
    let left = BigInt(size);
    while (left > 0n) {
      const s = this.slots.find((x) => x.gpa <= at && at < x.gpa + BigInt(x.size));
      if (!s) throw new Error(`no guest_memfd slot for gpa 0x${at.toString(16)}`);
      const len = BigInt(s.size) - (at - s.gpa) < left ? BigInt(s.size) - (at - s.gpa) : left;
      this.memfd.fallocate(mode, BigInt(s.offset) + (at - s.gpa), len);
      at += len;
      left -= len;
    }
  }

  /** `handle_exit_hypercall`: the host's MAP_GPA_RANGE (conversion) handler. */
  handleHypercall(e: Extract<Exit, { kind: 'hypercall' }>): void {
    this.exits.hypercall++;
    const size = Number(e.npages) * PAGE_SIZE;
    const shared = (e.attrs & MAP_GPA_SHARED) !== 0n;
    if (e.attrs & MAP_GPA_DO_FALLOCATE) this.guestMemFallocate(e.gpa, size, shared);
    if (e.attrs & MAP_GPA_SET_ATTRIBUTES) {
      this.vm.setMemoryAttributes({ address: e.gpa, size, attributes: shared ? 0n : KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 });
    }
  }

  /** The ucall SYNC handler: the host always observes the shared data; for SHARED it writes the next pattern. */
  handleSync(e: Extract<Exit, { kind: 'sync' }>): void {
    this.exits.sync++;
    for (let i = 0; i < e.size; i += PAGE_SIZE) {
      const n = Math.min(PAGE_SIZE, e.size - i);
      const gpa = e.gpa + BigInt(i);
      const { m, off } = this.hva(gpa);
      const seen = m.read(off, n);
      for (let k = 0; k < n; k++) {
        if (seen[k] !== e.current)
          throw new Error(
            `Host expected 0x${e.current.toString(16)} at gpa 0x${(gpa + BigInt(k)).toString(16)}, got 0x${seen[k]!.toString(16)}`,
          );
      }
      if (e.op === 'shared') m.fill(off, n, e.next);
    }
  }

  /** Runs every vCPU to GUEST_DONE, one exit at a time, round-robin. */
  run(): void {
    const vcpus = Array.from({ length: this.nrVcpus }, (_, i) => guestCode(this.vm, BASE_DATA_GPA + BigInt(i * this.perCpuSize)));
    let live = vcpus.length;
    while (live > 0) {
      live = 0;
      for (const vcpu of vcpus) {
        const r = vcpu.next();
        if (r.done) continue;
        live++;
        if (r.value.kind === 'hypercall') this.handleHypercall(r.value);
        else this.handleSync(r.value);
      }
    }
  }

  /** `kvm_vm_free`: delete the slots, unmap the host memory, close the VM fd. The memfd stays open. */
  freeVm(): void {
    for (const s of this.slots) {
      this.vm.setUserMemoryRegion2({ slot: s.id, flags: 0, guestPhysAddr: 0, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
      s.hva.munmap();
    }
    this.vm.close();
  }
}

describe('private_mem_conversions_test (SW_PROTECTED, docs/kvm-guest-memfd.md §3.3)', () => {
  // main(): -n nr_vcpus, -m nr_memslots (defaults 1/1); a few combinations, as a CI matrix would run.
  it.each([
    [1, 1],
    [2, 1],
    [2, 4],
  ])(
    'nr_vcpus=%i nr_memslots=%i: explicit conversion (without and with fallocate), punch hole (faulted-in and precise), file outlives the VM',
    (nrVcpus, nrMemslots) => {
      const t = new ConversionsTest(nrVcpus, nrMemslots);
      t.run();
      // Per vCPU: 2 explicit phases and 2 punch phases; each explicit phase has 5 ranges × ≥3 exits.
      expect(t.exits.hypercall).toBeGreaterThanOrEqual(nrVcpus * (2 * 5 * 3 + 2 * 11));
      expect(t.exits.sync).toBeGreaterThanOrEqual(nrVcpus * 2 * (1 + 5));
      // The last phase punched each range after faulting it in: only the rest of the memory is held.
      const heldBeforeFree = t.memfd.file.core.pagesPresent;
      expect(heldBeforeFree).toBeGreaterThan(0);
      expect(heldBeforeFree).toBeLessThan(t.memfdSize / PAGE_SIZE);

      t.freeVm();
      // The guest_memfd holds a reference to its VM: the VM is not destroyed yet (docs/kvm-guest-memfd.md §2.12).
      expect(t.kvm.stats().vms).toBe(1);
      // kvm_fallocate(PUNCH|KEEP, 0, size) and kvm_fallocate(KEEP, 0, size) still succeed.
      t.memfd.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, t.memfdSize);
      expect(t.memfd.file.core.pagesPresent).toBe(0);
      t.memfd.fallocate(FALLOC_FL_KEEP_SIZE, 0, t.memfdSize);
      expect(t.memfd.file.core.pagesPresent).toBe(t.memfdSize / PAGE_SIZE);
      t.memfd.close();
      // close(memfd) drops the last reference: the VM goes, and with it every byte.
      expect(t.kvm.stats()).toMatchObject({ vms: 0, guestMemfds: 0, mappings: 0, memory: { bytesInUse: 0 } });
    },
  );

  it('a wrong host handler is caught: converting without keeping the shared copy fails the host check like the C test would', () => {
    const t = new ConversionsTest(1, 1);
    // A buggy VMM that discards the shared side on every conversion to private.
    const original = t.handleHypercall.bind(t);
    t.handleHypercall = (e) => {
      original(e);
      if (!(e.attrs & MAP_GPA_SHARED))
        t.slots[0]!.hva.madvise(Number(e.gpa - BASE_DATA_GPA), Number(e.npages) * PAGE_SIZE, 4 /* MADV_DONTNEED */);
    };
    expect(() => t.run()).toThrow(/Host expected 0x11 at gpa 0x100000000, got 0x0/);
  });
});
