/**
 * The caller's user address space, as far as ioctls that carry a user pointer need it
 * (`gunyah_fn_desc.arg`). A test places bytes with {@link UserMemory.put} and passes the returned
 * address; `copy_from_user` of anything else is EFAULT, as in the kernel.
 */
export class UserMemory {
  private readonly regions = new Map<bigint, Uint8Array>();
  /** Next free address; starts high and page-aligned so it never looks like a small integer. */
  private next = 0x7f00_0000_0000n;

  /**
   * Copies `bytes` into the simulated user address space and returns their address. The bytes get
   * whole pages of their own (zero after them), as user memory is mapped in pages; the page after
   * them is unmapped.
   */
  put(bytes: Uint8Array): bigint {
    const at = this.next;
    const pages = Math.max(1, Math.ceil(bytes.length / 4096));
    const region = new Uint8Array(pages * 4096);
    region.set(bytes);
    this.regions.set(at, region);
    this.next += BigInt((pages + 1) * 4096);
    return at;
  }

  /** `copy_from_user(len bytes at ptr)`: the bytes, or undefined (EFAULT) when not all mapped. */
  read(ptr: bigint, len: number): Uint8Array | undefined {
    if (len === 0) return new Uint8Array(0);
    for (const [base, bytes] of this.regions) {
      if (ptr >= base && ptr + BigInt(len) <= base + BigInt(bytes.length)) {
        const off = Number(ptr - base);
        return bytes.slice(off, off + len);
      }
    }
    return undefined;
  }
}
