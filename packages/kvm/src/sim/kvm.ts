import type { FolioStats } from '@guestmem/core';
import type { CreateGuestMemfdArgs, IntArg, Kvm, KvmGuestMemfd, KvmProfile, OtherFd, OtherFdKind } from '../api.js';
import { encodeKvmCreateGuestMemfd, u64 } from './codecs.js';
import { sysErr } from './errors.js';
import { SimFdHandle } from './guest-memfd.js';
import { SimKernel, type SimKernelOptions } from './kernel.js';
import { SimKvmVm } from './vm.js';
import { SimVmState } from './vm-state.js';
import { SimAnonMapping } from './anon-memory.js';
import { checkExtension, offeredVmType } from './vm-types.js';
import { TASK_SIZE } from './address-space.js';

/** What a simulated kernel holds right now (sim-only introspection for lifetime and leak tests). */
export interface SimKvmStats {
  /** VMs alive (a VM fd or a guest_memfd file still pins them). */
  readonly vms: number;
  /** guest_memfd files not yet released. */
  readonly guestMemfds: number;
  /** Host mappings not yet unmapped. */
  readonly mappings: number;
  /** Open fds, including 0–2. */
  readonly fds: number;
  /** The folio allocator's accounting (bytes in use ≈ `Unevictable`). */
  readonly memory: FolioStats;
}

/** The simulated `/dev/kvm` fd of its own {@link SimKernel}. */
export class SimKvm extends SimFdHandle implements Kvm {
  readonly driver = 'sim' as const;

  constructor(kernel: SimKernel) {
    super(kernel, kernel.fds.install({ kind: 'kvm', file: {} }));
  }

  get profile(): KvmProfile {
    return this.kernel.profile;
  }

  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    return checkExtension(u64('cap', cap), this.kernel.config);
  }

  createVm(type: IntArg = 0): SimKvmVm {
    this.live('createVm', 'ioctl(KVM_CREATE_VM)');
    const t = u64('type', type);
    const vmType = t < 64n ? offeredVmType(this.kernel.config, Number(t)) : undefined;
    // kvm_arch_init_vm: a type missing from KVM_CAP_VM_TYPES is EINVAL (probe: types 1–5 on this host;
    // type 1 only exists with CONFIG_KVM_SW_PROTECTED_VM, see SimKernelConfig).
    if (!vmType) throw sysErr('EINVAL', 'createVm', 'ioctl(KVM_CREATE_VM)', `VM type ${t} is not supported`, { type });
    const state = new SimVmState(this.kernel, vmType);
    const fd = this.kernel.fds.install({ kind: 'vm', file: state });
    return new SimKvmVm(this.kernel, fd, state);
  }

  /** `kvm_dev_ioctl` → `kvm_arch_dev_ioctl` default: EINVAL (the struct is encoded, never read). */
  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    encodeKvmCreateGuestMemfd(args);
    throw sysErr('EINVAL', 'createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)', 'not a system ioctl', {
      size: args.size,
      flags: args.flags,
    });
  }

  openOtherFd(kind: OtherFdKind): OtherFd {
    this.live('openOtherFd', kind === 'memfd' ? 'memfd_create' : 'open');
    const fd = this.kernel.fds.install({ kind, file: {} });
    return new SimOtherFd(this.kernel, fd, kind);
  }

  /**
   * Sim-only: `mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`, ordinary
   * host memory whose `address` is usable as a memslot's `userspaceAddr` — the shared side of a
   * private-memory VM's guest_memfd slots (see {@link SimAnonMapping}). Not tied to this fd: it
   * lives until `munmap()`. Errors: EINVAL for length 0, ENOMEM when the address space is full.
   */
  mmapAnonymous(length: IntArg): SimAnonMapping {
    const len = u64('length', length);
    if (len === 0n) throw sysErr('EINVAL', 'mmapAnonymous', 'mmap', 'length 0', { length });
    const alen = (len + 4095n) & ~4095n;
    if (alen > TASK_SIZE || len > BigInt(Number.MAX_SAFE_INTEGER))
      throw sysErr('ENOMEM', 'mmapAnonymous', 'mmap', 'length exceeds the user address space', { length });
    return this.kernel.addressSpace.map(alen, (address) => new SimAnonMapping(this.kernel, address, Number(len)));
  }

  openFds(): number[] {
    return this.kernel.fds.list();
  }

  /** Sim-only: what the kernel holds right now. */
  stats(): SimKvmStats {
    return {
      vms: this.kernel.vms.size,
      guestMemfds: this.kernel.liveGuestMemfds,
      mappings: this.kernel.addressSpace.size,
      fds: this.kernel.fds.list().length,
      memory: this.kernel.allocator.stats(),
    };
  }

  protected onClose(): void {
    // Closing /dev/kvm does not affect VMs: each VM fd pins its VM on its own.
  }
}

class SimOtherFd extends SimFdHandle implements OtherFd {
  constructor(
    kernel: SimKernel,
    fd: number,
    readonly kind: OtherFdKind,
  ) {
    super(kernel, fd);
  }

  /** A memfd or /dev/null has no KVM ioctls: ENOTTY (probed). */
  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    u64('cap', cap);
    throw sysErr('ENOTTY', 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', `a ${this.kind} has no KVM ioctls`, { cap });
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    encodeKvmCreateGuestMemfd(args);
    throw sysErr('ENOTTY', 'createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)', `a ${this.kind} has no KVM ioctls`, {
      size: args.size,
      flags: args.flags,
    });
  }

  protected onClose(): void {}
}

/** Opens the system fd of a fresh simulated kernel (its own fd table, address space and memory). */
export function openSimKvm(opts: SimKernelOptions = {}): SimKvm {
  return new SimKvm(new SimKernel(opts));
}
