/**
 * Differential scenarios for the kernel rules past the first pages (issue "KVM fidelity"): the MMU's
 * highest guest frame, host access over whole pages with the kernel's signal precedence, the mmap
 * flag policy, vCPU lifetimes, and the owned-mapping rules of the safe memslot API. Each one runs
 * on the real kernel and on the sim like every entry of `scenarios.ts`.
 */
import type { KvmAnonMapping, KvmGuestMemfd, KvmMapping, KvmVm } from '../api.js';
import {
  KVM_MEM_GUEST_MEMFD as GMEM,
  KVM_MEM_LOG_DIRTY_PAGES as LOG_DIRTY,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
} from '../uapi/constants.js';

/** `MAP_GROWSDOWN` (x86). */
const MAP_GROWSDOWN = 0x100;
import type { Scenario, Session } from './trace.js';

const K4 = 4096;
const K16 = 16384;
const BOTH = 3n;
/** The probe machine's `kvm_mmu_max_gfn()` + 1, as a GPA: shadow MMU → 52 bits (see SimKernelOptions.maxGpaBits). */
const GPA_LIMIT = 1n << 52n;

const table: Scenario[] = [];
/**
 * Adds a scenario. `pinned` gives the kernel's outcome of named steps (probed on the real kernel, or
 * for host accesses the kernel's signal rules, whose single-byte cases `native/host-access.native.test.ts`
 * checks against raw accesses in child processes): the suite checks them on both drivers, so a rule
 * both drivers get wrong in the same way still fails.
 */
const add = (name: string, run: (s: Session) => void, pinned?: Scenario['pinned']): void =>
  void table.push({ name, run, ...(pinned ? { pinned } : {}) });
const EINVAL = { err: 'EINVAL', errno: 22 };
const EFAULT = { err: 'EFAULT', errno: 14 };
const sigbus = (at: number) => ({ err: 'SIGBUS', at: String(at) });

type Body = (s: Session, vm: KvmVm, g: KvmGuestMemfd) => void;
const withFileFlags = (flags: bigint) => (size: number, body: Body) => (s: Session) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size, flags });
  if (vm && g) body(s, vm, g);
};
/** A VM and an MMAP | INIT_SHARED guest_memfd. */
const withFile = withFileFlags(BOTH);
/** A VM and an MMAP-only (private) guest_memfd. */
const withFile0 = withFileFlags(1n);

// ------------------------------------------------------------------ highest guest frame (kvm_mmu_max_gfn)
add(
  'max gfn: a gmem slot whose last page is 2^52 - 4096 is accepted; one page higher is EINVAL',
  withFile(K16, (s, vm, g) => {
    s.region2(vm, { slot: 0, guestPhysAddr: GPA_LIMIT - 4096n, memorySize: K4, guestMemfd: g.fd }, 'last page 2^52-4096');
    s.region2(vm, { slot: 1, guestPhysAddr: GPA_LIMIT, memorySize: K4, guestMemfd: g.fd, guestMemfdOffset: K4 }, 'first page 2^52');
    s.region2(
      vm,
      { slot: 2, guestPhysAddr: GPA_LIMIT - 4096n, memorySize: 2 * K4, guestMemfd: g.fd, guestMemfdOffset: 2 * K4 },
      'straddles 2^52 (overlaps slot 0: EEXIST first)',
    );
  }),
  { 'last page 2^52-4096': 'ok', 'first page 2^52': EINVAL },
);
add(
  'max gfn: straddling 2^52 without an overlap is EINVAL',
  withFile(K16, (s, vm, g) => {
    s.region2(vm, { slot: 2, guestPhysAddr: GPA_LIMIT - 4096n, memorySize: 2 * K4, guestMemfd: g.fd }, 'straddles 2^52');
    s.region2(vm, { slot: 3, guestPhysAddr: GPA_LIMIT - 8192n, memorySize: 2 * K4, guestMemfd: g.fd }, 'ends at 2^52: ok');
  }),
  { 'straddles 2^52': EINVAL, 'ends at 2^52: ok': 'ok' },
);
add(
  'max gfn: plain REGION2 and v1 slots at 2^52, 2^60, 2^63 are EINVAL',
  (s) => {
    const vm = s.vm();
    if (!vm) return;
    for (const gpa of [GPA_LIMIT, 1n << 60n, 1n << 63n, (1n << 64n) - 2n * 4096n]) {
      s.region2(vm, { slot: 1, flags: 0, guestPhysAddr: gpa, memorySize: K4 }, `region2 at 0x${gpa.toString(16)}`);
      s.run(`region1 at 0x${gpa.toString(16)}`, () => vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: gpa, memorySize: K4 }));
    }
    s.region2(vm, { slot: 1, flags: 0, memorySize: 0 }, 'slot 1 was never created: delete is EINVAL');
  },
  { 'region2 at 0x10000000000000': EINVAL, 'region1 at 0x10000000000000': EINVAL },
);
add(
  'max gfn: a refused gmem slot leaves its guest_memfd range free (the bind is undone)',
  withFile(K16, (s, vm, g) => {
    s.region2(vm, { slot: 1, guestPhysAddr: GPA_LIMIT, memorySize: K16, guestMemfd: g.fd }, 'above the max frame: EINVAL');
    s.region2(vm, { slot: 2, guestPhysAddr: 0, memorySize: K16, guestMemfd: g.fd }, 'same file range, valid GPA: ok');
    s.region2(vm, { slot: 1, flags: 0, memorySize: 0 }, 'slot 1 does not exist');
    s.region2(vm, { slot: 3, guestPhysAddr: GPA_LIMIT, memorySize: K4, guestMemfd: g.fd }, 'overlapping file range above the max frame');
  }),
  { 'above the max frame: EINVAL': EINVAL, 'same file range, valid GPA: ok': 'ok' },
);
add(
  'max gfn: moving a slot above the max frame is EINVAL and the slot stays',
  (s) => {
    const vm = s.vm();
    if (!vm) return;
    s.region2(vm, { slot: 4, flags: 0, guestPhysAddr: 0x100000, memorySize: K16 }, 'create at 1 MiB');
    s.region2(vm, { slot: 4, flags: 0, guestPhysAddr: GPA_LIMIT, memorySize: K16 }, 'move to 2^52: EINVAL');
    s.region2(vm, { slot: 5, flags: 0, guestPhysAddr: 0x100000, memorySize: K4 }, 'old range still taken: EEXIST');
    s.region2(vm, { slot: 4, flags: 0, guestPhysAddr: GPA_LIMIT - BigInt(K16), memorySize: K16 }, 'move to the top: ok');
    s.region2(vm, { slot: 4, flags: LOG_DIRTY, guestPhysAddr: GPA_LIMIT - BigInt(K16), memorySize: K16 }, 'flags-only at the top: ok');
    s.region2(vm, { slot: 5, flags: 0, guestPhysAddr: 0x100000, memorySize: K4 }, 'old range free again');
  },
  { 'move to 2^52: EINVAL': EINVAL, 'old range still taken: EEXIST': { err: 'EEXIST', errno: 17 }, 'move to the top: ok': 'ok' },
);
add('max gfn: GMEM with a bad fd above the max frame is EBADF (the bind comes first)', (s) => {
  const vm = s.vm();
  if (vm) s.region2(vm, { slot: 1, flags: GMEM, guestPhysAddr: GPA_LIMIT, memorySize: K4, guestMemfd: 1000 });
});

// ------------------------------------------------------------------ host access over whole pages, kernel precedence
add(
  'host access: a 100-byte mapping gives access to its whole page',
  withFile(K16, (s, _vm, g) => {
    const m = s.mmap(g, { length: 100 });
    s.read(m, 0, K4, 'read the whole page');
    s.fill(m, 4000, 96, 0x5a, 'fill up to the end of the page');
    s.read(m, 3990, 106, 'read back the tail');
    s.read(m, K4 - 1, 2, 'one byte past the page: EFAULT (SIGSEGV)');
    s.fill(m, K4 - 2, 4, 0x77, 'a fill running off the page stores the bytes before (SIGSEGV)');
    s.read(m, K4 - 4, 4, 'the last two bytes were stored');
    s.read(m, K4, 0, 'zero bytes at the end: ok');
  }),
  {
    'read the whole page': '00*4096',
    'fill up to the end of the page': 'ok',
    'one byte past the page: EFAULT (SIGSEGV)': EFAULT,
    'the last two bytes were stored': '5a*2,77*2',
  },
);
add(
  'host access: mapping of length page+1 over a one-page file — SIGBUS at EOF comes before the end of the mapping',
  (s) => {
    const vm = s.vm();
    const g = vm && s.gmem(vm, { size: K4, flags: BOTH });
    if (!g) return;
    const m = s.mmap(g, { length: K4 + 1 });
    s.read(m, 4000, 200, 'read across EOF: SIGBUS at 4096');
    s.fill(m, 4000, 5000, 0x11, 'fill across EOF and past the mapping: SIGBUS at 4096, bytes before stored');
    s.read(m, 3990, 106, 'bytes before EOF were stored');
    s.read(m, 2 * K4 - 1, 1, 'the last mapped byte is past EOF: SIGBUS');
    s.read(m, 2 * K4, 1, 'past the mapped pages: EFAULT');
  },
  {
    'read across EOF: SIGBUS at 4096': sigbus(4096),
    'bytes before EOF were stored': '00*10,11*96',
    'the last mapped byte is past EOF: SIGBUS': sigbus(8191),
  },
);
add(
  'host access: a private file reports SIGBUS at the first byte, even for a range longer than the mapping',
  withFile0(K16, (s, _vm, g) => {
    const m = s.mmap(g, { length: 100 });
    s.read(m, 0, 5000, 'read 5000 bytes of a 100-byte mapping');
    s.fill(m, 10, 1, 0x1, 'fill one byte');
  }),
  { 'read 5000 bytes of a 100-byte mapping': sigbus(0), 'fill one byte': sigbus(10) },
);
add(
  'host access: PROT_READ write past EOF is SIGSEGV (EFAULT), not SIGBUS',
  (s) => {
    const vm = s.vm();
    const g = vm && s.gmem(vm, { size: K4, flags: BOTH });
    if (!g) return;
    const m = s.mmap(g, { length: 2 * K4, prot: PROT_READ });
    s.fill(m, K4, 1, 0x1, 'write at EOF through PROT_READ');
    s.read(m, K4, 1, 'read at EOF: SIGBUS');
    const n = s.mmap(g, { length: K4, prot: PROT_NONE }, 'mmap PROT_NONE');
    s.read(n, 0, 1, 'read PROT_NONE: EFAULT');
  },
  { 'write at EOF through PROT_READ': EFAULT, 'read at EOF: SIGBUS': sigbus(K4) },
);
add(
  'host access: a write crossing the end of the mapped pages stores what lies inside',
  withFile(K16, (s, _vm, g) => {
    const m = s.mmap(g, { length: K4 + 100 });
    s.fill(m, K4, 2 * K4, 0x33, 'fill [4096, 12288) of an 8 KiB mapping');
    s.read(m, 0, 2 * K4, 'page 1 was written');
    const again = s.mmap(g, { length: K16 }, 'mmap the whole file');
    s.read(again, 0, K16, 'only page 1 of the file changed');
  }),
  { 'fill [4096, 12288) of an 8 KiB mapping': EFAULT, 'only page 1 of the file changed': '00*4096,33*4096,00*8192' },
);
add(
  'host access: anonymous memory of 3 pages + 10 bytes covers 4 whole pages',
  (s) => {
    const m = s.anon(3 * K4 + 10);
    s.fill(m, 3 * K4, K4, 0x44, 'fill the whole last page');
    s.read(m, 3 * K4 - 1, K4 + 1, 'read it back');
    s.read(m, 4 * K4 - 1, 2, 'past the last page: EFAULT');
  },
  { 'fill the whole last page': 'ok', 'read it back': '00*1,44*4096' },
);

// ------------------------------------------------------------------ mmap flag policy: MAP_FIXED_NOREPLACE | MAP_ANONYMOUS
/** A free, page-aligned address on this driver: where a just-unmapped anonymous mapping was. */
const freeAddress = (s: Session, length: number): bigint | undefined => {
  const a = s.kvm.mmapAnonymous(length);
  const at = a.address;
  a.munmap();
  return at;
};
for (const [label, flags] of [
  ['INIT_SHARED', BOTH],
  ['MMAP only (private)', 1n],
  ['no MMAP flag', 0n],
] as const) {
  add(
    `mmap: MAP_FIXED_NOREPLACE | MAP_ANONYMOUS on a ${label} guest_memfd maps anonymous memory (the fd is ignored)`,
    (s) => {
      const vm = s.vm();
      const g = vm && s.gmem(vm, { size: K16, flags });
      if (!g) return;
      if (flags & 2n) {
        const file = s.mmap(g, { length: K16 }, 'the file through a plain mapping');
        s.fill(file, 0, K16, 0x66, 'fill the file with 0x66');
      }
      for (const [type, name] of [
        [MAP_SHARED, 'shared'],
        [MAP_PRIVATE, 'private'],
      ] as const) {
        const m = s.mmap(
          g,
          { length: K16, flags: type | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, address: freeAddress(s, K16) },
          `mmap ${name} anonymous`,
        );
        s.read(m, 0, K16, `${name}: reads zero, not the file`);
        s.fill(m, 0, K4, 0x12, `${name}: writable`);
        s.read(m, 0, 2, `${name}: reads back`);
      }
      for (const [name, args] of [
        ['MAP_SHARED_VALIDATE', { flags: MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE }],
        ['shared MAP_GROWSDOWN', { flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_GROWSDOWN }],
        ['unaligned offset', { flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, offset: 100 }],
        ['length 0', { flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, length: 0 }],
        [
          'PROT_EXEC (no noexec mount for anonymous memory)',
          { flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, prot: PROT_READ | PROT_EXEC },
        ],
        ['offset past EOF is ignored', { flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, offset: 1n << 40n }],
      ] as const) {
        const m = s.mmap(g, { length: K4, ...args, address: freeAddress(s, K4) }, `mmap ${name}`);
        if (m) s.read(m, 0, 1, `${name}: read`);
      }
    },
    {
      'mmap shared anonymous': { length: K16, offset: '0n' },
      'shared: reads zero, not the file': `00*${K16}`,
      'private: reads zero, not the file': `00*${K16}`,
      'shared: reads back': '12*2',
      'mmap MAP_SHARED_VALIDATE': EINVAL,
      'mmap PROT_EXEC (no noexec mount for anonymous memory)': { length: K4, offset: '0n' },
    },
  );
}

// ------------------------------------------------------------------ owned mappings (safe memslot API)
/** A VM and an 8 KiB anonymous mapping. */
const withAnonVm = (body: (s: Session, vm: KvmVm, m: KvmAnonMapping) => void) => (s: Session) => {
  const vm = s.vm();
  const m = s.anon(2 * K4);
  if (vm && m) body(s, vm, m);
};
const reserved = (s: Session, m: KvmMapping | undefined, step: string) =>
  s.note(step, m ? { unmapped: m.unmapped, addressReserved: m.addressReserved } : 'no mapping');
add(
  'owned mapping: a plain slot on an owned anonymous mapping, whole and at an offset',
  withAnonVm((s, vm, m) => {
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: 2 * K4, userspace: { mapping: m } }, 'whole mapping');
    s.region2Owned(
      vm,
      { slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: K4, userspace: { mapping: m, offset: K4 } },
      'second page',
    );
    s.run('v1 at offset 0', () =>
      vm.setUserMemoryRegion({ slot: 2, flags: 0, guestPhysAddr: 0x200000, memorySize: K4, userspace: { mapping: m } }),
    );
  }),
  { 'whole mapping': 'ok', 'second page': 'ok', 'v1 at offset 0': 'ok' },
);
add(
  'owned mapping: a slot reaching past its mapping is refused before the ioctl',
  withAnonVm((s, vm, m) => {
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: 3 * K4, userspace: { mapping: m } }, 'three pages of a two-page mapping');
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: 2 * K4, userspace: { mapping: m, offset: K4 } }, 'two pages from page 1');
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: K4, userspace: { mapping: m, offset: -K4 } }, 'negative offset');
    s.region2Owned(
      vm,
      { slot: 0, flags: 0, memorySize: K4, userspace: { mapping: m, offset: 100 } },
      'unaligned offset: the kernel refuses userspace_addr',
    );
    s.region2Owned(
      vm,
      { slot: 0, flags: 0, memorySize: 0, userspace: { mapping: m, offset: 2 * K4 } },
      'delete of a missing slot: the kernel answers',
    );
  }),
  {
    'three pages of a two-page mapping': EINVAL,
    'two pages from page 1': EINVAL,
    'negative offset': EINVAL,
    'unaligned offset: the kernel refuses userspace_addr': EINVAL,
  },
);
add(
  'owned mapping: munmap while a slot references it keeps the range reserved until the slot is deleted',
  withAnonVm((s, vm, m) => {
    s.fill(m, 0, 2 * K4, 0x5a);
    s.region2Owned(vm, { slot: 3, flags: 0, memorySize: 2 * K4, userspace: { mapping: m } }, 'bind');
    s.run('munmap', () => m.munmap());
    reserved(s, m, 'after munmap');
    s.read(m, 0, 1, 'the mapping reads EFAULT');
    const again = s.anon(2 * K4, 'a new mapping of the same size');
    s.note('the new mapping is elsewhere', again ? again.address !== m.address : 'no mapping');
    s.read(again, 0, 2 * K4, 'the new mapping reads zero');
    s.region2Owned(
      vm,
      { slot: 4, flags: 0, guestPhysAddr: 0x100000, memorySize: K4, userspace: { mapping: m } },
      'an unmapped mapping cannot back a new slot',
    );
    s.region2(vm, { slot: 3, flags: 0, memorySize: 0 }, 'delete the slot');
    reserved(s, m, 'after delete');
  }),
  {
    'after munmap': { unmapped: true, addressReserved: true },
    'the mapping reads EFAULT': EFAULT,
    'the new mapping is elsewhere': true,
    'an unmapped mapping cannot back a new slot': EFAULT,
    'after delete': { unmapped: true, addressReserved: false },
  },
);
add(
  'owned mapping: two slots on one mapping release the range with the last one',
  withAnonVm((s, vm, m) => {
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: K4, userspace: { mapping: m } }, 'slot 0');
    s.region2Owned(vm, { slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: K4, userspace: { mapping: m, offset: K4 } }, 'slot 1');
    s.run('munmap', () => m.munmap());
    s.region2(vm, { slot: 0, flags: 0, memorySize: 0 }, 'delete slot 0');
    reserved(s, m, 'one slot left');
    s.region2Owned(
      vm,
      { slot: 1, flags: LOG_DIRTY, guestPhysAddr: 0x200000, memorySize: K4 },
      'move slot 1 (no userspace: the kernel refuses a different address)',
    );
    s.region2(
      vm,
      { slot: 1, flags: LOG_DIRTY, guestPhysAddr: 0x200000, memorySize: K4, userspaceAddr: m.address + BigInt(K4) },
      'move slot 1 with its address',
    );
    reserved(s, m, 'moved: still referenced');
    s.region2(vm, { slot: 1, flags: 0, memorySize: 0 }, 'delete slot 1');
    reserved(s, m, 'none left');
  }),
  {
    'one slot left': { unmapped: true, addressReserved: true },
    'move slot 1 (no userspace: the kernel refuses a different address)': EINVAL,
    'move slot 1 with its address': 'ok',
    'moved: still referenced': { unmapped: true, addressReserved: true },
    'none left': { unmapped: true, addressReserved: false },
  },
);
add(
  'owned mapping: the reservation lasts while the VM lives, past its fd (a guest_memfd pins it)',
  (s) => {
    const vm = s.vm();
    const g = vm && s.gmem(vm, { size: K16, flags: BOTH });
    const m = g && s.mmap(g, { length: K16 }, 'the guest_memfd mapping');
    if (!vm || !g || !m) return;
    s.region2Owned(vm, { slot: 0, memorySize: K16, guestMemfd: g.fd, userspace: { mapping: m } }, 'gmem slot on its own mapping');
    s.run('munmap', () => m.munmap());
    s.close(vm, 'close the VM fd');
    reserved(s, m, 'VM fd closed, the file still pins the VM');
    s.close(g, 'close the guest_memfd (last reference: the VM is destroyed)');
    reserved(s, m, 'VM destroyed');
  },
  {
    'gmem slot on its own mapping': 'ok',
    'VM fd closed, the file still pins the VM': { unmapped: true, addressReserved: true },
    'VM destroyed': { unmapped: true, addressReserved: false },
  },
);
add(
  'owned mapping: a mapping made after munmap never gets a reserved address (eight rounds)',
  withAnonVm((s, vm, first) => {
    let m: KvmAnonMapping | undefined = first;
    const taken: bigint[] = [];
    for (let i = 0; i < 8 && m; i++) {
      s.region2Owned(
        vm,
        { slot: i, flags: 0, guestPhysAddr: BigInt(i) * 0x100000n, memorySize: 2 * K4, userspace: { mapping: m } },
        `bind round ${i}`,
      );
      taken.push(m.address);
      s.run(`munmap round ${i}`, () => m!.munmap());
      m = s.anon(2 * K4, `map round ${i + 1}`);
      s.note(`round ${i + 1} address is fresh`, m ? !taken.includes(m.address) : 'no mapping');
    }
  }),
  { 'round 8 address is fresh': true },
);

add(
  'owned mapping: MAP_FIXED_NOREPLACE at a reserved address is EEXIST until the slot is deleted',
  withFile(K4, (s, vm, g) => {
    const m = s.anon(K4);
    if (!m) return;
    s.region2Owned(vm, { slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: K4, userspace: { mapping: m } }, 'bind');
    s.run('munmap', () => m.munmap());
    const fixed = { length: K4, flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, address: m.address };
    s.mmap(g, fixed, 'map at the reserved address');
    s.region2(vm, { slot: 1, flags: 0, memorySize: 0 }, 'delete the slot');
    s.mmap(g, fixed, 'map at the released address');
  }),
  { 'map at the reserved address': { err: 'EEXIST', errno: 17 }, 'map at the released address': { length: K4, offset: '0n' } },
);

// ------------------------------------------------------------------ vCPU lifetime
/** `KVM_CREATE_VCPU` on either driver (a driver-specific extra: `NativeVm.createVcpu`, `SimKvmVm.createVcpu`). */
interface VcpuFd {
  readonly fd: number;
  readonly closed: boolean;
  close(): void;
}
const createVcpu = (vm: KvmVm, id: number): VcpuFd => (vm as unknown as { createVcpu(id: number): VcpuFd }).createVcpu(id);
/** Runs `body` with a vCPU tracked by the session trace; closes it afterwards if the body did not. */
const withVcpu = (body: (s: Session, vm: KvmVm, v: VcpuFd | undefined) => void) => (s: Session) => {
  const vm = s.vm();
  if (!vm) return;
  const v = s.run(
    'createVcpu(0)',
    () => createVcpu(vm, 0),
    (x) => s.trace.created_(x.fd),
  );
  try {
    body(s, vm, v);
  } finally {
    if (v && !v.closed) v.close();
  }
};
add(
  'vcpu: a vCPU fd outlives its VM fd, as in the kernel; its id stays taken',
  withVcpu((s, vm, v) => {
    s.run('createVcpu(0) again', () => createVcpu(vm, 0).close());
    s.run('createVcpu(4096)', () => createVcpu(vm, 4096).close());
    s.close(vm, 'close the VM fd');
    s.note('the vCPU is still open', v ? !v.closed : 'no vCPU');
    s.run('close the vCPU', () => v?.close());
    s.run('close the vCPU again', () => v?.close());
  }),
  {
    'createVcpu(0) again': { err: 'EEXIST', errno: 17 },
    'createVcpu(4096)': EINVAL,
    'close the VM fd': 'ok',
    'the vCPU is still open': true,
    'close the vCPU': 'ok',
    'close the vCPU again': { err: 'EBADF', errno: 9 },
  },
);
add(
  'vcpu: the VM a vCPU keeps alive keeps its slots, and their owned-mapping reservations',
  withVcpu((s, vm, v) => {
    const m = s.anon(K4);
    if (!m) return;
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: K4, userspace: { mapping: m } }, 'bind');
    s.run('munmap', () => m.munmap());
    s.close(vm, 'close the VM fd');
    reserved(s, m, 'the vCPU keeps the VM');
    s.run('close the vCPU', () => v?.close());
    reserved(s, m, 'VM destroyed with the vCPU');
  }),
  {
    'the vCPU keeps the VM': { unmapped: true, addressReserved: true },
    'close the vCPU': 'ok',
    'VM destroyed with the vCPU': { unmapped: true, addressReserved: false },
  },
);
add(
  'vcpu: a vCPU fd is not a guest_memfd for REGION2 (EINVAL)',
  withVcpu((s, vm, v) => {
    if (v) s.region2(vm, { guestMemfd: v.fd }, 'region2 with the vCPU fd');
  }),
  { 'region2 with the vCPU fd': EINVAL },
);

/** The fidelity scenarios, in a stable order. */
export const FIDELITY_SCENARIOS: readonly Scenario[] = table;
