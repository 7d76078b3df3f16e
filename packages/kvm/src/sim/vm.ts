/**
 * A simulated VM fd: the VM ioctls, each delegating to the file named after its kernel object —
 * memslots (`memslots.ts`, REGION/REGION2 and the guest_memfd bind), memory attributes
 * (`memory-attributes.ts`), the VM's lifetime (`vm-state.ts`), and the sim-only guest access path
 * (`guest-access.ts`). guest_memfd creation (`kvm_gmem_create`, docs/kvm-guest-memfd.md §2.2) is here: it is the
 * VM ioctl that makes a file.
 */
import type {
  CreateGuestMemfdArgs,
  IntArg,
  KvmMapping,
  KvmVm,
  MemoryAttributesArgs,
  RawUserMemoryRegion,
  UserMemoryRegion,
  UserMemoryRegion2,
} from '../api.js';
import { resolveSlotMemory, withoutUserspace, type SlotReferencedMapping } from '../slot-memory.js';
import { u64 } from './codecs.js';
import {
  decodeKvmCreateGuestMemfd,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
  encodeKvmCreateGuestMemfd,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
} from './codecs.js';
import { SIM_BACKEND, sysErr } from './errors.js';
import { fastAccess, guestAccess, type SimGuestAccess } from './guest-access.js';
import { SimFdHandle, SimGmemFile, SimGuestMemfd } from './guest-memfd.js';
import type { SimKernel } from './kernel.js';
import { setMemoryAttributes } from './memory-attributes.js';
import { judgeV1Flags } from './memslot-rules.js';
import { judgeCreateGuestMemfd } from './guest-memfd-rules.js';
import { setMemoryRegion } from './memslots.js';
import { SimMappingBase } from './mapping-base.js';
import type { SimVmState } from './vm-state.js';
import { checkExtension } from './vm-types.js';
import { createSimVcpu, type SimVcpu } from './vcpu.js';

export { SimMemslot } from './memslot.js';
export { SimVmState } from './vm-state.js';
export { memoryFaultExit, type KvmMemoryFaultExit, type SimGuestAccess } from './guest-access.js';

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
    // kvm_gmem_create: flags first, then size (docs/kvm-guest-memfd.md §2.2 step 1); reserved[] is ignored (R1/R2).
    const refusal = judgeCreateGuestMemfd(this.state.vmType.guestMemfdFlags, size, flags);
    if (refusal)
      throw sysErr(refusal.code, 'createGuestMemfd', CREATE_GMEM, refusal.detail, {
        size: args.size,
        flags: args.flags,
        rule: refusal.rule,
      });
    const file = new SimGmemFile(this.kernel, this.state, size, flags);
    const fd = this.kernel.fds.install({ kind: 'gmem', file });
    return new SimGuestMemfd(this.kernel, fd, file);
  }

  setUserMemoryRegion(region: UserMemoryRegion): void {
    this.live('setUserMemoryRegion', SET_REGION);
    const mem = resolveSlotMemory(region, this.#owns, 'setUserMemoryRegion', SIM_BACKEND);
    this.#region1({ ...withoutUserspace(region), userspaceAddr: mem.userspaceAddr }, 'setUserMemoryRegion', mem.mapping);
  }

  setUserMemoryRegion2(region: UserMemoryRegion2): void {
    this.live('setUserMemoryRegion2', SET_REGION2);
    const mem = resolveSlotMemory(region, this.#owns, 'setUserMemoryRegion2', SIM_BACKEND);
    this.#region2({ ...withoutUserspace(region), userspaceAddr: mem.userspaceAddr }, 'setUserMemoryRegion2', mem.mapping);
  }

  unsafeSetUserMemoryRegion(region: RawUserMemoryRegion, opts: { ioctl?: 'REGION' | 'REGION2' } = {}): void {
    const v1 = opts.ioctl === 'REGION';
    this.live('unsafeSetUserMemoryRegion', v1 ? SET_REGION : SET_REGION2);
    const raw = { guestMemfdOffset: 0, guestMemfd: 0, ...region };
    if (v1) this.#region1(raw, 'unsafeSetUserMemoryRegion', undefined);
    else this.#region2(raw, 'unsafeSetUserMemoryRegion', undefined);
  }

  /** A mapping of this simulated process (the only kind a slot here may reference). */
  readonly #owns = (m: KvmMapping): m is SimMappingBase => m instanceof SimMappingBase && m.belongsTo(this.kernel);

  #region1(region: RawUserMemoryRegion, op: string, mapping: SlotReferencedMapping | undefined): void {
    const r = decodeKvmUserspaceMemoryRegion(encodeKvmUserspaceMemoryRegion(region));
    // kvm_vm_ioctl: the v1 ioctl only knows LOG_DIRTY_PAGES and READONLY (§2.6 step 2, B32).
    const v1 = judgeV1Flags(r.flags);
    if (v1) throw sysErr(v1.code, op, SET_REGION, v1.detail, { ...region, rule: v1.rule });
    setMemoryRegion(this.state, { ...r, guestMemfdOffset: 0n, guestMemfd: 0, pad1: 0, pad2: [] }, op, SET_REGION, region, mapping);
  }

  #region2(
    region: RawUserMemoryRegion & { guestMemfdOffset: IntArg; guestMemfd: IntArg },
    op: string,
    mapping: SlotReferencedMapping | undefined,
  ): void {
    const r = decodeKvmUserspaceMemoryRegion2(encodeKvmUserspaceMemoryRegion2(region));
    setMemoryRegion(this.state, r, op, SET_REGION2, region, mapping);
  }

  /** `KVM_SET_MEMORY_ATTRIBUTES`: see {@link setMemoryAttributes} in `memory-attributes.ts`. */
  setMemoryAttributes(attrs: MemoryAttributesArgs): void {
    this.live('setMemoryAttributes', 'ioctl(KVM_SET_MEMORY_ATTRIBUTES)');
    setMemoryAttributes(this.state, attrs);
  }

  /**
   * `KVM_CREATE_VCPU(id)`: a vCPU fd that pins the VM (rules in `vcpu.ts`; no instruction emulator).
   * Errors: EINVAL for an id ≥ KVM_MAX_VCPU_IDS or past KVM_MAX_VCPUS vCPUs, EEXIST for an id created before.
   */
  createVcpu(id: IntArg = 0): SimVcpu {
    this.live('createVcpu', 'ioctl(KVM_CREATE_VCPU)');
    return createSimVcpu(this.kernel, this.state, id);
  }

  protected onClose(): void {
    this.state.put();
  }

  // ------------------------------------------------------------------ sim-only: the guest's view

  /**
   * Reads guest memory as a vCPU would (upstream VMX/SVM semantics, docs/kvm-guest-memfd.md §2.8). Shorthand for
   * `guestAccess({ gpa, len })`: the access is private exactly when the gfn's attribute is PRIVATE.
   */
  guestRead(gpa: IntArg, len: number): Uint8Array {
    return fastAccess(this.state, gpa, len, false, undefined, undefined) ?? guestAccess(this.state, { gpa, len });
  }

  /** Writes guest memory as a vCPU would (see {@link guestRead}); READONLY slots give EFAULT (MMIO). */
  guestWrite(gpa: IntArg, data: Uint8Array): void {
    if (fastAccess(this.state, gpa, data.length, true, data, undefined) === undefined)
      guestAccess(this.state, { gpa, len: data.length, write: true, data });
  }

  /** One guest memory access: see {@link guestAccess} in `guest-access.ts` for the per-page rules. */
  guestAccess(args: SimGuestAccess): Uint8Array {
    return guestAccess(this.state, args);
  }

  /** The SPTEs installed for slot `id` (slot page → folio), for tests of invalidation. */
  sptesOf(id: number): ReadonlyMap<number, number> {
    return this.state.slots.get(id)?.sptes.entries() ?? new Map();
  }

  /** Sim-only: `kvm_mem_is_private(kvm, gfn)` for the page containing `gpa` (there is no "get" ioctl). */
  isPrivate(gpa: IntArg): boolean {
    return this.state.vmType.hasPrivateMem && this.state.attributes.get(Number(u64('gpa', gpa) >> 12n));
  }
}
