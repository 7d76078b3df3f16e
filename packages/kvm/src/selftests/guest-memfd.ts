/**
 * The Linux 6.18 KVM selftests about guest_memfd, ported to the uAPI of `api.ts` so they run on any
 * driver: `guest_memfd_test.c` (docs/kvm-guest-memfd.md §3.1), the guest_memfd cases of `set_memory_region_test.c`
 * that apply to a default VM (§3.2), and the REGION2 binding rows of §2.6.
 *
 * Where the C test only asserts "fails", these assert the errno the 6.18 kernel gives. SIGBUS is a
 * `HostAccessFault` thrown by the mapping accessors. This is a test-definition module (it calls
 * vitest's `describe`/`it`), not a test file: a `*.test.ts` of each driver calls
 * {@link defineGuestMemfdSelftests}.
 */
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Kvm, KvmGuestMemfd, KvmMapping, KvmVm, OtherFd } from '../api.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_MULTI_ADDRESS_SPACE,
  KVM_CAP_VM_TYPES,
  KVM_EXIT_HLT,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_USER_MEM_SLOTS,
  KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  kvmSlot,
} from '../uapi/constants.js';
import { asNativeVm } from '../native/driver.js';
import { enterRealMode, runVcpu } from '../native/vcpu.js';

const PAGE = 4096;
const KEEP = FALLOC_FL_KEEP_SIZE;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const MMAP = GUEST_MEMFD_FLAG_MMAP;
const SHARED = GUEST_MEMFD_FLAG_INIT_SHARED;
const RW = PROT_READ | PROT_WRITE;
const MiB = 1024 * 1024;

/** Expects `fn` to throw a GuestMemError with `code` (and returns it). */
export function expectErrno(fn: () => unknown, code: string): GuestMemError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(GuestMemError);
  expect((caught as GuestMemError).code).toBe(code);
  return caught as GuestMemError;
}

/** Expects a HostAccessFault (the kernel's SIGBUS) at file offset `offset`. */
function expectSigbus(fn: () => unknown, offset: bigint): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a HostAccessFault (SIGBUS)').toBeInstanceOf(HostAccessFault);
  expect((caught as HostAccessFault).code).toBe('SIGBUS');
  expect((caught as HostAccessFault).offset).toBe(offset);
}

function flagsName(flags: bigint): string {
  const parts = [flags & MMAP ? 'MMAP' : '', flags & SHARED ? 'INIT_SHARED' : ''].filter(Boolean);
  return parts.length ? parts.join('|') : '0';
}

function filled(len: number, byte: number): Uint8Array {
  return new Uint8Array(len).fill(byte);
}

/** test_guest_memfd_guest: where the guest's code and the guest_memfd page sit (real mode: below 1 MiB). */
const GUEST_CODE_GPA = 0x1000;
const GUEST_GMEM_GPA = 0x10000;
/** Port the guest writes 1 to after every byte checked 0xaa, or the index of the first bad byte (16-bit) to. */
const PORT_CHECKED = 0x10;
const PORT_BAD = 0x11;

/**
 * The guest of test_guest_memfd_guest, 16-bit real mode, loaded at 0000:1000 (hand-assembled):
 * ```
 * 1000 b8 00 10     mov ax, 0x1000        ; DS = ES = 0x1000 → GPA 0x10000
 * 1003 8e d8        mov ds, ax
 * 1005 8e c0        mov es, ax
 * 1007 31 f6        xor si, si
 * 1009 b9 00 10     mov cx, 4096
 * 100c 80 3c aa     cmp byte [si], 0xaa   ; check every byte
 * 100f 75 12        jne bad (1023)
 * 1011 46           inc si
 * 1012 e2 f8        loop 100c
 * 1014 b0 01        mov al, 1
 * 1016 e6 10        out 0x10, al          ; "all 0xaa"
 * 1018 31 ff        xor di, di
 * 101a b9 00 10     mov cx, 4096
 * 101d b0 ff        mov al, 0xff
 * 101f fc           cld
 * 1020 f3 aa        rep stosb             ; memset(page, 0xff, 4096)
 * 1022 f4           hlt                   ; GUEST_DONE
 * 1023 89 f0  bad:  mov ax, si
 * 1025 e7 11        out 0x11, ax          ; index of the first byte that is not 0xaa
 * 1027 f4           hlt
 * ```
 */
const GUEST_MEMFD_GUEST_CODE = Uint8Array.from([
  0xb8, 0x00, 0x10, 0x8e, 0xd8, 0x8e, 0xc0, 0x31, 0xf6, 0xb9, 0x00, 0x10, 0x80, 0x3c, 0xaa, 0x75, 0x12, 0x46, 0xe2, 0xf8, 0xb0, 0x01, 0xe6,
  0x10, 0x31, 0xff, 0xb9, 0x00, 0x10, 0xb0, 0xff, 0xfc, 0xf3, 0xaa, 0xf4, 0x89, 0xf0, 0xe7, 0x11, 0xf4,
]);

/**
 * The native half of test_guest_memfd_guest: loads the guest through `loadCode`, runs one vCPU
 * (at most 4 KVM_RUNs of at most 10 s each) and asserts its exits: `out 0x10 ← 1`, then `hlt`.
 */
function runGuestMemfdGuest(vm: KvmVm, loadCode: (code: Uint8Array) => void): void {
  loadCode(GUEST_MEMFD_GUEST_CODE);
  const vcpu = asNativeVm(vm).createVcpu(0);
  enterRealMode(vcpu, 0, GUEST_CODE_GPA);
  let ran: ReturnType<typeof runVcpu>;
  try {
    ran = runVcpu(vcpu, { maxRuns: 4, timeoutMs: 10_000 });
  } finally {
    vcpu.close();
  }
  const { exits, exhausted } = ran;
  expect(exhausted).toBe(false);
  expect(exits.map((e) => e.reasonName)).toEqual(['KVM_EXIT_IO', 'KVM_EXIT_HLT']);
  const io = exits[0]!.io;
  const bad = io?.port === PORT_BAD ? `byte ${io.data[0]! | (io.data[1]! << 8)} was not 0xaa` : 'the guest did not report';
  expect(io, bad).toEqual({
    direction: 'out',
    size: 1,
    port: PORT_CHECKED,
    count: 1,
    dataOffset: exits[0]!.io!.dataOffset,
    data: Uint8Array.of(1),
  });
  expect(exits[1]!.reason).toBe(KVM_EXIT_HLT);
}

/**
 * Closes whatever a test opened, in reverse order, skipping what the test closed itself, so a
 * failing assertion does not leak fds or mappings into the next test.
 */
class Resources {
  private items: Array<{ closed?: boolean; unmapped?: boolean; close?(): void; munmap?(): void }> = [];
  track<T extends { closed?: boolean; unmapped?: boolean; close?(): void; munmap?(): void }>(r: T): T {
    this.items.push(r);
    return r;
  }
  release(): void {
    for (const r of this.items.reverse()) {
      if (r.munmap && !r.unmapped) r.munmap();
      if (r.close && !r.closed) r.close();
    }
    this.items = [];
  }
}

/**
 * Defines the ported selftests as vitest suites. `openKvm` is called once per suite; every suite
 * checks that the fds it leaves open (`Kvm.openFds()`) are the fds it found.
 */
export function defineGuestMemfdSelftests(openKvm: () => Kvm): void {
  /** One suite with its own Kvm, resource tracking and an fd-leak check. */
  function suite(name: string, body: (ctx: { kvm: () => Kvm; res: Resources }) => void): void {
    describe(name, () => {
      let kvm: Kvm;
      let before: number[];
      const res = new Resources();
      beforeAll(() => {
        kvm = openKvm();
        before = kvm.openFds();
      });
      afterEach(() => res.release());
      afterAll(() => {
        res.release();
        const after = kvm.openFds();
        kvm.close();
        expect(after, 'fds leaked by the suite').toEqual(before);
      });
      body({ kvm: () => kvm, res });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // guest_memfd_test.c
  // ---------------------------------------------------------------------------------------------
  suite('guest_memfd_test.c', ({ kvm, res }) => {
    const newVm = (type = KVM_X86_DEFAULT_VM): KvmVm => res.track(kvm().createVm(type));
    const gmem = (vm: KvmVm, size: number | bigint, flags: bigint): KvmGuestMemfd => res.track(vm.createGuestMemfd({ size, flags }));
    const map = (f: KvmGuestMemfd, length: number, flags = MAP_SHARED, prot = RW): KvmMapping =>
      res.track(f.mmap({ length, prot, flags, offset: 0 }));

    /** main(): every VM type of KVM_CAP_VM_TYPES (default only when the bitmap is 0). */
    const vmTypes = (): number[] => {
      const bitmap = kvm().checkExtension(KVM_CAP_VM_TYPES);
      const types = [...Array(32).keys()].filter((t) => bitmap & (1 << t));
      return types.length ? types : [KVM_X86_DEFAULT_VM];
    };
    /** test_guest_memfd(type): flags 0, MMAP if supported, MMAP|INIT_SHARED if supported. */
    const flagVariants = (vm: KvmVm): bigint[] => {
      const valid = BigInt(vm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS));
      const out = [0n];
      if (valid & MMAP) out.push(MMAP);
      if (valid & MMAP && valid & SHARED) out.push(MMAP | SHARED);
      return out;
    };
    const total = 4 * PAGE;

    it('test_guest_memfd_flags: each bit 0..63 creates iff KVM_CAP_GUEST_MEMFD_FLAGS has it, else EINVAL', () => {
      for (const type of vmTypes()) {
        const vm = newVm(type);
        const valid = BigInt(vm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS));
        for (let bit = 0n; bit < 64n; bit++) {
          const flag = 1n << bit;
          if (valid & flag) vm.createGuestMemfd({ size: PAGE, flags: flag }).close();
          else expectErrno(() => vm.createGuestMemfd({ size: PAGE, flags: flag }), 'EINVAL');
        }
        vm.close();
      }
    });

    it('GUEST_MEMFD_FLAGS answers MMAP|INIT_SHARED on the system fd and a default VM (6.18)', () => {
      expect(kvm().checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(3);
      expect(newVm().checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(3);
    });

    it('test_create_guest_memfd_multiple: sizes 4096 and 8192, distinct inodes, first unchanged', () => {
      const vm = newVm();
      const a = gmem(vm, PAGE, 0n);
      const statA = a.fstat();
      expect(statA.size).toBe(4096n);
      const b = gmem(vm, 2 * PAGE, 0n);
      const statB = b.fstat();
      expect(statB.size).toBe(8192n);
      expect(a.fstat()).toEqual(statA);
      expect(statA.ino).not.toBe(statB.ino);
    });

    it('reserved[] is not checked by KVM_CREATE_GUEST_MEMFD', () => {
      const vm = newVm();
      const f = res.track(vm.createGuestMemfd({ size: PAGE, flags: 0n, reserved: [1, 2, 3, 4, 5, -1] }));
      expect(f.fstat().size).toBe(4096n);
    });

    for (const variant of ['0', 'MMAP', 'MMAP|INIT_SHARED'] as const) {
      const pick = (vm: KvmVm): bigint | undefined => flagVariants(vm).find((f) => flagsName(f) === variant);
      /** A fresh 4-page file of this variant, or undefined when the VM does not offer the flags. */
      const fresh = (): { vm: KvmVm; f: KvmGuestMemfd } | undefined => {
        const vm = newVm();
        const flags = pick(vm);
        return flags === undefined ? undefined : { vm, f: gmem(vm, total, flags) };
      };

      describe(`__test_guest_memfd(flags=${variant})`, () => {
        it('test_create_guest_memfd_invalid_sizes: sizes 1..4095 give EINVAL (and 0, -4096, 2^63)', () => {
          const vm = newVm();
          const flags = pick(vm);
          if (flags === undefined) return;
          for (let size = 1; size < PAGE; size++) {
            expectErrno(() => vm.createGuestMemfd({ size, flags }), 'EINVAL');
          }
          for (const size of [0n, -4096n, 1n << 63n]) expectErrno(() => vm.createGuestMemfd({ size, flags }), 'EINVAL');
        });

        it('test_file_read_write: read/write EINVAL, pread/pwrite ESPIPE; lseek ESPIPE, ftruncate EINVAL', () => {
          const t = fresh();
          if (!t) return;
          const { f } = t;
          const e = expectErrno(() => f.read(64), 'EINVAL');
          expect(e.syscall).toBe('read');
          expectErrno(() => f.write(filled(64, 1)), 'EINVAL');
          expectErrno(() => f.read(0), 'EINVAL');
          expectErrno(() => f.pread(64, 0), 'ESPIPE');
          expectErrno(() => f.pwrite(filled(64, 1), 0), 'ESPIPE');
          for (const whence of [SEEK_SET, SEEK_CUR, SEEK_END]) expectErrno(() => f.lseek(0, whence), 'ESPIPE');
          for (const len of [0, total, 2 * total]) expectErrno(() => f.ftruncate(len), 'EINVAL');
          expect(f.fstat().size).toBe(BigInt(total));
        });

        if (variant === 'MMAP|INIT_SHARED') {
          it('test_mmap_supported: memset 0xaa, punch page 0 reads 0, refill reads 0xaa', () => {
            const t = fresh();
            if (!t) return;
            const m = map(t.f, total);
            m.fill(0, total, 0xaa);
            expect(m.read(0, total)).toEqual(filled(total, 0xaa));
            t.f.fallocate(PUNCH, 0, PAGE);
            expect(m.read(0, PAGE)).toEqual(filled(PAGE, 0));
            expect(m.read(PAGE, total - PAGE)).toEqual(filled(total - PAGE, 0xaa));
            m.fill(0, PAGE, 0xaa);
            expect(m.read(0, total)).toEqual(filled(total, 0xaa));
          });

          it('test_fault_overflow: memset over 4x the file SIGBUSes at EOF, bytes before it stay', () => {
            const t = fresh();
            if (!t) return;
            const m = map(t.f, 4 * total);
            expectSigbus(() => m.fill(0, 4 * total, 0xaa), BigInt(total));
            expectSigbus(() => m.read(total, 1), BigInt(total));
            expectSigbus(() => m.write(total - 2, filled(4, 0xbb)), BigInt(total));
            const head = m.read(0, total);
            expect(head.subarray(0, total - 2)).toEqual(filled(total - 2, 0xaa));
            expect(head.subarray(total - 2)).toEqual(filled(2, 0xbb));
          });

          it('first host read of a page is zero', () => {
            const t = fresh();
            if (!t) return;
            t.f.fallocate(KEEP, 0, total);
            expect(map(t.f, total).read(0, total)).toEqual(filled(total, 0));
          });

          it('a mapping keeps the file alive after close(fd)', () => {
            const t = fresh();
            if (!t) return;
            const m = map(t.f, total);
            m.fill(PAGE, PAGE, 0x5a);
            t.f.close();
            expect(m.read(PAGE, PAGE)).toEqual(filled(PAGE, 0x5a));
            m.munmap();
            expectErrno(() => m.read(0, 1), 'EFAULT');
            m.munmap();
          });
        }

        if (variant === 'MMAP') {
          it('test_fault_private: every page SIGBUSes, read or write, even after fallocate', () => {
            const t = fresh();
            if (!t) return;
            const m = map(t.f, total);
            expectSigbus(() => m.fill(0, total, 0xaa), 0n);
            expectSigbus(() => m.read(0, 1), 0n);
            t.f.fallocate(KEEP, 0, total);
            expectSigbus(() => m.read(2 * PAGE, 8), BigInt(2 * PAGE));
            expectSigbus(() => m.write(PAGE, filled(1, 1)), BigInt(PAGE));
          });
        }

        if (variant !== '0') {
          it('test_mmap_cow: MAP_PRIVATE gives EINVAL', () => {
            const t = fresh();
            if (!t) return;
            const e = expectErrno(() => t.f.mmap({ length: total, prot: RW, flags: MAP_PRIVATE }), 'EINVAL');
            expect(e.syscall).toBe('mmap');
          });
        } else {
          it('test_mmap_not_supported: mmap of a file without MMAP gives ENODEV', () => {
            const t = fresh();
            if (!t) return;
            expectErrno(() => t.f.mmap({ length: PAGE, prot: RW, flags: MAP_SHARED }), 'ENODEV');
            expectErrno(() => t.f.mmap({ length: total, prot: RW, flags: MAP_SHARED }), 'ENODEV');
          });
        }

        it('test_file_size: st_size 16384, st_blksize 4096 (st_blocks 0, mode 0100600)', () => {
          const t = fresh();
          if (!t) return;
          const st = t.f.fstat();
          expect(st.size).toBe(BigInt(total));
          expect(st.blksize).toBe(PAGE);
          expect(st.blocks).toBe(0n);
          expect(st.mode).toBe(0o100600);
          t.f.fallocate(KEEP, 0, total);
          expect(t.f.fstat().blocks).toBe(0n);
        });

        it('test_fallocate: the nine steps (failures are EINVAL)', () => {
          const t = fresh();
          if (!t) return;
          const { f } = t;
          f.fallocate(KEEP, 0, total); // (1)
          expectErrno(() => f.fallocate(PUNCH, PAGE - 1, PAGE), 'EINVAL'); // (2)
          expectErrno(() => f.fallocate(KEEP, total, PAGE), 'EINVAL'); // (3)
          expectErrno(() => f.fallocate(KEEP, total + PAGE, PAGE), 'EINVAL'); // (4)
          f.fallocate(PUNCH, total, PAGE); // (5)
          f.fallocate(PUNCH, total + PAGE, PAGE); // (6)
          expectErrno(() => f.fallocate(PUNCH, PAGE, PAGE - 1), 'EINVAL'); // (7)
          f.fallocate(PUNCH, PAGE, PAGE); // (8)
          f.fallocate(KEEP, PAGE, PAGE); // (9)
        });

        it('test_invalid_punch_hole: unaligned (offset, len) pairs give EINVAL', () => {
          const t = fresh();
          if (!t) return;
          const cases: Array<[number, number]> = [
            [0, 1],
            [0, PAGE - 1],
            [0, PAGE + 1],
            [1, 1],
            [1, PAGE - 1],
            [1, PAGE],
            [1, PAGE + 1],
            [PAGE, 1],
            [PAGE, PAGE - 1],
            [PAGE, PAGE + 1],
          ];
          for (const [off, len] of cases) {
            const e = expectErrno(() => t.f.fallocate(PUNCH, off, len), 'EINVAL');
            expect(e.syscall).toBe('fallocate');
          }
        });
      });
    }

    it('fallocate VFS/guest_memfd mode checks: EOPNOTSUPP without KEEP_SIZE or with other modes; EINVAL for len 0', () => {
      const vm = newVm();
      const f = gmem(vm, total, 0n);
      expectErrno(() => f.fallocate(0, 0, PAGE), 'EOPNOTSUPP');
      expectErrno(() => f.fallocate(FALLOC_FL_PUNCH_HOLE, 0, PAGE), 'EOPNOTSUPP');
      expectErrno(() => f.fallocate(0x10 | KEEP, 0, PAGE), 'EOPNOTSUPP');
      expectErrno(() => f.fallocate(KEEP, 0, 0), 'EINVAL');
      expectErrno(() => f.fallocate(KEEP, -PAGE, PAGE), 'EINVAL');
    });

    it('mmap argument errors: PROT_EXEC EPERM (before ENODEV), length 0 and unaligned offset EINVAL, EOVERFLOW', () => {
      const vm = newVm();
      const shared = gmem(vm, total, MMAP | SHARED);
      const plain = gmem(vm, total, 0n);
      expectErrno(() => shared.mmap({ length: PAGE, prot: PROT_READ | 4, flags: MAP_SHARED }), 'EPERM');
      expectErrno(() => plain.mmap({ length: PAGE, prot: PROT_READ | 4, flags: MAP_SHARED }), 'EPERM');
      expectErrno(() => shared.mmap({ length: 0, prot: RW, flags: MAP_SHARED }), 'EINVAL');
      expectErrno(() => shared.mmap({ length: PAGE, prot: RW, flags: MAP_SHARED, offset: 1 }), 'EINVAL');
      // file_mmap_ok(): offset + length must stay within MAX_LFS_FILESIZE (2^63 - 1), else EOVERFLOW.
      expectErrno(() => shared.mmap({ length: PAGE, prot: RW, flags: MAP_SHARED, offset: -PAGE }), 'EOVERFLOW');
      expectErrno(() => shared.mmap({ length: PAGE, prot: RW, flags: MAP_SHARED, offset: 0x7ffffffffffff000n }), 'EOVERFLOW');
      res.track(shared.mmap({ length: PAGE, prot: RW, flags: MAP_SHARED, offset: 0x7fffffffffffe000n }));
      // A mapping starting past EOF is fine; touching it is SIGBUS.
      const m = res.track(shared.mmap({ length: PAGE, prot: PROT_READ, flags: MAP_SHARED, offset: 1024 * 1024 }));
      expectSigbus(() => m.read(0, 1), 1024n * 1024n);
    });

    it('the guest_memfd file pins its VM: it stays usable after the VM fd is closed', () => {
      const vm = kvm().createVm();
      const f = gmem(vm, total, MMAP | SHARED);
      vm.close();
      f.fallocate(KEEP, 0, total);
      const m = map(f, total);
      m.fill(0, total, 7);
      f.fallocate(PUNCH, 0, total);
      expect(m.read(0, total)).toEqual(filled(total, 0));
    });

    it('a closed handle answers EBADF without reusing the fd number', () => {
      const vm = newVm();
      const f = vm.createGuestMemfd({ size: PAGE, flags: 0n });
      f.close();
      expect(f.closed).toBe(true);
      expectErrno(() => f.close(), 'EBADF');
      expectErrno(() => f.fstat(), 'EBADF');
      expectErrno(() => f.fallocate(KEEP, 0, PAGE), 'EBADF');
    });

    /**
     * test_guest_memfd_guest. On the native driver a real vCPU runs a few bytes of real-mode code;
     * the sim has no instruction emulator, so there the same accesses go through its guest-access
     * path (`SimKvmVm.guestRead/guestWrite`, as in `sim.test.ts`).
     *
     * Deviations from the C test, both forced by real mode and by the probe host (docs/kvm-guest-memfd.md §0.2):
     * - the guest_memfd slot sits at GPA 0x10000, not 4 GiB (real mode reaches only the first MiB);
     * - `userspace_addr` is the guest_memfd's own mapping instead of NULL, and that mapping stays
     *   mapped while the guest runs: on PVM every guest access is emulated through `userspace_addr`
     *   (with NULL the guest's first read is a KVM_EXIT_MMIO there). The host still checks the 0xff
     *   through a second, fresh mapping, as the C test does after munmap.
     */
    it('test_guest_memfd_guest: host fills 0xaa, the guest checks every byte and writes 0xff, the host sees 0xff', () => {
      const vm = newVm();
      expect(vm.checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS) & 3).toBe(3);
      const f = gmem(vm, PAGE, MMAP | SHARED);
      const host = map(f, PAGE);
      vm.setUserMemoryRegion2({
        slot: 1,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: GUEST_GMEM_GPA,
        memorySize: PAGE,
        userspace: { mapping: host },
        guestMemfd: f.fd,
        guestMemfdOffset: 0,
      });
      host.fill(0, PAGE, 0xaa);
      if (kvm().driver === 'native') {
        runGuestMemfdGuest(vm, (code) => {
          // The code page is a guest_memfd slot too (slot 0): nothing but guest_memfd backs this guest.
          const cf = gmem(vm, PAGE, MMAP | SHARED);
          const cm = map(cf, PAGE);
          cm.write(0, code);
          vm.setUserMemoryRegion2({
            slot: 0,
            flags: KVM_MEM_GUEST_MEMFD,
            guestPhysAddr: GUEST_CODE_GPA,
            memorySize: PAGE,
            userspace: { mapping: cm },
            guestMemfd: cf.fd,
            guestMemfdOffset: 0,
          });
        });
      } else {
        const sim = vm as KvmVm & { guestRead(gpa: number, len: number): Uint8Array; guestWrite(gpa: number, d: Uint8Array): void };
        expect(sim.guestRead(GUEST_GMEM_GPA, PAGE)).toEqual(filled(PAGE, 0xaa));
        sim.guestWrite(GUEST_GMEM_GPA, filled(PAGE, 0xff));
      }
      host.munmap();
      expect(map(f, PAGE).read(0, PAGE)).toEqual(filled(PAGE, 0xff));
    });
  });

  // ---------------------------------------------------------------------------------------------
  // set_memory_region_test.c (guest_memfd parts, default VM) and the REGION2 rows of docs/kvm-guest-memfd.md §2.6
  // ---------------------------------------------------------------------------------------------
  suite('set_memory_region_test.c + KVM_SET_USER_MEMORY_REGION2 binding rules', ({ kvm, res }) => {
    const SLOT = 10;
    const GPA = 0xc0000000n;
    const SIZE = 2 * MiB;
    const newVm = (): KvmVm => res.track(kvm().createVm());
    /** The C test's VM: a KVM_X86_SW_PROTECTED_VM when KVM_CAP_VM_TYPES offers it, else the default VM. */
    const cTestVm = (): KvmVm =>
      res.track(
        kvm().createVm(
          kvm().checkExtension(KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM) ? KVM_X86_SW_PROTECTED_VM : KVM_X86_DEFAULT_VM,
        ),
      );
    const gmem = (vm: KvmVm, size: number, flags = 0n): KvmGuestMemfd => res.track(vm.createGuestMemfd({ size, flags }));
    const other = (kind: 'memfd' | 'devnull'): OtherFd => res.track(kvm().openOtherFd(kind));
    const bind = (vm: KvmVm, slot: number, gpa: bigint, size: number, fd: number, offset: number | bigint = 0) =>
      vm.setUserMemoryRegion2({
        slot,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: gpa,
        memorySize: size,
        guestMemfdOffset: offset,
        guestMemfd: fd,
      });
    const del = (vm: KvmVm, slot: number) =>
      vm.setUserMemoryRegion2({ slot, flags: 0, guestPhysAddr: 0, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });

    it('test_invalid_memory_region_flags: unsupported and v2-only bits give EINVAL via v1 and v2', () => {
      const vm = cTestVm();
      const attrs = BigInt(vm.checkExtension(KVM_CAP_MEMORY_ATTRIBUTES));
      let supported = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;
      if (attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE) supported |= KVM_MEM_GUEST_MEMFD;
      const v2Only = KVM_MEM_GUEST_MEMFD;
      // The C test passes fd 0 (stdin): any open fd that is not a guest_memfd takes the same path.
      const notGmem = other('devnull').fd;
      for (let bit = 0; bit < 32; bit++) {
        const flag = (1 << bit) >>> 0;
        if (supported & flag && !(v2Only & flag)) continue;
        expectErrno(() => vm.setUserMemoryRegion({ slot: 0, flags: flag, guestPhysAddr: 0, memorySize: SIZE }), 'EINVAL');
        if (supported & flag) continue;
        expectErrno(
          () =>
            vm.setUserMemoryRegion2({
              slot: 0,
              flags: flag,
              guestPhysAddr: 0,
              memorySize: SIZE,
              guestMemfdOffset: 0,
              guestMemfd: notGmem,
            }),
          'EINVAL',
        );
      }
    });

    it('GUEST_MEMFD|LOG_DIRTY_PAGES and GUEST_MEMFD|READONLY give EINVAL even with a valid guest_memfd', () => {
      const vm = newVm();
      const f = gmem(vm, SIZE);
      for (const extra of [KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY]) {
        expectErrno(
          () =>
            vm.setUserMemoryRegion2({
              slot: SLOT,
              flags: KVM_MEM_GUEST_MEMFD | extra,
              guestPhysAddr: GPA,
              memorySize: SIZE,
              guestMemfdOffset: 0,
              guestMemfd: f.fd,
            }),
          'EINVAL',
        );
      }
      bind(vm, SLOT, GPA, SIZE, f.fd);
    });

    it('test_add_private_memory_region (SW_PROTECTED where offered, else default VM): wrong fds give EINVAL, offsets 1..4095 EINVAL, offset 0 binds', () => {
      const vm = cTestVm();
      const otherVm = cTestVm();
      const f = gmem(vm, SIZE);
      const foreign = gmem(otherVm, SIZE);
      for (const fd of [kvm().fd, vm.fd, other('memfd').fd, foreign.fd]) {
        expectErrno(() => bind(vm, SLOT, GPA, SIZE, fd), 'EINVAL');
      }
      bind(vm, SLOT, GPA, SIZE, f.fd);
      del(vm, SLOT);
      for (let off = 1; off < PAGE; off++) expectErrno(() => bind(vm, SLOT, GPA, SIZE, f.fd, off), 'EINVAL');
      bind(vm, SLOT, GPA, SIZE, f.fd, 0);
    });

    it('test_add_overlapping_private_memory_regions: GPA overlap gives EEXIST', () => {
      const vm = cTestVm();
      const f = gmem(vm, 4 * SIZE);
      bind(vm, SLOT, 0xc0000000n, 2 * SIZE, f.fd, 0);
      bind(vm, SLOT + 1, 0x180000000n, 2 * SIZE, f.fd, 2 * SIZE);
      del(vm, SLOT);
      expectErrno(() => bind(vm, SLOT, 0x17fe00000n, 2 * SIZE, f.fd, 0), 'EEXIST');
      expectErrno(() => bind(vm, SLOT, 0x180200000n, 2 * SIZE, f.fd, 0), 'EEXIST');
    });

    it('GPA overlap gives EEXIST before the guest_memfd is looked at (fd -1)', () => {
      const vm = newVm();
      const f = gmem(vm, SIZE);
      bind(vm, SLOT, GPA, SIZE, f.fd);
      expectErrno(() => bind(vm, SLOT + 1, GPA + BigInt(PAGE), PAGE, -1), 'EEXIST');
      expectErrno(() => bind(vm, SLOT + 1, GPA + BigInt(SIZE), PAGE, -1), 'EBADF');
    });

    it('overlapping guest_memfd ranges give EINVAL; adjacent ranges bind', () => {
      const vm = newVm();
      const f = gmem(vm, 4 * PAGE);
      bind(vm, 1, 0x100000n, 2 * PAGE, f.fd, 0);
      expectErrno(() => bind(vm, 2, 0x200000n, 2 * PAGE, f.fd, PAGE), 'EINVAL');
      expectErrno(() => bind(vm, 2, 0x200000n, PAGE, f.fd, 0), 'EINVAL');
      bind(vm, 2, 0x200000n, 2 * PAGE, f.fd, 2 * PAGE);
    });

    it('bind errors: closed fd EBADF, offset range EINVAL, slot id and address space EINVAL', () => {
      const vm = newVm();
      const f = gmem(vm, 4 * PAGE);
      const closed = vm.createGuestMemfd({ size: 4 * PAGE, flags: 0n });
      const closedFd = closed.fd;
      closed.close();
      expectErrno(() => bind(vm, SLOT, GPA, PAGE, closedFd), 'EBADF');
      expectErrno(() => bind(vm, SLOT, GPA, 2 * PAGE, f.fd, 3 * PAGE), 'EINVAL');
      expectErrno(() => bind(vm, SLOT, GPA, PAGE, f.fd, 4 * PAGE), 'EINVAL');
      expectErrno(() => bind(vm, SLOT, GPA, 8 * PAGE, f.fd, 0), 'EINVAL');
      expectErrno(() => bind(vm, KVM_USER_MEM_SLOTS, GPA, PAGE, f.fd), 'EINVAL');
      if (kvm().checkExtension(KVM_CAP_MULTI_ADDRESS_SPACE) <= 1) {
        expectErrno(() => bind(vm, kvmSlot(1, SLOT), GPA, PAGE, f.fd), 'EINVAL');
      }
      expectErrno(() => bind(vm, SLOT, GPA + 1n, PAGE, f.fd), 'EINVAL');
      expectErrno(() => bind(vm, SLOT, GPA, PAGE + 1, f.fd), 'EINVAL');
      expectErrno(() => del(vm, SLOT), 'EINVAL');
    });

    it('the v1 ioctl refuses KVM_MEM_GUEST_MEMFD with EINVAL', () => {
      const vm = newVm();
      expectErrno(() => vm.setUserMemoryRegion({ slot: SLOT, flags: KVM_MEM_GUEST_MEMFD, guestPhysAddr: GPA, memorySize: PAGE }), 'EINVAL');
    });

    it('a guest_memfd slot is immutable: even an identical re-issue gives EINVAL; delete works', () => {
      const vm = newVm();
      const f = gmem(vm, SIZE);
      bind(vm, SLOT, GPA, SIZE, f.fd);
      expectErrno(() => bind(vm, SLOT, GPA, SIZE, f.fd), 'EINVAL');
      del(vm, SLOT);
      bind(vm, SLOT, GPA, SIZE, f.fd);
    });

    it('an offset of 0x7ffffffffffff000 is accepted by 6.18 (signed overflow), refused upstream', () => {
      const vm = newVm();
      const f = gmem(vm, 4 * PAGE);
      const call = () => bind(vm, 0, 0x100000n, 4 * PAGE, f.fd, 0x7ffffffffffff000n);
      if (kvm().profile === 'upstream') expectErrno(call, 'EINVAL');
      else call();
    });

    it('data survives memslot delete and rebind (unbind frees nothing)', () => {
      const vm = newVm();
      const f = gmem(vm, 4 * PAGE, MMAP | SHARED);
      const m = res.track(f.mmap({ length: 4 * PAGE, prot: RW, flags: MAP_SHARED }));
      m.fill(PAGE, PAGE, 0x3c);
      vm.setUserMemoryRegion2({
        slot: SLOT,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: GPA,
        memorySize: 4 * PAGE,
        userspace: { mapping: m },
        guestMemfdOffset: 0,
        guestMemfd: f.fd,
      });
      del(vm, SLOT);
      expect(m.read(PAGE, PAGE)).toEqual(filled(PAGE, 0x3c));
      vm.setUserMemoryRegion2({
        slot: SLOT,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: GPA,
        memorySize: 4 * PAGE,
        userspace: { mapping: m },
        guestMemfdOffset: 0,
        guestMemfd: f.fd,
      });
      expect(m.read(PAGE, PAGE)).toEqual(filled(PAGE, 0x3c));
      expect(m.read(0, PAGE)).toEqual(filled(PAGE, 0));
    });

    it('a dup keeps the binding live; after the last close the slot is an orphan (EEXIST, EINVAL, deletable)', () => {
      const vm = newVm();
      const f = gmem(vm, SIZE);
      bind(vm, SLOT, GPA, SIZE, f.fd);
      const d = res.track(f.dup());
      f.close();
      // The binding is still live through the dup: the same file range cannot be bound again.
      expectErrno(() => bind(vm, SLOT + 1, GPA + BigInt(SIZE), SIZE, d.fd), 'EINVAL');
      d.close();
      expectErrno(() => bind(vm, SLOT + 1, GPA, PAGE, -1), 'EEXIST');
      expectErrno(() => bind(vm, SLOT, GPA, SIZE, -1), 'EINVAL');
      del(vm, SLOT);
      expectErrno(() => del(vm, SLOT), 'EINVAL');
    });

    it('KVM_SET_MEMORY_ATTRIBUTES on a default VM fails (ENOTTY without the config, EINVAL with it)', () => {
      const vm = newVm();
      let caught: unknown;
      try {
        vm.setMemoryAttributes({ address: GPA, size: PAGE, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(GuestMemError);
      expect(['ENOTTY', 'EINVAL']).toContain((caught as GuestMemError).code);
      expect((caught as GuestMemError).syscall).toBe('ioctl(KVM_SET_MEMORY_ATTRIBUTES)');
    });
  });
}
