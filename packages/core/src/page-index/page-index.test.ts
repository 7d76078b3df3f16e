import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PageIndex, type EntryOrder, type MarkBit } from './page-index.js';

const RUNS = Number(process.env.FC_RUNS ?? 1000);

/** Reference model: a Map from covered index to {base, value, order, marks}. */
class ModelIndex {
  entries = new Map<number, { value: number; order: EntryOrder; marks: Set<number> }>(); // by base
  private baseOf(i: number): number | undefined {
    if (this.entries.has(i) && this.entries.get(i)!.order === 0) return i;
    const b9 = i - (i % 512);
    const e = this.entries.get(b9);
    if (e && e.order === 9) return b9;
    if (this.entries.has(i)) return i;
    return undefined;
  }
  load(i: number): number {
    const b = this.baseOf(i);
    return b === undefined ? -1 : this.entries.get(b)!.value;
  }
  eraseRange(first: number, end: number): void {
    if (first >= end) return; // an empty range touches nothing
    for (const [b, e] of [...this.entries]) {
      const span = e.order === 9 ? 512 : 1;
      if (b < end && b + span > first) this.entries.delete(b);
    }
  }
  store(i: number, value: number, order: EntryOrder): void {
    const first = order === 9 ? i - (i % 512) : i;
    this.eraseRange(first, first + (order === 9 ? 512 : 1));
    this.entries.set(first, { value, order, marks: new Set() });
  }
  erase(i: number): void {
    const b = this.baseOf(i);
    if (b !== undefined) this.entries.delete(b);
  }
  setMark(i: number, m: number, on: boolean): boolean {
    const b = this.baseOf(i);
    if (b === undefined) return false;
    if (on) this.entries.get(b)!.marks.add(m);
    else this.entries.get(b)!.marks.delete(m);
    return true;
  }
  getMark(i: number, m: number): boolean {
    const b = this.baseOf(i);
    return b !== undefined && this.entries.get(b)!.marks.has(m);
  }
  findMarked(start: number, end: number, m: number): number {
    let best = -1;
    for (const [b, e] of this.entries) {
      const span = e.order === 9 ? 512 : 1;
      if (!e.marks.has(m) || b >= end || b + span <= start) continue;
      const hit = Math.max(b, start);
      if (best < 0 || hit < best) best = hit;
    }
    return best;
  }
  nextPresent(start: number, end: number): number {
    let best = -1;
    for (const [b, e] of this.entries) {
      const span = e.order === 9 ? 512 : 1;
      if (b >= end || b + span <= start) continue;
      const hit = Math.max(b, start);
      if (best < 0 || hit < best) best = hit;
    }
    return best;
  }
  sorted(first: number, end: number): Array<[number, number, EntryOrder]> {
    return [...this.entries]
      .filter(([b, e]) => b < end && b + (e.order === 9 ? 512 : 1) > first)
      .sort((a, b) => a[0] - b[0])
      .map(([b, e]) => [b, e.value, e.order]);
  }
}

describe('PageIndex', () => {
  it('is empty at first', () => {
    const x = new PageIndex();
    expect(x.load(0)).toBe(-1);
    expect(x.load(2 ** 52 - 1)).toBe(-1);
    expect(x.size).toBe(0);
  });

  it('stores, loads and erases order-0 entries, including at the top of the range', () => {
    const x = new PageIndex();
    const top = 2 ** 52 - 1;
    expect(x.store(5, 50)).toBe(-1);
    expect(x.store(top, 7)).toBe(-1);
    expect(x.load(5)).toBe(50);
    expect(x.load(top)).toBe(7);
    expect(x.load(top - 1)).toBe(-1);
    expect(x.store(5, 51)).toBe(50);
    expect(x.erase(5)).toBe(51);
    expect(x.load(5)).toBe(-1);
    expect(x.size).toBe(1);
    x.erase(top);
    expect(x.size).toBe(0);
    expect(x.nodeCount).toBe(0);
  });

  it('rejects indices and values out of range', () => {
    const x = new PageIndex();
    expect(() => x.store(2 ** 52, 1)).toThrow(RangeError);
    expect(() => x.store(-1, 1)).toThrow(RangeError);
    expect(() => x.store(1.5, 1)).toThrow(RangeError);
    expect(() => x.store(1, 2 ** 31)).toThrow(RangeError);
  });

  it('an order-9 entry covers 512 aligned indices, and any covered erase removes it whole', () => {
    const x = new PageIndex();
    x.store(1000, 9, 9); // rounds down to 512
    expect(x.load(511)).toBe(-1);
    expect(x.load(512)).toBe(9);
    expect(x.load(1023)).toBe(9);
    expect(x.load(1024)).toBe(-1);
    expect(x.orderOf(700)).toBe(9);
    expect(x.indicesCovered).toBe(512);
    expect(x.erase(800)).toBe(9);
    expect(x.load(512)).toBe(-1);
    expect(x.size).toBe(0);
  });

  it('storing order 0 inside an order-9 entry replaces the whole entry', () => {
    const x = new PageIndex();
    x.store(0, 1, 9);
    x.store(3, 2, 0);
    expect(x.load(3)).toBe(2);
    expect(x.load(4)).toBe(-1);
    expect(x.size).toBe(1);
  });

  it('fillAbsent fills holes only and stops where produce returns -1', () => {
    const x = new PageIndex();
    x.store(3, 333);
    let n = 100;
    const stop = x.fillAbsent(0, 200, (i) => (i === 150 ? -1 : n++));
    expect(stop).toBe(150);
    expect(x.load(3)).toBe(333);
    expect(x.load(0)).toBe(100);
    expect(x.load(149)).not.toBe(-1);
    expect(x.load(150)).toBe(-1);
    expect(x.size).toBe(150);
  });

  it('finds marked entries across levels and propagates clears', () => {
    const x = new PageIndex();
    for (const i of [1, 70, 5000, 2 ** 40]) x.store(i, i % 1000);
    expect(x.setMark(5000, 1)).toBe(true);
    expect(x.setMark(2 ** 40, 1)).toBe(true);
    expect(x.setMark(6, 1)).toBe(false);
    expect(x.findMarked(0, 2 ** 52, 1)).toBe(5000);
    expect(x.findMarked(5001, 2 ** 52, 1)).toBe(2 ** 40);
    expect(x.findMarked(0, 2 ** 52, 0)).toBe(-1);
    x.clearMark(5000, 1);
    expect(x.getMark(5000, 1)).toBe(false);
    expect(x.findMarked(0, 2 ** 52, 1)).toBe(2 ** 40);
  });

  it('iterates entries in order and frees nodes when emptied', () => {
    const x = new PageIndex();
    x.storeRange(10, 300, 4);
    x.store(1024, 8, 9);
    const seen = x.entriesIn(0, 2000);
    expect(seen.length).toBe(291);
    expect(seen[0]).toEqual([10, 4, 0]);
    expect(seen.at(-1)).toEqual([1024, 8, 9]);
    expect(x.eraseRange(0, 2 ** 52)).toBe(291);
    expect(x.nodeCount).toBe(0);
  });

  it('uses at most ~4.5 bytes of metadata per page when dense', () => {
    const x = new PageIndex();
    x.fillAbsent(0, 1 << 18, (i) => i);
    expect(x.usedBytes / (1 << 18)).toBeLessThan(4.5);
  });

  type Op =
    | { k: 'store'; i: number; v: number; o: EntryOrder }
    | { k: 'erase'; i: number }
    | { k: 'eraseRange'; i: number; n: number }
    | { k: 'fill'; i: number; n: number }
    | { k: 'mark'; i: number; m: MarkBit; on: boolean }
    | { k: 'find'; i: number; n: number; m: MarkBit };

  // Indices cluster in a small window (so operations collide) plus a few far away (tall trees).
  const idx = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 4095 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 52 - 1 }) },
  );
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      k: fc.constant('store' as const),
      i: idx,
      v: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      o: fc.constantFrom<EntryOrder>(0, 0, 9),
    }),
    fc.record({ k: fc.constant('erase' as const), i: idx }),
    fc.record({ k: fc.constant('eraseRange' as const), i: idx, n: fc.integer({ min: 0, max: 1500 }) }),
    fc.record({ k: fc.constant('fill' as const), i: idx, n: fc.integer({ min: 0, max: 700 }) }),
    fc.record({ k: fc.constant('mark' as const), i: idx, m: fc.constantFrom<MarkBit>(0, 1, 2), on: fc.boolean() }),
    fc.record({ k: fc.constant('find' as const), i: idx, n: fc.integer({ min: 1, max: 5000 }), m: fc.constantFrom<MarkBit>(0, 1, 2) }),
  );

  it('equals a reference model over random operation sequences (property)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const x = new PageIndex(2);
        const m = new ModelIndex();
        let next = 1;
        const probes = new Set<number>();
        for (const o of ops) {
          probes.add(o.i);
          const end = Math.min(2 ** 52, o.i + ('n' in o ? o.n : 1));
          switch (o.k) {
            case 'store':
              expect(x.store(o.i, o.v, o.o)).toBe(m.load(o.i));
              m.store(o.i, o.v, o.o);
              break;
            case 'erase':
              expect(x.erase(o.i)).toBe(m.load(o.i));
              m.erase(o.i);
              break;
            case 'eraseRange': {
              // The collector must see exactly the values of the entries the model erases.
              const expected = o.i < end ? m.sorted(o.i, end).map(([, v]) => v) : [];
              const sink = { values: new Int32Array(1), count: 0 };
              expect(x.eraseRange(o.i, end, sink)).toBe(expected.length);
              expect(Array.from(sink.values.subarray(0, sink.count))).toEqual(expected);
              m.eraseRange(o.i, end);
              break;
            }
            case 'fill':
              x.fillAbsent(o.i, end, (i) => {
                m.store(i, next, 0);
                return next++;
              });
              break;
            case 'mark':
              expect(o.on ? x.setMark(o.i, o.m) : x.clearMark(o.i, o.m)).toBe(m.setMark(o.i, o.m, o.on));
              break;
            case 'find':
              expect(x.findMarked(o.i, end, o.m)).toBe(m.findMarked(o.i, end, o.m));
              expect(x.nextPresent(o.i, end)).toBe(m.nextPresent(o.i, end));
              break;
          }
        }
        for (const p of probes) {
          for (const q of [p, p + 1, p - 1, p - (p % 512), p + 511]) {
            if (q < 0 || q >= 2 ** 52) continue;
            expect(x.load(q)).toBe(m.load(q));
            for (const mk of [0, 1, 2] as const) expect(x.getMark(q, mk)).toBe(m.getMark(q, mk));
          }
        }
        expect(x.entriesIn(0, 2 ** 52)).toEqual(m.sorted(0, 2 ** 52));
        expect(x.size).toBe(m.entries.size);
        x.clear();
        expect(x.nodeCount).toBe(0);
      }),
      { numRuns: RUNS },
    );
  });
});
