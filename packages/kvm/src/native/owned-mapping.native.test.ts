/**
 * The stale-address bug on /dev/kvm, with a real guest store: a slot's userspace memory is unmapped
 * and something new is mapped at the same address. Through the raw-address escape hatch the guest's
 * store lands in the new mapping (why it is `unsafe`); through the safe API the address stays
 * reserved while the slot lives, so nothing new can be mapped there and the store reaches nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFds, type Kvm, type KvmGuestMemfd, type KvmMapping } from '../api.js';
import { openKvm } from '../open.js';
import { openSimKvm } from '../sim/index.js';
import { KVM_MEM_GUEST_MEMFD, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { asNativeVm, type NativeVm } from './driver.js';
import { probeNativeKvm } from './probe.js';
import { enterRealMode, runVcpu } from './vcpu.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping the stale-address regression: ${probe.reason}`);

const P = 4096;
const CODE_GPA = 0x1000;
const DATA_GPA = 0x20000;
/** mov ax, 0x2000 ; mov ds, ax ; mov byte [0], 0x5a ; hlt — one store to GPA 0x20000. */
const STORE = [0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x00, 0x5a, 0xf4];
const RW = PROT_READ | PROT_WRITE;

describe.skipIf(!probe.available)('a slot never points at memory the library gave back (real guest store)', () => {
  let kvm: Kvm;
  let before: number[];
  beforeAll(() => {
    before = openFds();
    kvm = openKvm({ driver: 'native' });
  });
  afterAll(() => {
    kvm.close();
    expect(openFds(), 'fds leaked').toEqual(before);
  });

  /** A VM running STORE from a guest_memfd slot; `dataSlot` binds slot 1 at DATA_GPA. */
  function setup(dataSlot: (vm: NativeVm) => void) {
    const vm = asNativeVm(kvm.createVm());
    const code = vm.createGuestMemfd({ size: P, flags: 3n });
    const codeMap = code.mmap({ length: P, prot: RW, flags: MAP_SHARED });
    codeMap.write(0, Uint8Array.from(STORE));
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: KVM_MEM_GUEST_MEMFD,
      guestPhysAddr: CODE_GPA,
      memorySize: P,
      userspace: { mapping: codeMap },
      guestMemfd: code.fd,
      guestMemfdOffset: 0,
    });
    dataSlot(vm);
    const run = () => {
      const vcpu = vm.createVcpu(0);
      try {
        enterRealMode(vcpu, 0, CODE_GPA);
        return runVcpu(vcpu, { maxRuns: 4, timeoutMs: 10_000 }).exits.map((e) => e.reasonName);
      } finally {
        vcpu.close();
      }
    };
    const close = (...more: Array<KvmMapping | KvmGuestMemfd | undefined>) => {
      for (const x of more) if (x && 'munmap' in x) x.munmap();
      codeMap.munmap();
      code.close();
      vm.close();
      for (const x of more) if (x && 'close' in x && !x.closed) x.close();
    };
    return { vm, code, run, close };
  }

  /** Maps anonymous memory exactly at `address` (MAP_FIXED_NOREPLACE: never replaces anything). */
  const mapAt = (g: KvmGuestMemfd, address: bigint) =>
    g.mmap({ length: P, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, address });

  it('unsafe (raw address): after munmap, memory mapped at the same address receives the guest store', () => {
    const old = kvm.mmapAnonymous(P);
    const env = setup((vm) =>
      vm.unsafeSetUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: DATA_GPA, memorySize: P, userspaceAddr: old.address }),
    );
    old.munmap();
    const fresh = mapAt(env.code, old.address);
    expect(fresh.address).toBe(old.address);
    expect(env.run()).toEqual(['KVM_EXIT_HLT']);
    // The bug the safe API prevents: the guest wrote into a mapping the slot was never given.
    expect(fresh.read(0, 1)[0]).toBe(0x5a);
    env.close(fresh);
  });

  it('safe (owned mapping): the address stays reserved, nothing can be mapped there, the store reaches nothing', () => {
    const old = kvm.mmapAnonymous(P);
    const env = setup((vm) =>
      vm.setUserMemoryRegion2({
        slot: 1,
        flags: 0,
        guestPhysAddr: DATA_GPA,
        memorySize: P,
        userspace: { mapping: old },
        guestMemfdOffset: 0,
        guestMemfd: 0,
      }),
    );
    old.munmap();
    expect([old.unmapped, old.addressReserved]).toEqual([true, true]);
    expect(() => mapAt(env.code, old.address)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    const other = kvm.mmapAnonymous(P);
    expect(other.address).not.toBe(old.address);
    // KVM cannot fault in the PROT_NONE placeholder: the store reaches no memory and comes to the
    // VMM as an MMIO exit (probed on this host), after which the guest halts.
    expect(env.run()).toEqual(['KVM_EXIT_MMIO', 'KVM_EXIT_HLT']);
    expect(other.read(0, P).every((b) => b === 0)).toBe(true);
    // Deleting the slot releases the reservation: the address can be mapped again.
    env.vm.setUserMemoryRegion2({ slot: 1, flags: 0, guestPhysAddr: DATA_GPA, memorySize: 0, guestMemfdOffset: 0, guestMemfd: 0 });
    expect(old.addressReserved).toBe(false);
    const again = mapAt(env.code, old.address);
    expect(again.address).toBe(old.address);
    env.close(other, again);
  });

  it('a mapping of another driver is refused (EINVAL) before the ioctl', () => {
    const sim = openSimKvm();
    const foreign = sim.mmapAnonymous(P);
    const vm = kvm.createVm();
    expect(() => vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: P, userspace: { mapping: foreign } })).toThrow(
      expect.objectContaining({ code: 'EINVAL', syscall: undefined }),
    );
    vm.close();
    foreign.munmap();
    sim.close();
  });
});
