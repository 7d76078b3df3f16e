/**
 * A simulated VM fd: the VM ioctls, each delegating to the file named after its kernel object —
 * memslots (`memslots.ts`, REGION/REGION2 and the guest_memfd bind), memory attributes
 * (`memory-attributes.ts`), the VM's lifetime (`vm-state.ts`), and the sim-only guest access path
 * (`guest-access.ts`). guest_memfd creation (`kvm_gmem_create`, research §2.2) is here: it is the
 * VM ioctl that makes a file.
 */
import { PAGE_SIZE } from '@guestmem/core';
import type { CreateGuestMemfdArgs, IntArg, KvmVm, MemoryAttributesArgs, UserMemoryRegion, UserMemoryRegion2 } from '../api.js';
import { u64 } from '../uapi/codec-util.js';
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from '../uapi/constants.js';
import {
  decodeKvmCreateGuestMemfd,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
  encodeKvmCreateGuestMemfd,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
} from '../uapi/structs.js';
import { sysErr } from './errors.js';
import { guestAccess, type SimGuestAccess } from './guest-access.js';
import { SimFdHandle, SimGmemFile, SimGuestMemfd } from './guest-memfd.js';
import type { SimKernel } from './kernel.js';
import { setMemoryAttributes } from './memory-attributes.js';
import { setMemoryRegion } from './memslots.js';
import type { SimVmState } from './vm-state.js';
import { checkExtension } from './vm-types.js';

export { SimMemslot } from './memslot.js';
export { SimVmState } from './vm-state.js';
export { memoryFaultExit, type KvmMemoryFaultExit, type SimGuestAccess } from './guest-access.js';

const PAGE_MASK = BigInt(PAGE_SIZE) - 1n;
const SET_REGION = 'ioctl(KVM_SET_USER_MEMORY_REGION)';
const SET_REGION2 = 'ioctl(KVM_SET_USER_MEMORY_REGION2)';
const CREATE_GMEM = 'ioctl(KVM_CREATE_GUEST_MEMFD)';

/** A VM fd. */
export class SimKvmVm extends SimFdHandle implements KvmVm {
  constructor(
    kernel: SimKernel,
    fd: number,
    readonly state: SimVmState,
  ) {
    super(kernel, fd);
  }

  get type(): number {
    return this.state.vmType.type;
  }

  checkExtension(cap: IntArg): number {
    this.live('checkExtension', 'ioctl(KVM_CHECK_EXTENSION)');
    return checkExtension(u64('cap', cap), this.kernel.config, this.state.vmType);
  }

  createGuestMemfd(args: CreateGuestMemfdArgs): SimGuestMemfd {
    this.live('createGuestMemfd', CREATE_GMEM);
    // Encode and decode the struct exactly as it crosses into the kernel (same range errors as native).
    const { size, flags } = decodeKvmCreateGuestMemfd(encodeKvmCreateGuestMemfd(args));
    const fail = (detail: string) => sysErr('EINVAL', 'createGuestMemfd', CREATE_GMEM, detail, { size: args.size, flags: args.flags });
    // kvm_gmem_create: flags first, then size (research §2.2 step 1); reserved[] is ignored (R1/R2).
    if (flags & ~this.state.vmType.guestMemfdFlags) throw fail(`unsupported flags 0x${flags.toString(16)}`);
    if (BigInt.asIntN(64, size) <= 0n || size & PAGE_MASK) throw fail(`size ${size} must be > 0 and page-aligned`);
    const file = new SimGmemFile(this.kernel, this.state, size, flags);
    const fd = this.kernel.fds.install({ kind: 'gmem', file });
    return new SimGuestMemfd(this.kernel, fd, file);
  }

  setUserMemoryRegion(region: UserMemoryRegion): void {
    this.live('setUserMemoryRegion', SET_REGION);
    const r = decodeKvmUserspaceMemoryRegion(encodeKvmUserspaceMemoryRegion(region));
    // kvm_vm_ioctl: the v1 ioctl only knows LOG_DIRTY_PAGES and READONLY (§2.6 step 2, B32).
    if (r.flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) {
      throw sysErr('EINVAL', 'setUserMemoryRegion', SET_REGION, `flags 0x${r.flags.toString(16)} are not v1 flags`, { ...region });
    }
    setMemoryRegion(this.state, { ...r, guestMemfdOffset: 0n, guestMemfd: 0, pad1: 0, pad2: [] }, 'setUserMemoryRegion', SET_REGION, region);
  }

  setUserMemoryRegion2(region: UserMemoryRegion2): void {
    this.live('setUserMemoryRegion2', SET_REGION2);
    const r = decodeKvmUserspaceMemoryRegion2(encodeKvmUserspaceMemoryRegion2(region));
    setMemoryRegion(this.state, r, 'setUserMemoryRegion2', SET_REGION2, region);
  }

  /** `KVM_SET_MEMORY_ATTRIBUTES`: see {@link setMemoryAttributes} in `memory-attributes.ts`. */
  setMemoryAttributes(attrs: MemoryAttributesArgs): void {
    this.live('setMemoryAttributes', 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)');
    setMemoryAttributes(this.state, attrs);
  }

  protected onClose(): void {
    this.state.put();
  }

  // ------------------------------------------------------------------ sim-only: the guest's view

  /**
   * Reads guest memory as a vCPU would (upstream VMX/SVM semantics, research §2.8). Shorthand for
   * `guestAccess({ gpa, len })`: the access is private exactly when the gfn's attribute is PRIVATE.
   */
  guestRead(gpa: IntArg, len: number): Uint8Array {
    return guestAccess(this.state, { gpa, len });
  }

  /** Writes guest memory as a vCPU would (see {@link guestRead}); READONLY slots give EFAULT (MMIO). */
  guestWrite(gpa: IntArg, data: Uint8Array): void {
    guestAccess(this.state, { gpa, len: data.length, write: true, data });
  }

  /** One guest memory access: see {@link guestAccess} in `guest-access.ts` for the per-page rules. */
  guestAccess(args: SimGuestAccess): Uint8Array {
    return guestAccess(this.state, args);
  }

  /** The SPTEs installed for slot `id` (slot page → folio), for tests of invalidation. */
  sptesOf(id: number): ReadonlyMap<number, number> {
    return this.state.slots.get(id)?.sptes ?? new Map();
  }

  /** Sim-only: `kvm_mem_is_private(kvm, gfn)` for the page containing `gpa` (there is no "get" ioctl). */
  isPrivate(gpa: IntArg): boolean {
    return this.state.vmType.hasPrivateMem && this.state.attributes.get(Number(u64('gpa', gpa) >> 12n));
  }
}
