import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RangeStateMap, type StateChange } from './range-state-map.js';

describe('RangeStateMap', () => {
  it('starts uniform and reports changes per run to listeners', () => {
    const m = new RangeStateMap<'shared' | 'private'>('shared', 100);
    const seen: StateChange<string>[] = [];
    const off = m.onChange((c) => seen.push(c));
    m.set(10, 20, 'private');
    m.set(15, 30, 'private');
    expect(seen).toEqual([
      { first: 10, end: 20, from: 'shared', to: 'private' },
      { first: 20, end: 30, from: 'shared', to: 'private' },
    ]);
    expect(m.runs()).toEqual([
      { first: 0, end: 10, state: 'shared' },
      { first: 10, end: 30, state: 'private' },
      { first: 30, end: 100, state: 'shared' },
    ]);
    off();
    m.set(0, 100, 'shared');
    expect(seen.length).toBe(2);
    expect(m.runCount).toBe(1);
    expect(m.count('private')).toBe(0);
  });

  it('setting the same state is a no-op without events', () => {
    const m = new RangeStateMap('a', 10);
    let n = 0;
    m.onChange(() => n++);
    expect(m.set(0, 10, 'a')).toEqual([]);
    expect(n).toBe(0);
  });

  it('rejects ranges outside its limit', () => {
    const m = new RangeStateMap('a', 10);
    expect(() => m.set(5, 11, 'b')).toThrow(RangeError);
  });

  it('matches a per-page array model (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 64 }), fc.constantFrom('x', 'y', 'z')), {
          maxLength: 30,
        }),
        (ops) => {
          const m = new RangeStateMap('x', 64);
          const model = new Array<string>(64).fill('x');
          let changed = 0;
          m.onChange((c) => (changed += c.end - c.first));
          let expected = 0;
          for (const [a, b, s] of ops) {
            const [lo, hi] = a <= b ? [a, b] : [b, a];
            for (let i = lo; i < hi; i++) if (model[i] !== s) expected++;
            for (let i = lo; i < hi; i++) model[i] = s;
            m.set(lo, hi, s);
          }
          for (let i = 0; i < 64; i++) expect(m.get(i)).toBe(model[i]);
          // runEnd: the first later page of another state, or the limit.
          for (let i = 0; i < 64; i++) {
            let end = i + 1;
            while (end < 64 && model[end] === model[i]) end++;
            expect(m.runEnd(i)).toBe(end);
          }
          expect(changed).toBe(expected);
          const runs = m.runs();
          for (let i = 1; i < runs.length; i++) expect(runs[i]!.state).not.toBe(runs[i - 1]!.state);
        },
      ),
      { numRuns: Number(process.env.FC_RUNS ?? 1000) },
    );
  });
});
