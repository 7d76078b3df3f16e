/**
 * The native driver's garbage-collection safety net (core's `guardLeak`): an fd or mapping dropped
 * without close()/munmap() is released when collected, with one warning per collection.
 *
 * A mapping that a live memslot still uses as `userspace_addr` is never unmapped by the net: the
 * address stays reserved until the slot is deleted or its VM closed, then the deferred munmap runs
 * (so no new mapping can take an address a guest can still reach).
 */
import { guardLeak, unguard } from '@guestmem/core';
import type { Libc } from './libc.js';

interface Range {
  address: bigint;
  end: bigint;
}

/** Per VM (by its driver-assigned id): slot id → the userspace range it uses. */
const slotRanges = new Map<number, Map<number, Range>>();
/** Mappings collected while a slot still used them: unmapped once no slot does. */
let deferred: Array<{ range: Range; unmap: () => void }> = [];
let nextVmId = 1;

/** A fresh id for a VM's slot bookkeeping. */
export function newVmId(): number {
  return nextVmId++;
}

function pinned(r: Range): boolean {
  for (const slots of slotRanges.values()) for (const s of slots.values()) if (s.address < r.end && r.address < s.end) return true;
  return false;
}

function retryDeferred(): void {
  if (deferred.length === 0) return;
  const still: typeof deferred = [];
  for (const d of deferred) {
    if (pinned(d.range)) still.push(d);
    else d.unmap();
  }
  deferred = still;
}

/** Records what a successful KVM_SET_USER_MEMORY_REGION(2) did to `slot`'s userspace range. */
export function noteSlot(vmId: number, slot: number, userspaceAddr: bigint, size: bigint): void {
  let slots = slotRanges.get(vmId);
  if (size === 0n) {
    slots?.delete(slot);
    retryDeferred();
    return;
  }
  if (!slots) slotRanges.set(vmId, (slots = new Map()));
  if (userspaceAddr === 0n) slots.delete(slot);
  else slots.set(slot, { address: userspaceAddr, end: userspaceAddr + size });
  retryDeferred();
}

/** The VM fd was closed: its slots no longer pin anything. */
export function forgetVmSlots(vmId: number): void {
  slotRanges.delete(vmId);
  retryDeferred();
}

/**
 * Guards an fd: closed with close(2) if `owner` is collected before {@link unguard}, after
 * `onCollected` (a VM fd drops its reference to the VM there; `onCollected` must not reference `owner`).
 */
export function guardFd(owner: object, c: Libc, fd: number, what: string, onCollected?: () => void): void {
  guardLeak(owner, {
    kind: `kvm ${what} fd`,
    what: `kvm ${what} fd ${fd}`,
    release: () => {
      onCollected?.();
      c.close(fd);
    },
  });
}

/** Guards a mapping: unmapped if `owner` is collected before {@link unguard}, unless a live slot uses it. */
export function guardMapping(owner: object, c: Libc, address: bigint, length: number, what: string): void {
  const range = { address, end: address + BigInt(length) };
  const unmap = (): void => void c.munmap(address, length);
  guardLeak(owner, {
    kind: `kvm ${what}`,
    what: `kvm ${what} at 0x${address.toString(16)} (${length} bytes)`,
    release: () => {
      if (pinned(range)) deferred.push({ range, unmap });
      else unmap();
    },
  });
}

export { unguard };
