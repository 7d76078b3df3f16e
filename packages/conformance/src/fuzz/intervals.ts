/**
 * A value per integer key over the whole 64-bit domain, stored as sorted disjoint runs (the model's
 * own structure, independent of core's RangeStateMap, which the backends use).
 */
export interface Run<V> {
  s: bigint;
  e: bigint;
  v: V;
}

export class IntervalMap<V> {
  private runs: Run<V>[] = [];
  constructor(readonly fallback: V) {}

  get(x: bigint): V {
    for (const r of this.runs) if (x >= r.s && x < r.e) return r.v;
    return this.fallback;
  }

  /** Sets `[s, e)` to `v`. */
  set(s: bigint, e: bigint, v: V): void {
    if (s >= e) return;
    const out: Run<V>[] = [];
    for (const r of this.runs) {
      if (r.e <= s || r.s >= e) out.push(r);
      else {
        if (r.s < s) out.push({ s: r.s, e: s, v: r.v });
        if (r.e > e) out.push({ s: e, e: r.e, v: r.v });
      }
    }
    if (v !== this.fallback) out.push({ s, e, v });
    out.sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
    const merged: Run<V>[] = [];
    for (const r of out) {
      const last = merged[merged.length - 1];
      if (last && last.e === r.s && last.v === r.v) last.e = r.e;
      else merged.push({ ...r });
    }
    this.runs = merged;
  }

  /** The runs covering `[s, e)`, gaps included (with the fallback value), clipped to the range. */
  runsIn(s: bigint, e: bigint): Run<V>[] {
    const out: Run<V>[] = [];
    let at = s;
    for (const r of this.runs) {
      if (r.e <= at || r.s >= e) continue;
      if (r.s > at) out.push({ s: at, e: r.s, v: this.fallback });
      const lo = r.s > at ? r.s : at;
      const hi = r.e < e ? r.e : e;
      out.push({ s: lo, e: hi, v: r.v });
      at = hi;
    }
    if (at < e) out.push({ s: at, e, v: this.fallback });
    return out;
  }

  /** Every key where the value changes (run starts and ends), for spot checks. */
  edges(): bigint[] {
    return this.runs.flatMap((r) => [r.s, r.e]);
  }
}
