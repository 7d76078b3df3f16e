/**
 * A simulated vCPU fd (`KVM_CREATE_VCPU`): its id, its reference on the VM (docs/kvm-guest-memfd.md §2.12) and the
 * KVM ioctls a VMM may issue on it by mistake (`KvmIoctlTarget`).
 *
 * `kvm_vm_ioctl_create_vcpu` (virt/kvm/kvm_main.c), in order: an id ≥ KVM_MAX_VCPU_IDS (4096 on
 * x86, `KVM_CAP_MAX_VCPU_ID`) EINVAL; `created_vcpus` ≥ `max_vcpus` (1024, `KVM_CAP_MAX_VCPUS`)
 * EINVAL; an id already created EEXIST.
 *
 * Lifetime as in the kernel: the vCPU fd holds a VM reference (`kvm_get_kvm` in
 * `kvm_vm_ioctl_create_vcpu`, dropped by `kvm_vcpu_release`), so it outlives `close()` of the VM fd
 * and keeps the VM (and its memslots) alive. The vCPU object itself stays with the VM until the VM
 * is destroyed: its id cannot be created again even after its fd is closed (EEXIST, probed).
 *
 * The simulated kernel has no instruction emulator: a SimVcpu runs no guest code (no registers, no
 * KVM_RUN). Its memory accesses are the sim's guest-access path (`guest-access.ts`), the same one
 * `SimKvmVm.guestAccess` uses.
 */
import type { CreateGuestMemfdArgs, IntArg, KvmGuestMemfd, KvmVcpuFd } from '../api.js';
import { encodeKvmCreateGuestMemfd, u64 } from './codecs.js';
import { sysErr } from './errors.js';
import { guestAccess, guestTouch, type SimGuestAccess, type SimGuestTouch } from './guest-access.js';
import { SimFdHandle } from './guest-memfd.js';
import type { SimKernel } from './kernel.js';
import type { SimVmState } from './vm-state.js';

/** `KVM_MAX_VCPU_IDS` of the probe machine (`KVM_CAP_MAX_VCPU_ID` answers 4096; id 4096 is EINVAL, probed). */
export const KVM_MAX_VCPU_IDS = 4096;
/**
 * `KVM_MAX_VCPUS` of the probe machine (`KVM_CAP_MAX_VCPUS` answers 1024): `kvm->max_vcpus`. The
 * kernel counts `kvm->created_vcpus`, which closing a vCPU fd does not lower (the vCPU lives until
 * the VM is destroyed), so the 1025th KVM_CREATE_VCPU of a VM is EINVAL (probed).
 */
export const KVM_MAX_VCPUS = 1024;

export class SimVcpu extends SimFdHandle implements KvmVcpuFd {
  constructor(
    kernel: SimKernel,
    fd: number,
    /** The vCPU id passed to KVM_CREATE_VCPU. */
    readonly id: number,
    readonly state: SimVmState,
  ) {
    super(kernel, fd);
    // Why: the vCPU file pins its VM, like a guest_memfd file does.
    state.get();
  }

  /** One guest memory access made by this vCPU (see `guestAccess` in `guest-access.ts`). */
  guestAccess(args: SimGuestAccess): Uint8Array {
    this.live('guestAccess', 'ioctl(KVM_RUN)');
    return guestAccess(this.state, args);
  }

  /** A guest touching pages, made by this vCPU (see `guestTouch` in `guest-access.ts`). */
  guestTouch(args: SimGuestTouch): { at: bigint; error?: unknown } {
    this.live('guestAccess', 'ioctl(KVM_RUN)');
    return guestTouch(this.state, args);
  }

  /** `kvm_vcpu_ioctl` → `kvm_arch_vcpu_ioctl` default: EINVAL. */
  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    u64('cap', cap);
    throw sysErr('EINVAL', 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', 'not a vCPU ioctl', { cap });
  }

  /** Not a vCPU ioctl either: EINVAL (after the argument struct is encoded, as the native driver does). */
  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    encodeKvmCreateGuestMemfd(args);
    throw sysErr('EINVAL', 'createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)', 'not a vCPU ioctl', { size: args.size, flags: args.flags });
  }

  protected onClose(): void {
    // kvm_vcpu_release: the file's reference to the VM goes.
    this.state.put();
  }
}

/** `ioctl(vm_fd, KVM_CREATE_VCPU, id)` on the VM `state` (the caller checked its fd is live). */
export function createSimVcpu(kernel: SimKernel, state: SimVmState, id: IntArg): SimVcpu {
  const n = u64('id', id);
  const fail = (code: 'EINVAL' | 'EEXIST', detail: string) => sysErr(code, 'createVcpu', 'ioctl(KVM_CREATE_VCPU)', detail, { id });
  if (n >= BigInt(KVM_MAX_VCPU_IDS)) throw fail('EINVAL', `vCPU id ${n} is not below ${KVM_MAX_VCPU_IDS}`);
  if (state.vcpuIds.size >= KVM_MAX_VCPUS) throw fail('EINVAL', `the VM has KVM_MAX_VCPUS (${KVM_MAX_VCPUS}) vCPUs`);
  if (state.vcpuIds.has(Number(n))) throw fail('EEXIST', `vCPU ${n} exists`);
  state.vcpuIds.add(Number(n));
  const fd = kernel.fds.install({ kind: 'vcpu', file: state });
  return new SimVcpu(kernel, fd, Number(n), state);
}
