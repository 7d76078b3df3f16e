/**
 * Adversarial differential scenarios: inputs past what the other tables walk — every single bit of
 * the mmap flags under each `MAP_TYPE`, fixed addresses at the bottom of the address space, and the
 * combinations where several arguments are wrong at once. Each one ran on the real kernel and on the
 * sim and found them answering differently before the fix it names; `pinned` holds the kernel's
 * (or guestmem's policy) answer so that both drivers cannot drift together.
 */
import type { KvmAnonMapping, KvmGuestMemfd, KvmVm } from '../api.js';
import {
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../uapi/constants.js';

/** `MAP_DROPPABLE` (6.11+). */
const MAP_DROPPABLE = 0x08;
import type { Scenario, Session } from './trace.js';

const K4 = 4096;
const K16 = 16384;
const EPERM = { err: 'EPERM', errno: 1 };
const EINVAL = { err: 'EINVAL', errno: 22 };
const EOPNOTSUPP = { err: 'EOPNOTSUPP', errno: 95 };
const MAPPED = { length: K4, offset: '0n' };

const table: Scenario[] = [];
const add = (name: string, run: (s: Session) => void, pinned?: Scenario['pinned']): void =>
  void table.push({ name, run, ...(pinned ? { pinned } : {}) });

type Body = (s: Session, vm: KvmVm, g: KvmGuestMemfd) => void;
/** A VM and a 16 KiB guest_memfd with `flags`, then `body`. */
const withFile = (flags: bigint, body: Body) => (s: Session) => {
  const vm = s.vm();
  const g = vm && s.gmem(vm, { size: K16, flags });
  if (vm && g) body(s, vm, g);
};

// ------------------------------------------------------------------ mmap flags, one bit at a time
/** `MAP_HUGE_2MB` / `MAP_HUGE_1GB`: hugetlb size encodings in bits 26–31. */
const MAP_HUGE_2MB = 21 << 26;
const MAP_HUGE_1GB = 30 << 26;
const MAP_32BIT = 0x40;
const MAP_ABOVE4G = 0x80;

// Bits 4 (MAP_FIXED) and 5 (MAP_ANONYMOUS) are guestmem's own refusals (mmap-policy.ts), walked in
// scenarios.ts; bit 20 (MAP_FIXED_NOREPLACE) needs an address and has its own scenarios below.
const BITS = [...Array(32).keys()].filter((b) => b !== 4 && b !== 5 && b !== 20);
for (const [fileName, fileFlags] of [
  ['INIT_SHARED', 3n],
  ['MMAP-only', 1n],
  ['no-MMAP', 0n],
] as const) {
  for (const [typeName, type] of [
    ['MAP_SHARED', MAP_SHARED],
    ['MAP_SHARED_VALIDATE', MAP_SHARED_VALIDATE],
    ['MAP_PRIVATE', MAP_PRIVATE],
  ] as const) {
    // Why: MAP_SHARED_VALIDATE accepts LEGACY_MAP_MASK (include/linux/mman.h), which ends with
    // MAP_32BIT, MAP_ABOVE4G (x86), MAP_HUGE_2MB and MAP_HUGE_1GB: bits 6, 7 and 26–30 map (the sim
    // answered EOPNOTSUPP for them).
    add(
      `mmap bits: ${typeName} | each flag bit 0–31 on a ${fileName} file`,
      withFile(fileFlags, (s, _vm, g) => {
        for (const b of BITS) s.mmap(g, { length: K4, flags: (type | (1 << b)) >>> 0 }, `${typeName} | bit ${b}`)?.munmap();
      }),
      fileFlags === 3n && type === MAP_SHARED_VALIDATE
        ? {
            'MAP_SHARED_VALIDATE | bit 6': MAPPED,
            'MAP_SHARED_VALIDATE | bit 7': MAPPED,
            'MAP_SHARED_VALIDATE | bit 27': MAPPED,
            'MAP_SHARED_VALIDATE | bit 30': MAPPED,
            'MAP_SHARED_VALIDATE | bit 31': EOPNOTSUPP,
            'MAP_SHARED_VALIDATE | bit 19': EOPNOTSUPP,
          }
        : undefined,
    );
  }
}
add(
  'mmap bits: MAP_SHARED_VALIDATE with the LEGACY_MAP_MASK tail (32BIT, ABOVE4G, HUGE_2MB, HUGE_1GB) maps; bit 31 does not',
  withFile(3n, (s, _vm, g) => {
    for (const [name, f] of [
      ['MAP_32BIT', MAP_32BIT],
      ['MAP_ABOVE4G', MAP_ABOVE4G],
      ['MAP_32BIT | MAP_ABOVE4G', MAP_32BIT | MAP_ABOVE4G],
      ['MAP_HUGE_2MB', MAP_HUGE_2MB],
      ['MAP_HUGE_1GB', MAP_HUGE_1GB],
      ['MAP_HUGE_2MB | MAP_HUGE_1GB', MAP_HUGE_2MB | MAP_HUGE_1GB],
      ['63 << 26', 63 << 26],
    ] as const) {
      const m = s.mmap(g, { length: K4, flags: (MAP_SHARED_VALIDATE | f) >>> 0 }, `validate ${name}`);
      if (m) s.fill(m, 0, K4, 0x5c, `validate ${name}: writable`);
      if (m) s.read(m, K4 - 2, 2, `validate ${name}: reads back`);
      m?.munmap();
    }
  }),
  {
    'validate MAP_32BIT': MAPPED,
    'validate MAP_ABOVE4G': MAPPED,
    'validate MAP_HUGE_2MB': MAPPED,
    'validate MAP_HUGE_1GB': MAPPED,
    'validate MAP_HUGE_1GB: reads back': '5c*2',
    'validate 63 << 26': EOPNOTSUPP,
  },
);

// ------------------------------------------------------------------ fixed addresses at the bottom of the address space
// Why: as root the kernel maps MAP_FIXED_NOREPLACE at address 0 (below mmap_min_addr, which
// CAP_SYS_RAWIO bypasses); the native driver then threw a TypeError (koffi returns NULL as null) and
// leaked the mapping, which also answered every later request at 0 with EEXIST. guestmem refuses
// fixed addresses below 64 KiB on both drivers (mmap-policy.ts).
for (const [fileName, fileFlags] of [
  ['INIT_SHARED', 3n],
  ['MMAP-only', 1n],
  ['no-MMAP', 0n],
] as const) {
  add(
    `mmap: MAP_FIXED_NOREPLACE below 64 KiB is refused (EPERM) on a ${fileName} file, every type, address 0 twice`,
    withFile(fileFlags, (s, _vm, g) => {
      for (const [typeName, type] of [
        ['shared', MAP_SHARED],
        ['validate', MAP_SHARED_VALIDATE],
        ['private', MAP_PRIVATE],
      ] as const) {
        for (const address of [undefined, 0, 0, K4, 0xf000, 0xfff0]) {
          s.mmap(
            g,
            { length: K4, flags: type | MAP_FIXED_NOREPLACE, ...(address === undefined ? {} : { address }) },
            `${typeName} NOREPLACE at ${address ?? 'no hint'}`,
          );
        }
        s.mmap(
          g,
          { length: 2 * K4, flags: type | MAP_FIXED_NOREPLACE, address: 0xf000 },
          `${typeName} NOREPLACE at 61440 reaching past 64 KiB`,
        );
      }
      s.mmap(
        g,
        { length: K4, flags: MAP_SHARED | MAP_FIXED_NOREPLACE, address: 0x10000 },
        'shared NOREPLACE at 64 KiB: the kernel answers',
      )?.munmap();
    }),
    {
      'shared NOREPLACE at no hint': EPERM,
      'shared NOREPLACE at 0': EPERM,
      'validate NOREPLACE at 4096': EPERM,
      'private NOREPLACE at 61440 reaching past 64 KiB': EPERM,
    },
  );
}

/** A free, page-aligned address on this driver: where a just-unmapped anonymous mapping was. */
const freeAddress = (s: Session, length: number): bigint => {
  const a = s.kvm.mmapAnonymous(length);
  const at = a.address;
  a.munmap();
  return at;
};

// ------------------------------------------------------------------ placement: the addr hint and MAP_32BIT
// Why: without MAP_FIXED the kernel still uses `addr` when the range there is free (rounded down to a
// page; raised to mmap_min_addr, 64 KiB here, when below it; ignored when taken or past user space),
// and MAP_32BIT places the mapping in the legacy window below 2 GiB, which holds less than 1 GiB
// (1 GiB plus an ASLR offset below 32 MiB, up to 2 GiB). The sim ignored both: a hinted address
// stayed free for a later MAP_FIXED_NOREPLACE, and MAP_32BIT mappings of any size succeeded.
add(
  'mmap placement: a free addr hint is used without MAP_FIXED (rounded down; raised to 64 KiB), a taken one is not',
  withFile(3n, (s, _vm, g) => {
    const at = freeAddress(s, 2 * K4);
    const m = s.mmap(g, { length: K4, address: at }, 'hinted at a free address');
    s.note('placed at the hint', m ? m.address === at : 'no mapping');
    s.mmap(g, { length: K4, flags: MAP_SHARED | MAP_FIXED_NOREPLACE, address: at }, 'MAP_FIXED_NOREPLACE at the hinted address');
    const n = s.mmap(g, { length: K4, address: at + 1n }, 'hinted inside the first mapping');
    s.note('a taken hint goes elsewhere', n ? n.address !== at : 'no mapping');
    const at2 = freeAddress(s, K4);
    const u = s.mmap(g, { length: K4, address: at2 + 100n }, 'hinted 100 bytes into a free page');
    s.note('an unaligned hint is rounded down', u ? u.address === at2 : 'no mapping');
    const low = s.mmap(g, { length: K4, address: K4 }, 'hinted at 4 KiB');
    s.note('a hint below mmap_min_addr is raised to 64 KiB', low ? low.address === 0x10000n : 'no mapping');
    const top = s.mmap(g, { length: 2 * K4, address: 0x7fff_ffff_f000n - BigInt(K4) }, 'hinted across the end of user space');
    s.note('a hint past user space is ignored', top ? top.address < 0x7fff_ffff_f000n - BigInt(K4) : 'no mapping');
  }),
  {
    'placed at the hint': true,
    'MAP_FIXED_NOREPLACE at the hinted address': { err: 'EEXIST', errno: 17 },
    'a taken hint goes elsewhere': true,
    'an unaligned hint is rounded down': true,
    'a hint below mmap_min_addr is raised to 64 KiB': true,
    'a hint past user space is ignored': true,
  },
);
const G1 = 1 << 30;
add(
  'mmap placement: MAP_32BIT maps below 2 GiB in a window under 1 GiB',
  withFile(3n, (s, _vm, g) => {
    for (const length of [K4, G1 / 2, G1, G1 + K4, 2 * G1]) {
      const m = s.mmap(g, { length, flags: MAP_SHARED | MAP_32BIT }, `MAP_32BIT of ${length} bytes`);
      if (m) s.note(`${length} bytes end below 2 GiB`, m.address + BigInt(length) <= 0x8000_0000n);
      m?.munmap();
    }
    const first = s.mmap(g, { length: G1 / 2, flags: MAP_SHARED | MAP_32BIT }, 'first half GiB');
    s.mmap(g, { length: G1 / 2, flags: MAP_SHARED | MAP_32BIT }, 'second half GiB');
    first?.munmap();
  }),
  {
    '4096 bytes end below 2 GiB': true,
    '536870912 bytes end below 2 GiB': true,
    'MAP_32BIT of 1073741824 bytes': { err: 'ENOMEM', errno: 12 },
    'first half GiB': { length: G1 / 2, offset: '0n' },
    'second half GiB': { err: 'ENOMEM', errno: 12 },
  },
);

// ------------------------------------------------------------------ madvise on shared and droppable anonymous memory
/** The advice values 6.18 knows (0–4, 8–25, MADV_GUARD_REMOVE), without guestmem's refusals. */
const ADVICE = [0, 1, 2, 3, 4, ...Array.from({ length: 18 }, (_, i) => 8 + i), 103];
// Why: `MAP_FIXED_NOREPLACE | MAP_ANONYMOUS` on a guest_memfd gives anonymous memory of the
// requested type. Shared anonymous memory is a shmem file: MADV_DONTNEED(_LOCKED) keeps the data,
// MADV_REMOVE punches it, MADV_FREE and MADV_WIPEONFORK are EINVAL. A droppable mapping refuses
// MADV_DOFORK/KEEPONFORK and loses its pages on MADV_PAGEOUT. The sim treated both like private
// anonymous memory.
for (const [typeName, type] of [
  ['shared', MAP_SHARED],
  ['droppable', MAP_DROPPABLE],
  ['private', MAP_PRIVATE],
] as const) {
  add(
    `anon madvise: every known advice on page 1 of a ${typeName} anonymous mapping (MAP_FIXED_NOREPLACE | MAP_ANONYMOUS), then the contents`,
    withFile(0n, (s, _vm, g) => {
      for (const advice of ADVICE) {
        const m = s.mmap(
          g,
          { length: 3 * K4, flags: type | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, address: freeAddress(s, 3 * K4) },
          `map for advice ${advice}`,
        );
        if (!m || !('madvise' in m)) continue;
        s.fill(m, 0, 3 * K4, 0x11, `fill for advice ${advice}`);
        s.madvise(m as KvmAnonMapping, K4, K4, advice, `advice ${advice}`);
        s.read(m, 0, 3 * K4, `contents after advice ${advice}`);
        m.munmap();
      }
    }),
    type === MAP_SHARED
      ? {
          'advice 4': 'ok',
          'contents after advice 4': '11*12288',
          'advice 8': EINVAL,
          'advice 9': 'ok',
          'contents after advice 9': '11*4096,00*4096,11*4096',
          'advice 18': EINVAL,
          'contents after advice 24': '11*12288',
        }
      : type === MAP_DROPPABLE
        ? {
            'advice 17': EINVAL,
            'advice 19': EINVAL,
            'contents after advice 21': '11*4096,00*4096,11*4096',
            'contents after advice 4': '11*4096,00*4096,11*4096',
          }
        : { 'advice 9': EINVAL, 'contents after advice 4': '11*4096,00*4096,11*4096' },
  );
}

// Why: MADV_POPULATE_READ needs PROT_READ and MADV_POPULATE_WRITE needs PROT_WRITE (EINVAL
// otherwise, also when the range reaches outside the mapping); the sim populated any mapping.
for (const [protName, prot] of [
  ['PROT_READ', PROT_READ],
  ['PROT_NONE', PROT_NONE],
  ['PROT_WRITE', PROT_WRITE],
] as const) {
  add(
    `anon madvise: MADV_POPULATE_READ/WRITE on a ${protName} anonymous mapping, inside and reaching outside`,
    withFile(0n, (s, _vm, g) => {
      for (const [name, advice] of [
        ['POPULATE_READ', MADV_POPULATE_READ],
        ['POPULATE_WRITE', MADV_POPULATE_WRITE],
      ] as const) {
        for (const [offset, len] of [
          [K4, K4],
          [-K4, 2 * K4],
          [2 * K4, 2 * K4],
          [3 * K4, K4],
        ] as const) {
          const m = s.mmap(
            g,
            { length: 3 * K4, prot, flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, address: freeAddress(s, 3 * K4) },
            'map',
          );
          if (m && 'madvise' in m) s.madvise(m as KvmAnonMapping, offset, len, advice, `${name} (${offset}, ${len})`);
          m?.munmap();
        }
      }
    }),
    prot === PROT_READ
      ? {
          [`POPULATE_READ (${K4}, ${K4})`]: 'ok',
          [`POPULATE_WRITE (${K4}, ${K4})`]: EINVAL,
          [`POPULATE_WRITE (${-K4}, ${2 * K4})`]: EINVAL,
        }
      : prot === PROT_WRITE
        ? { [`POPULATE_READ (${K4}, ${K4})`]: EINVAL, [`POPULATE_WRITE (${K4}, ${K4})`]: 'ok' }
        : { [`POPULATE_READ (${K4}, ${K4})`]: EINVAL, [`POPULATE_WRITE (${K4}, ${K4})`]: EINVAL },
  );
}

// ------------------------------------------------------------------ vCPU count (kvm->max_vcpus)
/** `KVM_CREATE_VCPU` on either driver (a driver-specific extra: `NativeVm.createVcpu`, `SimKvmVm.createVcpu`). */
interface VcpuFd {
  readonly fd: number;
  readonly closed: boolean;
  close(): void;
}
const createVcpu = (vm: KvmVm, id: number): VcpuFd => (vm as unknown as { createVcpu(id: number): VcpuFd }).createVcpu(id);
// Why: kvm_vm_ioctl_create_vcpu refuses `created_vcpus >= max_vcpus` (KVM_MAX_VCPUS, 1024 here, what
// KVM_CAP_MAX_VCPUS answers) with EINVAL before it looks for the id (EEXIST), and closing a vCPU fd
// does not lower the count; the sim created vCPUs without limit.
add(
  'vcpu: the 1025th vCPU of a VM is EINVAL, even for an existing id and after closing one',
  (s) => {
    const vm = s.vm();
    if (!vm) return;
    s.run('KVM_CAP_MAX_VCPUS', () => vm.checkExtension(66));
    const vcpus: VcpuFd[] = [];
    try {
      const refused = new Set<string>();
      for (let id = 0; id < 1024; id++) {
        try {
          vcpus.push(createVcpu(vm, id));
        } catch (e) {
          refused.add(`${id}: ${(e as { code?: string }).code}`);
        }
      }
      s.note('vCPUs 0–1023 created', { created: vcpus.length, refused: [...refused] });
      s.run('vCPU 1024', () => void createVcpu(vm, 1024).close());
      s.run('vCPU 4095', () => void createVcpu(vm, 4095).close());
      s.run('vCPU 4096 (id out of range)', () => void createVcpu(vm, 4096).close());
      s.run('vCPU 0 again (count before EEXIST)', () => void createVcpu(vm, 0).close());
      s.run('close vCPU 1023', () => vcpus.pop()?.close());
      s.run('vCPU 1023 after its fd closed', () => void createVcpu(vm, 1023).close());
    } finally {
      for (const v of vcpus) v.close();
    }
    s.close(vm, 'close the VM fd');
    const again = s.vm(undefined, 'a new VM');
    if (again) s.run('a new VM starts from zero', () => void createVcpu(again, 0).close());
  },
  {
    KVM_CAP_MAX_VCPUS: 1024,
    'vCPUs 0–1023 created': { created: 1024, refused: [] },
    'vCPU 1024': EINVAL,
    'vCPU 0 again (count before EEXIST)': EINVAL,
    'vCPU 1023 after its fd closed': EINVAL,
    'a new VM starts from zero': 'ok',
  },
);

// ------------------------------------------------------------------ owned mappings across the unsafe and safe APIs
const reserved = (s: Session, m: { unmapped: boolean; addressReserved: boolean } | undefined, step: string) =>
  s.note(step, m ? { unmapped: m.unmapped, addressReserved: m.addressReserved } : 'no mapping');
// Why: a slot made through the unsafe API at an owned mapping's address, then re-issued identically
// through the safe API, references the mapping from then on: the native driver pinned it, the sim
// (which returned early on "nothing to change") did not, so munmap released an address a live slot
// still pointed at.
add(
  'owned mapping: an identical safe re-issue of an unsafe slot pins the mapping until the slot is deleted',
  (s) => {
    const vm = s.vm();
    const m = s.anon(2 * K4);
    if (!vm || !m) return;
    s.region2(vm, { slot: 0, flags: 0, memorySize: 2 * K4, userspaceAddr: m.address }, 'unsafe create at the mapping');
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: 2 * K4, userspace: { mapping: m } }, 'safe identical re-issue');
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: 2 * K4, userspace: { mapping: m } }, 'safe identical re-issue again');
    s.run('munmap', () => m.munmap());
    reserved(s, m, 'after munmap');
    s.region2(vm, { slot: 0, flags: 0, memorySize: 0 }, 'delete');
    reserved(s, m, 'after delete');
  },
  {
    'safe identical re-issue': 'ok',
    'after munmap': { unmapped: true, addressReserved: true },
    'after delete': { unmapped: true, addressReserved: false },
  },
);
add(
  'owned mapping: unsafe and v1 deletes release safe reservations; two VMs release with the last',
  (s) => {
    const vm = s.vm();
    const vm2 = s.vm();
    const m = s.anon(2 * K4);
    if (!vm || !vm2 || !m) return;
    s.region2Owned(vm, { slot: 0, flags: 0, memorySize: 2 * K4, userspace: { mapping: m } }, 'vm1 slot 0');
    s.region2Owned(vm, { slot: 1, flags: 0, guestPhysAddr: 0x100000, memorySize: K4, userspace: { mapping: m, offset: K4 } }, 'vm1 slot 1');
    s.region2Owned(vm2, { slot: 0, flags: 0, memorySize: K4, userspace: { mapping: m } }, 'vm2 slot 0 (same id)');
    s.run('munmap', () => m.munmap());
    s.region2(vm, { slot: 0, flags: 0, memorySize: 0 }, 'vm1: unsafe delete of slot 0');
    reserved(s, m, 'vm1 slot 1 and vm2 slot 0 left');
    s.run('vm1: v1 delete of slot 1', () => vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0, memorySize: 0 }));
    reserved(s, m, 'vm2 slot 0 left');
    s.close(vm2, 'close vm2');
    reserved(s, m, 'none left');
  },
  {
    'vm1 slot 1 and vm2 slot 0 left': { unmapped: true, addressReserved: true },
    'vm2 slot 0 left': { unmapped: true, addressReserved: true },
    'none left': { unmapped: true, addressReserved: false },
  },
);

/** The fidelity scenarios found adversarially, in a stable order. */
export const ADVERSARIAL_SCENARIOS: readonly Scenario[] = table;
