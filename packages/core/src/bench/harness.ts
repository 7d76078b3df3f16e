/**
 * A tiny benchmark harness for bulk operations: runs `fn` `reps` times (after one warm-up), each on
 * fresh state from `setup`, and reports the median ns per unit. Medians of several runs, measured
 * side by side in one process, are what we compare: these machines are noisy.
 */
export interface BenchResult {
  name: string;
  unit: string;
  /** Median over the repetitions. */
  nsPerUnit: number;
  /** Best repetition (the machine's fast mode; see docs/performance.md). */
  bestNsPerUnit?: number;
  units: number;
  reps: number;
}

export function measure<S>(
  name: string,
  units: number,
  reps: number,
  setup: () => S,
  fn: (s: S) => void,
  teardown?: (s: S) => void,
  unit = 'page',
): BenchResult {
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const s = setup();
    const t0 = process.hrtime.bigint();
    fn(s);
    const t1 = process.hrtime.bigint();
    teardown?.(s);
    if (r > 0) times.push(Number(t1 - t0));
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  return { name, unit, nsPerUnit: median / units, bestNsPerUnit: times[0]! / units, units, reps };
}

/** Formats results as a Markdown table. */
export function table(results: BenchResult[]): string {
  const rows = results.map(
    (r) => `| ${r.name} | ${r.units.toLocaleString('en-US')} | ${r.nsPerUnit.toFixed(1)} | ${r.bestNsPerUnit?.toFixed(1) ?? ''} |`,
  );
  return ['| benchmark | units | median ns/unit | best ns/unit |', '|---|---:|---:|---:|', ...rows].join('\n');
}

/** A deterministic permutation-ish sequence of indices for random lookups. */
export function randomIndices(n: number, count: number, seed = 12345): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % n;
  }
  return out;
}
