/**
 * The caller's user address space, as far as ioctls that carry a user pointer need it
 * (`gunyah_fn_desc.arg`). A test places bytes with {@link UserMemory.put} and passes the returned
 * address; `copy_from_user` of anything else is EFAULT, as in the kernel.
 */
export class UserMemory {
  private readonly regions = new Map<bigint, Uint8Array>();
  /** Next free address; starts high and page-aligned so it never looks like a small integer. */
  private next = 0x7f00_0000_0000n;

  /** Copies `bytes` into the simulated user address space and returns their address. */
  put(bytes: Uint8Array): bigint {
    const at = this.next;
    this.regions.set(at, Uint8Array.from(bytes));
    this.next += BigInt(Math.max(4096, Math.ceil(bytes.length / 4096) * 4096));
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
