/**
 * Linux `_IOC` ioctl-number encoding (x86-64 / asm-generic layout) and every KVM ioctl number the
 * guest_memfd uAPI uses. The numbers are computed with the same macros the kernel headers use;
 * `ioctl.test.ts` pins each one to the literal value of `include/uapi/linux/kvm.h`.
 */

/** Bits of the command number: 8 nr, 8 type, 14 size, 2 direction (asm-generic). */
export const IOC_NRBITS = 8;
export const IOC_TYPEBITS = 8;
export const IOC_SIZEBITS = 14;
export const IOC_DIRBITS = 2;
export const IOC_NRSHIFT = 0;
export const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
export const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
export const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

/** `_IOC(dir, type, nr, size)`: returns the command as an unsigned 32-bit number. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << IOC_SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit in ${IOC_SIZEBITS} bits`);
  return ((dir << IOC_DIRSHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0;
}
/** `_IO(type, nr)`: no argument struct. */
export const _IO = (type: number, nr: number): number => _IOC(IOC_NONE, type, nr, 0);
/** `_IOR(type, nr, size)`: the kernel writes `size` bytes to userspace. */
export const _IOR = (type: number, nr: number, size: number): number => _IOC(IOC_READ, type, nr, size);
/** `_IOW(type, nr, size)`: the kernel reads `size` bytes from userspace. */
export const _IOW = (type: number, nr: number, size: number): number => _IOC(IOC_WRITE, type, nr, size);
/** `_IOWR(type, nr, size)`: both directions. */
export const _IOWR = (type: number, nr: number, size: number): number => _IOC(IOC_READ | IOC_WRITE, type, nr, size);

/** The KVM ioctl type byte. */
export const KVMIO = 0xae;

/** Struct sizes (bytes) at 6.18, re-derived from the running kernel's BTF (docs/kvm-guest-memfd.md §1.2). */
export const SIZEOF_KVM_USERSPACE_MEMORY_REGION = 32;
export const SIZEOF_KVM_USERSPACE_MEMORY_REGION2 = 160;
export const SIZEOF_KVM_MEMORY_ATTRIBUTES = 32;
export const SIZEOF_KVM_CREATE_GUEST_MEMFD = 64;
export const SIZEOF_KVM_PRE_FAULT_MEMORY = 64;
/** x86-64 vCPU structs (checked with a C `sizeof` probe on the 6.18 machine). */
export const SIZEOF_KVM_REGS = 144;
export const SIZEOF_KVM_SREGS = 312;
/** `struct kvm_run` on x86-64; the vCPU mapping (`KVM_GET_VCPU_MMAP_SIZE`, 12288 there) is larger. */
export const SIZEOF_KVM_RUN = 2352;

/** `/dev/kvm`: API version (always 12). */
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
/** `/dev/kvm`: creates a VM; the argument is the VM type. Returns the VM fd. */
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
/** `/dev/kvm` or VM fd: capability query; the argument is the capability number. */
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
/** `/dev/kvm`: size of the vCPU `kvm_run` mapping. */
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
/** VM fd: creates a vCPU; the argument is the vCPU id. */
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
/** vCPU fd: reads the general-purpose registers (`struct kvm_regs`, 144 B). */
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, SIZEOF_KVM_REGS);
/** vCPU fd: writes the general-purpose registers. */
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, SIZEOF_KVM_REGS);
/** vCPU fd: reads segment, descriptor-table and control registers (`struct kvm_sregs`, 312 B). */
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, SIZEOF_KVM_SREGS);
/** vCPU fd: writes them. */
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, SIZEOF_KVM_SREGS);
/**
 * vCPU fd: the signal mask KVM_RUN runs with (`struct kvm_signal_mask { __u32 len; __u8 sigset[]; }`,
 * the ioctl size is the 4-byte header; `len` 8 on x86-64).
 */
export const KVM_SET_SIGNAL_MASK = _IOW(KVMIO, 0x8b, 4);
/** VM fd: v1 memslot ioctl (`struct kvm_userspace_memory_region`, 32 B). */
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION);
/** VM fd: v2 memslot ioctl (`struct kvm_userspace_memory_region2`, 160 B), the only way to bind guest_memfd. */
export const KVM_SET_USER_MEMORY_REGION2 = _IOW(KVMIO, 0x49, SIZEOF_KVM_USERSPACE_MEMORY_REGION2);
/** vCPU fd: runs the vCPU; the argument must be 0. */
export const KVM_RUN = _IO(KVMIO, 0x80);
/** VM fd: sets `KVM_MEMORY_ATTRIBUTE_*` on a GPA range (`struct kvm_memory_attributes`, 32 B). */
export const KVM_SET_MEMORY_ATTRIBUTES = _IOW(KVMIO, 0xd2, SIZEOF_KVM_MEMORY_ATTRIBUTES);
/** VM fd: creates a guest_memfd (`struct kvm_create_guest_memfd`, 64 B). Returns the new fd. */
export const KVM_CREATE_GUEST_MEMFD = _IOWR(KVMIO, 0xd4, SIZEOF_KVM_CREATE_GUEST_MEMFD);
/** vCPU fd: pre-faults a GPA range (`struct kvm_pre_fault_memory`, 64 B, in/out). */
export const KVM_PRE_FAULT_MEMORY = _IOWR(KVMIO, 0xd5, SIZEOF_KVM_PRE_FAULT_MEMORY);

/** Every ioctl number above by name, for error messages (`ioctl(KVM_CREATE_GUEST_MEMFD)`). */
export const KVM_IOCTL_NAMES: ReadonlyMap<number, string> = new Map([
  [KVM_GET_API_VERSION, 'KVM_GET_API_VERSION'],
  [KVM_CREATE_VM, 'KVM_CREATE_VM'],
  [KVM_CHECK_EXTENSION, 'KVM_CHECK_EXTENSION'],
  [KVM_GET_VCPU_MMAP_SIZE, 'KVM_GET_VCPU_MMAP_SIZE'],
  [KVM_CREATE_VCPU, 'KVM_CREATE_VCPU'],
  [KVM_SET_USER_MEMORY_REGION, 'KVM_SET_USER_MEMORY_REGION'],
  [KVM_SET_USER_MEMORY_REGION2, 'KVM_SET_USER_MEMORY_REGION2'],
  [KVM_RUN, 'KVM_RUN'],
  [KVM_GET_REGS, 'KVM_GET_REGS'],
  [KVM_SET_REGS, 'KVM_SET_REGS'],
  [KVM_GET_SREGS, 'KVM_GET_SREGS'],
  [KVM_SET_SREGS, 'KVM_SET_SREGS'],
  [KVM_SET_SIGNAL_MASK, 'KVM_SET_SIGNAL_MASK'],
  [KVM_SET_MEMORY_ATTRIBUTES, 'KVM_SET_MEMORY_ATTRIBUTES'],
  [KVM_CREATE_GUEST_MEMFD, 'KVM_CREATE_GUEST_MEMFD'],
  [KVM_PRE_FAULT_MEMORY, 'KVM_PRE_FAULT_MEMORY'],
]);
