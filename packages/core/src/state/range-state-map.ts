/**
 * A per-page state map with change listeners — e.g. shared/private per guest page, the thing QEMU
 * (`RamBlockAttributes`) and Cloud Hypervisor had to build themselves.
 *
 * Stored run-length encoded (sorted boundaries), so a 16 GiB guest that is all shared costs one run.
 * A lookup is O(log runs); a change is O(log runs + runs touched) plus an array splice, O(runs) in
 * the worst case. Keys are page numbers (any unit the owner picks: guest frame numbers or file
 * pages) in `[0, limit)`.
 */

/** The read side of a {@link RangeStateMap}: what a VM hands out, so only its backend changes state. */
export interface ReadonlyRangeStateMap<S> {
  readonly initial: S;
  readonly limit: number;
  /** State of page `p`. */
  get(p: number): S;
  /** Maximal runs intersecting `[first, end)`, clipped to it. */
  runs(first?: number, end?: number): StateRun<S>[];
  /** True when every page of `[first, end)` has `state`. */
  isUniform(first: number, end: number, state: S): boolean;
  /** Pages in `[first, end)` with `state`. */
  count(state: S, first?: number, end?: number): number;
  /** Number of runs (a measure of fragmentation). */
  readonly runCount: number;
  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(l: StateListener<S>): () => void;
}

/** One change: `[first, end)` went from `from` to `to`. Listeners get one event per maximal run. */
export interface StateChange<S> {
  readonly first: number;
  readonly end: number;
  readonly from: S;
  readonly to: S;
}

export type StateListener<S> = (change: StateChange<S>) => void;

/** A maximal run of equal state. */
export interface StateRun<S> {
  readonly first: number;
  readonly end: number;
  readonly state: S;
}

export class RangeStateMap<S> implements ReadonlyRangeStateMap<S> {
  /** Run starts, ascending; `starts[0] === 0`. */
  private starts: number[] = [0];
  private states: S[];
  private listeners = new Set<StateListener<S>>();

  constructor(
    readonly initial: S,
    readonly limit: number = 2 ** 52,
  ) {
    this.states = [initial];
  }

  /** State of page `p`. */
  get(p: number): S {
    return this.states[this.runAt(p)]!;
  }

  /**
   * Sets `[first, end)` to `state`. Listeners are called after the map is updated, once per run
   * that actually changed. Returns the changes.
   */
  set(first: number, end: number, state: S): StateChange<S>[] {
    if (!(Number.isInteger(first) && Number.isInteger(end) && first >= 0 && end <= this.limit && first <= end)) {
      throw new RangeError(`bad range [${first}, ${end}) for a state map of ${this.limit} pages`);
    }
    if (first === end) return [];
    const changes: StateChange<S>[] = [];
    for (const run of this.runs(first, end)) {
      if (run.state !== state) changes.push({ first: run.first, end: run.end, from: run.state, to: state });
    }
    if (changes.length === 0) return changes;
    this.split(first);
    if (end < this.limit) this.split(end);
    const i0 = this.runAt(first);
    const i1 = end < this.limit ? this.runAt(end) : this.starts.length;
    this.starts.splice(i0, i1 - i0, first);
    this.states.splice(i0, i1 - i0, state);
    this.merge(i0);
    for (const c of changes) for (const l of this.listeners) l(c);
    return changes;
  }

  /** The end of the maximal run holding page `p` (the first page after it with another state, or `limit`). */
  runEnd(p: number): number {
    const i = this.runAt(p) + 1;
    return i < this.starts.length ? this.starts[i]! : this.limit;
  }

  /** Maximal runs intersecting `[first, end)`, clipped to it. */
  runs(first = 0, end = this.limit): StateRun<S>[] {
    const out: StateRun<S>[] = [];
    for (let i = this.runAt(first); i < this.starts.length && this.starts[i]! < end; i++) {
      const runEnd = i + 1 < this.starts.length ? this.starts[i + 1]! : this.limit;
      out.push({ first: Math.max(first, this.starts[i]!), end: Math.min(end, runEnd), state: this.states[i]! });
    }
    return out;
  }

  /** True when every page of `[first, end)` has `state`. */
  isUniform(first: number, end: number, state: S): boolean {
    return this.runs(first, end).every((r) => r.state === state);
  }

  /** Pages in `[first, end)` with `state`. */
  count(state: S, first = 0, end = this.limit): number {
    return this.runs(first, end).reduce((n, r) => n + (r.state === state ? r.end - r.first : 0), 0);
  }

  /** Number of runs (a measure of fragmentation). */
  get runCount(): number {
    return this.starts.length;
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(l: StateListener<S>): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private runAt(p: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= p) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private split(p: number): void {
    const i = this.runAt(p);
    if (this.starts[i] === p) return;
    this.starts.splice(i + 1, 0, p);
    this.states.splice(i + 1, 0, this.states[i]!);
  }

  private merge(i: number): void {
    if (i + 1 < this.starts.length && this.states[i + 1] === this.states[i]) {
      this.starts.splice(i + 1, 1);
      this.states.splice(i + 1, 1);
    }
    if (i > 0 && this.states[i - 1] === this.states[i]) {
      this.starts.splice(i, 1);
      this.states.splice(i, 1);
    }
  }
}
