/**
 * The simulated vCPU fd (`KVM_CREATE_VCPU`): no registers and no KVM_RUN (the sim has no instruction
 * emulator), only what the "wrong kind of fd" ioctls and the VM's lifetime need. `kvm_vm_ioctl_create_vcpu`
 * (virt/kvm/kvm_main.c) in order: an id ≥ KVM_MAX_VCPU_IDS (4096 on x86, `KVM_CAP_MAX_VCPU_ID`) EINVAL;
 * `created_vcpus` ≥ `max_vcpus` (1024, `KVM_CAP_MAX_VCPUS`) EINVAL; an id already created EEXIST. A
 * vCPU lives until its VM is destroyed (closing its fd does not free the id) and its file pins the VM.
 */
import type { CreateGuestMemfdArgs, IntArg, KvmGuestMemfd, KvmVcpuFd } from '../api.js';
import { u64 } from '../uapi/codec-util.js';
import { encodeKvmCreateGuestMemfd } from '../uapi/structs.js';
import { sysErr } from './errors.js';
import { SimFdHandle } from './guest-memfd.js';
import type { SimKernel } from './kernel.js';
import type { SimVmState } from './vm.js';

const KVM_MAX_VCPU_IDS = 4096n;
const KVM_MAX_VCPUS = 1024;

/** vCPU ids created per VM (`kvm->vcpu_array`): they outlive the vCPU fds. */
const createdIds = new WeakMap<SimVmState, Set<number>>();

export class SimVcpuFd extends SimFdHandle implements KvmVcpuFd {
  constructor(
    kernel: SimKernel,
    fd: number,
    readonly id: number,
    private readonly vm: SimVmState,
  ) {
    super(kernel, fd);
  }

  /** `kvm_vcpu_ioctl` → `kvm_arch_vcpu_ioctl` default: EINVAL. */
  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    u64('cap', cap);
    throw sysErr('EINVAL', 'checkExtension', 'ioctl(KVM_CHECK_EXTENSION)', 'not a vCPU ioctl', { cap });
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): KvmGuestMemfd {
    this.live('createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)');
    encodeKvmCreateGuestMemfd(args);
    throw sysErr('EINVAL', 'createGuestMemfd', 'ioctl(KVM_CREATE_GUEST_MEMFD)', 'not a vCPU ioctl', { size: args.size, flags: args.flags });
  }

  protected onClose(): void {
    // kvm_vcpu_release: the file's reference to the VM goes.
    this.vm.put();
  }
}

/** `ioctl(vm_fd, KVM_CREATE_VCPU, id)` on the VM `vm` (the caller checked its fd is live). */
export function createSimVcpu(kernel: SimKernel, vm: SimVmState, id: IntArg): SimVcpuFd {
  const n = u64('id', id);
  const fail = (code: 'EINVAL' | 'EEXIST', detail: string) => sysErr(code, 'createVcpu', 'ioctl(KVM_CREATE_VCPU)', detail, { id });
  if (n >= KVM_MAX_VCPU_IDS) throw fail('EINVAL', `id ${n} ≥ KVM_MAX_VCPU_IDS`);
  let ids = createdIds.get(vm);
  if (!ids) createdIds.set(vm, (ids = new Set()));
  if (ids.size >= KVM_MAX_VCPUS) throw fail('EINVAL', 'the VM has KVM_MAX_VCPUS vCPUs');
  if (ids.has(Number(n))) throw fail('EEXIST', `vCPU ${n} exists`);
  ids.add(Number(n));
  vm.get();
  const fd = kernel.fds.install({ kind: 'vcpu', file: {} });
  return new SimVcpuFd(kernel, fd, Number(n), vm);
}
