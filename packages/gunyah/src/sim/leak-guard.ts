/**
 * The simulated Gunyah drivers' garbage-collection safety net (core's `guardLeak`): a v17 VM,
 * guest-memory file or host mapping, or an ACK VM or CMA fd, dropped without `close()`/`unmap()` is
 * closed when collected, exactly as an explicit close would (VM teardown reclaims its bindings and frees its VMID; a file's memory goes
 * with its last reference), with one warning per collection.
 *
 * What is reachable: the object `createVm()`, `createGuestMem()` and `mmap()` return. It is a
 * handle on the device's own object (the one the device's fd table holds), so dropping the handle
 * is what makes the object collectable. An fd from the raw `ioctl()` entry point is a number only:
 * like any fd a process got from a syscall, it stays open until closed, and is not guarded.
 *
 * ACK user memory is named by its address (`AckProcess.mmap`/`munmap`), like an fd number: it lives
 * until `munmap()`, and the pages a VM pinned live with the VM.
 *
 * Never released while in use: a binding holds a reference on its guest-memory file (core's
 * reference count), and host mappings hold one too, so a dropped file handle gives its memory back
 * only once nothing binds or maps it. A vCPU obtained through a VM handle does not keep that handle
 * reachable; the simulation closes a VM's vCPUs with it (see the README), so keep the VM handle
 * for as long as you use its vCPUs.
 */
import { guardLeak, unguard } from '@guestmem/core';

/**
 * A handle on `target`: forwards every property, calls methods on `target` itself (so nothing the
 * object stores can reach the handle), and closes `target` with `release` when the handle is
 * collected before `unguard(target)`.
 */
export function guardedHandle<T extends object>(target: T, kind: string, what: string, release: (t: T) => void): T {
  // `kind` and `what` name the backend ('gunyah-sim VM fd', …): the ACK driver uses this too.
  const methods = new Map<PropertyKey, { fn: unknown; bound: unknown }>();
  const handle = new Proxy(target, {
    get(t, key) {
      const v: unknown = Reflect.get(t, key, t);
      if (typeof v !== 'function') return v;
      const hit = methods.get(key);
      if (hit?.fn === v) return hit.bound;
      const bound = (v as (...a: unknown[]) => unknown).bind(t);
      methods.set(key, { fn: v, bound });
      return bound;
    },
  });
  guardLeak(handle, { kind, what, release: () => release(target) }, target);
  targets.set(handle, target);
  return handle;
}

const targets = new WeakMap<object, object>();

/**
 * The object behind a {@link guardedHandle} (any other object as it is), for hot paths that must
 * not pay the handle's forwarding on every property. Whoever uses it must also keep the handle
 * reachable for as long as it uses the object: holding only the target lets the handle be collected
 * and the target closed under it.
 */
export function guardedTarget<T extends object>(handle: T): T {
  return (targets.get(handle) as T | undefined) ?? handle;
}

export { unguard };
