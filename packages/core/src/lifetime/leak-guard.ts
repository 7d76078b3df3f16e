/**
 * The garbage-collection safety net: an object that owns something outside the JS heap (an fd, a
 * mapping, folios in a shared allocator) registers here when it is created and unregisters when it
 * is closed. If it becomes unreachable without being closed, the registry releases what it held
 * and one `process.emitWarning` names everything released in that collection — the way Node warns
 * when it closes a `FileHandle` on garbage collection. A safety net, not a lifetime model: a VMM
 * still closes what it opens (`Hypervisor.close()` does all of it).
 *
 * The held value must not reference the registered object (it would keep it alive). An owner that
 * must outlive another (a VM's slot and the memory it points at) keeps a strong reference to it,
 * so the registry never releases memory something live still uses.
 */

/** What one registration releases. */
export interface LeakRecord {
  /** The kind, counted in the warning's summary: "kvm VM fd", "kvm guest_memfd mapping". */
  readonly kind: string;
  /** This one, for the warning's details: "kvm guest_memfd fd 12", "kvm-sim guest-memory file 3 (4 pages)". */
  readonly what: string;
  /** Releases it. Runs at most once, on collection; errors are reported in the warning, never thrown. */
  readonly release: () => void;
}

/** The warning's `code` (for `process.on('warning')` filters). */
export const LEAK_WARNING_CODE = 'GUESTMEM_RELEASED_ON_GC';

let pending: Array<{ kind: string; note: string }> = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const list = pending;
  pending = [];
  if (list.length === 0) return;
  const counts = new Map<string, number>();
  for (const { kind } of list) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  const summary = [...counts].map(([kind, n]) => `${n} × ${kind}`).join(', ');
  const notes = list.map((x) => x.note);
  const shown = notes.length > 12 ? [...notes.slice(0, 12), `… and ${notes.length - 12} more`] : notes;
  process.emitWarning(
    `guestmem released ${list.length} object(s) garbage-collected without close() (${summary}): ${shown.join('; ')}. Close what you open (Hypervisor.close() releases everything).`,
    { type: 'Warning', code: LEAK_WARNING_CODE },
  );
}

const registry = new FinalizationRegistry<LeakRecord>((rec) => {
  let note = rec.what;
  try {
    rec.release();
  } catch (e) {
    note += ` (release failed: ${e instanceof Error ? e.message : String(e)})`;
  }
  pending.push({ kind: rec.kind, note });
  if (!scheduled) {
    scheduled = true;
    // One warning per collection: every finalizer of this GC runs before the immediate.
    setImmediate(flush).unref();
  }
});

/** Counters for tests and diagnostics. */
export const leakGuardStats = { registered: 0, released: 0 };

/**
 * Registers `owner`: when it is collected without {@link unguard}, `record.release()` runs and the
 * leak is reported. `token` (default `owner`) is what {@link unguard} is called with.
 */
export function guardLeak(owner: object, record: LeakRecord, token: object = owner): void {
  leakGuardStats.registered++;
  registry.register(owner, { kind: record.kind, what: record.what, release: () => (leakGuardStats.released++, record.release()) }, token);
}

/** The owner was closed properly: nothing to release on collection. */
export function unguard(token: object): void {
  registry.unregister(token);
}
