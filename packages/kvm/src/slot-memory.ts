/**
 * The owned-mapping rule of the safe memslot API, shared by both drivers so they refuse identically:
 * a slot's userspace memory is a mapping this driver made plus a byte offset, never a raw address.
 *
 * While a slot references a mapping, the mapping's address range stays reserved: `munmap()` replaces
 * the memory with an inaccessible `PROT_NONE` placeholder (the mapping object reads as unmapped, its
 * memory and any file reference are released) and the placeholder is removed when the last slot
 * referencing the range is deleted or its VM is destroyed. So the address is never handed out again
 * while a live slot points at it, and a guest access through the slot faults (EFAULT) instead of
 * reaching unrelated memory. Why a placeholder rather than EBUSY: `munmap()` keeps working in any
 * teardown order (mappings before slots, as `Hypervisor.close()` and test fixtures do it), and a
 * slot that outlives its VM fd (a vCPU or a guest_memfd still pins the VM) needs no explicit step.
 */
import { GuestMemError } from '@guestmem/core';
import type { IntArg, KvmMapping, UserMemoryRegion } from './api.js';

const PAGE = 4096n;

/** A driver's mapping that memslots can reference. @internal */
export interface SlotReferencedMapping extends KvmMapping {
  /** A slot now references this mapping's range. */
  pinForSlot(): void;
  /** A slot that referenced this mapping's range is gone (deleted, or its VM destroyed). */
  unpinForSlot(): void;
}

/** What {@link resolveSlotMemory} found: the `userspace_addr` to pass and the mapping to pin. */
export interface SlotMemory<M> {
  readonly userspaceAddr: bigint;
  readonly mapping: M | undefined;
}

/**
 * `region.userspace` → `userspace_addr`, checked before any syscall: the mapping must come from this
 * driver (`own`), must not be unmapped (EFAULT), and `[offset, offset + memorySize)` must lie inside
 * its mapped pages (EINVAL), so the slot can never reach memory the mapping does not own. Without
 * `userspace`, `userspace_addr` is 0 (no host memory; KVM accepts it).
 */
export function resolveSlotMemory<M extends SlotReferencedMapping>(
  region: UserMemoryRegion,
  own: (m: KvmMapping) => m is M,
  op: string,
  backend: string,
): SlotMemory<M> {
  const mem = region.userspace;
  if (mem === undefined || mem === null) return { userspaceAddr: 0n, mapping: undefined };
  const fail = (code: 'EINVAL' | 'EFAULT', detail: string) =>
    new GuestMemError({ code, op, backend, detail, info: { slot: region.slot, userspaceOffset: mem.offset ?? 0 } });
  if (!own(mem.mapping)) throw fail('EINVAL', 'userspace.mapping was not made by this driver');
  if (mem.mapping.unmapped) throw fail('EFAULT', 'userspace.mapping was unmapped');
  const offset = exactNonNegative(mem.offset ?? 0);
  if (offset === undefined) throw fail('EINVAL', `userspace.offset ${String(mem.offset)} is not a non-negative integer`);
  const mapped = ((BigInt(mem.mapping.length) + PAGE - 1n) / PAGE) * PAGE;
  // A size the struct encoder refuses is left to it (same error on both drivers).
  const size = exactNonNegative(region.memorySize) ?? 0n;
  if (offset + size > mapped) {
    throw fail('EINVAL', `[${offset}, +${size}) reaches past the ${mapped}-byte mapping (the slot would point at memory it does not own)`);
  }
  return { userspaceAddr: mem.mapping.address + offset, mapping: mem.mapping };
}

/** `v` when it is an exact integer in [0, 2^64), else undefined. */
function exactNonNegative(v: IntArg): bigint | undefined {
  if (typeof v === 'bigint') return v >= 0n && v < 1n << 64n ? v : undefined;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined;
}

/** The region's numeric fields (what error `info` and the struct encoder see), without `userspace`. */
export function withoutUserspace<R extends UserMemoryRegion>(region: R): Omit<R, 'userspace'> {
  const { userspace: _, ...rest } = region;
  return rest;
}
