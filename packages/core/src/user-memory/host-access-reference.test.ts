/**
 * `UserMemory.read/readInto/write/fill` (which coalesce adjacent folios) against the page-by-page
 * implementation they replaced (copied below as `oldHostAccess`, installed on a reference instance).
 * Compared: result or error (code, class, HostAccessFault offset), the exact sequence of
 * `ops.hostAccess` calls, allocator accounting and the memory's contents. Regressions from the
 * outside review: the policy was asked twice about a page after a non-adjacent folio boundary, and
 * a number offset whose end rounded past 2^53 allocated pages before its EFAULT.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemError, HostAccessFault, gmErr } from '../errors/guest-mem-error.js';
import type { HostAccessKind } from '../file/types.js';
import { ArenaFolioAllocator } from '../folio/folio-allocator.js';
import { PAGE_SIZE, PAGE_SIZE_N, toBig } from '../types/brands.js';
import { UserMemory } from './user-memory.js';

const P = PAGE_SIZE;

/** the replaced implementation's `hostAccess` (verbatim apart from `this` → `mem`). */
function oldHostAccess(
  mem: UserMemory,
  kind: HostAccessKind,
  offset: bigint | number,
  len: number,
  act: (folio: number, at: number, n: number, done: number) => void,
): void {
  const op = `host ${kind}`;
  (mem as unknown as { assertLive(op: string): void }).assertLive(op);
  const off = toBig(offset, op, mem.ops.backend);
  if (!(Number.isSafeInteger(len) && len >= 0) || off < 0n || off + BigInt(len) > mem.size) {
    throw gmErr('EFAULT', op, mem.ops.backend, `[${off}, +${len}) is outside the ${mem.size}-byte memory`);
  }
  let done = 0;
  while (done < len) {
    const at = off + BigInt(done);
    const index = Number(at / PAGE_SIZE_N);
    const inPage = Number(at % PAGE_SIZE_N);
    const n = Math.min(len - done, PAGE_SIZE - inPage);
    if (mem.ops.hostAccess && mem.ops.hostAccess(mem, index, kind) === 'sigbus') {
      throw new HostAccessFault({
        op,
        backend: mem.ops.backend,
        offset: at,
        detail: `the backend does not let the host ${kind} page ${index}`,
      });
    }
    const f = mem.fault(index, op);
    act(f.folio, (index - f.head) * PAGE_SIZE + inPage, n, done);
    done += n;
  }
}

/** Installs the replaced implementation's read/write/fill on `mem` (readInto = old read + copy, which is what views did). */
function makeOld(mem: UserMemory): UserMemory {
  const bytes = (folio: number, at: number, n: number) => mem.allocator.view(folio).subarray(at, at + n);
  const m = mem as unknown as Record<string, unknown>;
  m.read = (offset: bigint | number, len: number) => {
    // (the replaced implementation threw RangeError from `new Uint8Array(len)` for a negative length; the rewrite's EFAULT is
    // intended, so the reference answers EFAULT there too.)
    const out = new Uint8Array(Number.isSafeInteger(len) && len > 0 && BigInt(len) <= mem.size ? len : 0);
    oldHostAccess(mem, 'read', offset, len, (f, at, n, done) => out.set(bytes(f, at, n), done));
    return out;
  };
  m.write = (offset: bigint | number, data: Uint8Array) =>
    oldHostAccess(mem, 'write', offset, data.length, (f, at, n, done) => bytes(f, at, n).set(data.subarray(done, done + n)));
  m.fill = (offset: bigint | number, len: number, byte: number) =>
    oldHostAccess(mem, 'write', offset, len, (f, at, n) => bytes(f, at, n).fill(byte));
  return mem;
}

const show = (e: unknown) => {
  if (!(e instanceof Error)) return { thrown: String(e) };
  if (!GuestMemError.is(e)) return { cls: e.constructor.name };
  return { cls: e.constructor.name, code: e.code, offset: e instanceof HostAccessFault ? e.offset : undefined };
};

type Op =
  | { t: 'fault'; page: number }
  | { t: 'discard'; page: number; n: number }
  | { t: 'read'; off: number; len: number; big: boolean }
  | { t: 'write'; off: number; len: number; byte: number; big: boolean }
  | { t: 'fill'; off: number; len: number; byte: number; big: boolean };

interface Setup {
  pages: number;
  huge: boolean;
  limitPages: number;
  refused: number[];
  /** Stateful policy: refuse the Nth call (0: never). */
  refuseCall: number;
}

function run(s: Setup, ops: Op[], old: boolean) {
  const alloc = new ArenaFolioAllocator({ arenaMiB: 2, ...(s.limitPages ? { limitBytes: s.limitPages * P } : {}) });
  const calls: string[] = [];
  let n = 0;
  const refused = new Set(s.refused);
  const mem = UserMemory.create({
    size: s.pages * P,
    hugePages: s.huge,
    allocator: alloc,
    ops: {
      backend: 'test',
      hostAccess: (_m, index, kind) => {
        calls.push(`${kind}:${index}`);
        n++;
        return refused.has(index) || n === s.refuseCall ? 'sigbus' : 'allow';
      },
    },
  });
  if (old) makeOld(mem);
  const out: unknown[] = [];
  for (const o of ops) {
    calls.length = 0;
    try {
      switch (o.t) {
        case 'fault':
          mem.fault(o.page);
          out.push('f');
          break;
        case 'discard':
          mem.discard(o.page * P, o.n * P);
          out.push('d');
          break;
        case 'read':
          out.push([...mem.read(o.big ? BigInt(o.off) : o.off, o.len)].reduce((a, b) => (a * 31 + b) >>> 0, 7));
          break;
        case 'write': {
          const d = new Uint8Array(Math.max(0, o.len));
          for (let i = 0; i < d.length; i++) d[i] = (o.byte + i) & 255;
          mem.write(o.big ? BigInt(o.off) : o.off, d);
          out.push('w');
          break;
        }
        case 'fill':
          mem.fill(o.big ? BigInt(o.off) : o.off, o.len, o.byte);
          out.push('F');
          break;
      }
    } catch (e) {
      out.push(show(e));
    }
    out.push([...calls]);
    // contents of every present page, through the allocator (no policy, no fault)
    const pages: unknown[] = [];
    mem.forEachFolio((head, folio, order) => {
      const v = alloc.view(folio);
      pages.push([head, order, v.reduce((a, b) => (a * 31 + b) >>> 0, 7)]);
    });
    out.push(pages, alloc.stats().bytesInUse);
  }
  return out;
}

const PAGES = 1030; // > 2 MiB: two huge blocks and a tail

const opArb = (pages: number): fc.Arbitrary<Op> => {
  const off = fc.oneof(
    fc.integer({ min: -2, max: pages * P + 2 }),
    fc.integer({ min: 0, max: 40 }).map((p) => p * P - 1),
  );
  const len = fc.oneof(fc.integer({ min: -1, max: 12 * P }), fc.constantFrom(0, 1, P - 1, P, P + 1, 3 * P));
  return fc.oneof(
    { weight: 2, arbitrary: fc.record({ t: fc.constant('fault' as const), page: fc.nat(pages - 1) }) },
    fc.record({ t: fc.constant('discard' as const), page: fc.nat(pages - 1), n: fc.integer({ min: 1, max: 6 }) }),
    { weight: 3, arbitrary: fc.record({ t: fc.constant('read' as const), off, len, big: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('write' as const), off, len, byte: fc.nat(255), big: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('fill' as const), off, len, byte: fc.nat(255), big: fc.boolean() }) },
  );
};

describe('UserMemory host access = the page-by-page model', () => {
  it('minimal: a page whose folio is not adjacent to the previous one is asked about twice', () => {
    const s: Setup = { pages: 4, huge: false, limitPages: 0, refused: [], refuseCall: 0 };
    // fault page 1 before page 0: their folios are not in address order, so the run breaks at page 1
    const ops: Op[] = [
      { t: 'fault', page: 1 },
      { t: 'fault', page: 0 },
      { t: 'read', off: 0, len: 2 * P, big: false },
    ];
    const ref = run(s, ops, true);
    const got = run(s, ops, false);
    // the replaced implementation: read:0, read:1. The bulk path once asked: read:0, read:1, read:1.
    expect(got[ops.length * 4 - 3]).toEqual(ref[ops.length * 4 - 3]);
  });

  it('minimal (consequence): a policy that refuses its 3rd call refuses an access the replaced implementation completed', () => {
    const s: Setup = { pages: 4, huge: false, limitPages: 0, refused: [], refuseCall: 3 };
    const ops: Op[] = [
      { t: 'fault', page: 1 }, // no policy call
      { t: 'fault', page: 0 },
      { t: 'read', off: 0, len: 2 * P, big: false }, // the replaced implementation: calls 1, 2 → done; now: 1, 2, 3 → SIGBUS at page 1
    ];
    expect(run(s, ops, false)).toEqual(run(s, ops, true));
  });

  it('property: stateless policy (refused pages), huge and small pages, limits', () => {
    const setup: fc.Arbitrary<Setup> = fc.record({
      pages: fc.constantFrom(40, PAGES),
      huge: fc.boolean(),
      limitPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 600 })),
      refused: fc.array(fc.nat(45), { maxLength: 3 }),
      refuseCall: fc.constant(0),
    });
    fc.assert(
      fc.property(setup, fc.array(opArb(40), { maxLength: 12 }), (s, ops) => {
        // compare results, memory and accounting; the call log is compared as a *set+order of first asks*
        const a = run(s, ops, false);
        const b = run(s, ops, true);
        const dedup = (x: unknown[]) => x.map((v, i) => (i % 4 === 1 ? [...new Set(v as string[])] : v));
        expect(dedup(a)).toEqual(dedup(b));
      }),
      { numRuns: 100 },
    );
  });

  it('out of range past 2^53 with a number offset: EFAULT before any allocation', () => {
    // size 2^53 + 4096; offset 2^53 - 1 (a safe integer), 4098 bytes: ends at 2^53 + 4097 > size.
    // In doubles 2^53 - 1 + 4098 rounds to 2^53 + 4096 = size, so the number fast path accepts it.
    for (const old of [true, false]) {
      const alloc = new ArenaFolioAllocator();
      const mem = UserMemory.create({ size: (1n << 53n) + 4096n, allocator: alloc });
      if (old) makeOld(mem);
      let err: unknown;
      try {
        mem.write(2 ** 53 - 1, new Uint8Array(4098).fill(1));
      } catch (e) {
        err = e;
      }
      expect({ old, err: show(err), present: mem.pagesPresent, bytes: alloc.stats().bytesInUse }).toEqual({
        old,
        err: { cls: 'GuestMemError', code: 'EFAULT', offset: undefined },
        present: 0,
        bytes: 0,
      });
    }
  });

  it('bigint offsets past 2^53 and huge pages: same as the page-by-page model', () => {
    const size = (1n << 54n) + 8n * 1024n * 1024n;
    for (const huge of [false, true]) {
      const res = [true, false].map((old) => {
        const alloc = new ArenaFolioAllocator();
        const mem = UserMemory.create({ size, hugePages: huge, allocator: alloc });
        if (old) makeOld(mem);
        const out: unknown[] = [];
        const base = (1n << 53n) + 3n * 1024n * 1024n - 5n;
        const d = new Uint8Array(3 * P + 11).map((_, i) => i & 255);
        mem.write(base, d);
        mem.fill(base + 100n, 2 * P, 0xcd);
        out.push([...mem.read(base - 7n, 4 * P)]);
        try {
          mem.read(size - 3n, 4);
        } catch (e) {
          out.push(show(e));
        }
        out.push(mem.pagesPresent, alloc.stats().bytesInUse);
        return out;
      });
      expect(res[1]).toEqual(res[0]);
    }
  });
});
