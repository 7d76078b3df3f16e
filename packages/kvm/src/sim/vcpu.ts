/**
 * A simulated vCPU fd (`KVM_CREATE_VCPU`): its id and its reference on the VM (docs/kvm-guest-memfd.md §2.12).
 *
 * Lifetime as in the kernel: the vCPU fd holds a VM reference (`kvm_get_kvm` in
 * `kvm_vm_ioctl_create_vcpu`, dropped by `kvm_vcpu_release`), so it outlives `close()` of the VM fd
 * and keeps the VM (and its memslots) alive. The vCPU object itself stays with the VM until the VM
 * is destroyed: its id cannot be created again even after its fd is closed (EEXIST, probed).
 *
 * The simulated kernel has no instruction emulator: a SimVcpu runs no guest code. Its memory
 * accesses are the sim's guest-access path (`guest-access.ts`), the same one `SimKvmVm.guestAccess` uses.
 */
import { guestAccess, type SimGuestAccess } from './guest-access.js';
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

export class SimVcpu extends SimFdHandle {
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

  protected onClose(): void {
    this.state.put();
  }
}
