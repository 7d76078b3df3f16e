/**
 * `pnpm bench` for @guestmem/core: PageIndex load/store/erase and GuestMemFile allocate/getFolio/punch
 * at 2^10, 2^16, 2^20 and 2^24 pages, plus metadata bytes per allocated page.
 *
 * Prints a Markdown table and a JSON line (for docs/performance.md).
 */
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { GuestMemFile } from '../file/guest-mem-file.js';
import { PageIndex } from '../page-index/page-index.js';
import { measure, randomIndices, table, type BenchResult } from './harness.js';

const P = 4096;
const SIZES = (process.env.BENCH_SIZES ?? '10,16,20,24').split(',').map(Number);
const results: BenchResult[] = [];
const ops = { backend: 'bench' };
const NO_PREPARE = { prepare: false } as const;

let sink = 0;
for (const bits of SIZES) {
  const n = 2 ** bits;
  const reps = bits >= 24 ? 3 : bits >= 20 ? 5 : 15;
  const inner = Math.max(1, Math.floor(2 ** 20 / n)); // small sizes: repeat to get measurable times

  // PageIndex
  const filled = new PageIndex();
  filled.fillAbsent(0, n, (i) => i & 0x7fffffff);
  results.push(
    measure(
      `PageIndex store (sequential) 2^${bits}`,
      n * inner,
      reps,
      () => null,
      () => {
        for (let k = 0; k < inner; k++) {
          const x = new PageIndex();
          for (let i = 0; i < n; i++) x.store(i, i);
        }
      },
    ),
  );
  results.push(
    measure(
      `PageIndex load (sequential) 2^${bits}`,
      n * inner,
      reps,
      () => null,
      () => {
        let s = 0;
        for (let k = 0; k < inner; k++) for (let i = 0; i < n; i++) s ^= filled.load(i);
        sink += s;
      },
    ),
  );
  const rnd = randomIndices(n, Math.min(n, 2 ** 20));
  results.push(
    measure(
      `PageIndex load (random) 2^${bits}`,
      rnd.length * inner,
      reps,
      () => null,
      () => {
        let s = 0;
        for (let k = 0; k < inner; k++) for (let i = 0; i < rnd.length; i++) s ^= filled.load(rnd[i]!);
        sink += s;
      },
    ),
  );
  results.push(
    measure(
      `PageIndex erase (sequential) 2^${bits}`,
      n,
      reps,
      () => {
        const x = new PageIndex();
        x.fillAbsent(0, n, (i) => i);
        return x;
      },
      (x) => {
        for (let i = 0; i < n; i++) x.erase(i);
      },
    ),
  );
  console.error(`metadata: PageIndex 2^${bits}: ${(filled.usedBytes / n).toFixed(2)} B/page`);

  // GuestMemFile (folios are allocated but not touched, so arenas stay virtual).
  const alloc = new ArenaFolioAllocator();
  results.push(
    measure(
      `GuestMemFile allocate (bulk) 2^${bits}`,
      n,
      reps,
      () => GuestMemFile.create(n * P, 0, ops, { allocator: alloc }),
      (f) => f.allocate(0, n * P),
      (f) => f.release(),
    ),
  );
  results.push(
    measure(
      `GuestMemFile punchHole (bulk) 2^${bits}`,
      n,
      reps,
      () => {
        const f = GuestMemFile.create(n * P, 0, ops, { allocator: alloc });
        f.allocate(0, n * P);
        return f;
      },
      (f) => f.punchHole(0, n * P),
      (f) => f.release(),
    ),
  );
  const f = GuestMemFile.create(n * P, 0, ops, { allocator: alloc });
  f.allocate(0, n * P);
  results.push(
    measure(
      `GuestMemFile getFolio (sequential, present) 2^${bits}`,
      n * inner,
      reps,
      () => null,
      () => {
        let s = 0;
        for (let k = 0; k < inner; k++) for (let i = 0; i < n; i++) s ^= f.getFolio(i, NO_PREPARE);
        sink += s;
      },
    ),
  );
  results.push(
    measure(
      `GuestMemFile getFolio (random, present) 2^${bits}`,
      rnd.length * inner,
      reps,
      () => null,
      () => {
        let s = 0;
        for (let k = 0; k < inner; k++) for (let i = 0; i < rnd.length; i++) s ^= f.getFolio(rnd[i]!, NO_PREPARE);
        sink += s;
      },
    ),
  );
  const meta = (f.pageIndex.usedBytes + alloc.metadataBytes) / n;
  console.error(
    `metadata: GuestMemFile 2^${bits}: index ${(f.pageIndex.usedBytes / n).toFixed(2)} + allocator ${(alloc.metadataBytes / n).toFixed(2)} = ${meta.toFixed(2)} B/page`,
  );
  results.push({ name: `metadata bytes per allocated page 2^${bits}`, unit: 'B', nsPerUnit: meta, units: n, reps: 1 });
  f.release();
}

// Acceptance rows: bulk allocate and punch of 1 GiB (262,144 pages) on one shared allocator.
{
  const n = 2 ** 18;
  const alloc = new ArenaFolioAllocator();
  results.push(
    measure(
      'GuestMemFile allocate 1 GiB (bulk)',
      n,
      15,
      () => GuestMemFile.create(n * P, 0, ops, { allocator: alloc }),
      (f) => f.allocate(0, n * P),
      (f) => f.release(),
    ),
  );
  results.push(
    measure(
      'GuestMemFile punchHole 1 GiB (bulk)',
      n,
      15,
      () => {
        const f = GuestMemFile.create(n * P, 0, ops, { allocator: alloc });
        f.allocate(0, n * P);
        return f;
      },
      (f) => f.punchHole(0, n * P),
      (f) => f.release(),
    ),
  );
}

// Flatness of sequential lookups: every size measured in the same round, 2^20 lookups each, so
// all sizes see the same machine mode; the spread is taken per round, then the median round.
const flat: Array<{ bits: number; f: GuestMemFile; idx: PageIndex }> = [];
const flatAlloc = new ArenaFolioAllocator();
for (const bits of SIZES) {
  const n = 2 ** bits;
  const f = GuestMemFile.create(n * P, 0, ops, { allocator: flatAlloc });
  f.allocate(0, n * P);
  flat.push({ bits, f, idx: f.pageIndex });
}
const LOOKUPS = 2 ** 20;
const rounds: Array<Record<string, number>> = [];
for (let r = 0; r < 21; r++) {
  const row: Record<string, number> = {};
  for (const { bits, f, idx } of flat) {
    const n = 2 ** bits;
    const start = n > LOOKUPS ? ((r * 7919 * 4096) % (n - LOOKUPS)) & ~63 : 0;
    for (const [kind, lookup] of [
      ['load', (i: number) => idx.load(i)],
      ['getFolio', (i: number) => f.getFolio(i, NO_PREPARE)],
    ] as const) {
      let s = 0;
      const t0 = process.hrtime.bigint();
      for (let done = 0; done < LOOKUPS; ) {
        const end = Math.min(n, start + (LOOKUPS - done));
        for (let i = start; i < end; i++) s ^= lookup(i);
        done += end - start;
      }
      row[`${kind} 2^${bits}`] = Number(process.hrtime.bigint() - t0) / LOOKUPS;
      sink += s;
    }
  }
  if (r > 0) rounds.push(row);
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const kind of ['load', 'getFolio']) {
  const spreads = rounds.map((row) => {
    const v = SIZES.map((b) => row[`${kind} 2^${b}`]!);
    return Math.max(...v) / Math.min(...v);
  });
  for (const bits of SIZES) {
    const v = rounds.map((row) => row[`${kind} 2^${bits}`]!);
    results.push({
      name: `sequential ${kind === 'load' ? 'PageIndex.load' : 'GuestMemFile.getFolio'} (interleaved rounds) 2^${bits}`,
      unit: 'page',
      nsPerUnit: med(v),
      bestNsPerUnit: Math.min(...v),
      units: LOOKUPS,
      reps: rounds.length,
    });
  }
  console.error(
    `flatness: sequential ${kind}: max/min across sizes ${SIZES.map((b) => `2^${b}`).join(', ')} — median round ${med(spreads).toFixed(2)}×`,
  );
}
for (const { f } of flat) f.release();

console.log(table(results));
console.log('JSON ' + JSON.stringify({ date: new Date().toISOString(), sink: sink % 2, results }));
