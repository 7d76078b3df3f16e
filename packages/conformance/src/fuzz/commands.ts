/**
 * The fuzzer's commands and their fast-check generators. A command names objects by small indices
 * (resolved modulo what exists when it runs) and addresses by specs relative to model state (the
 * start or end of a memory object, a bound piece, an anchor of the 64-bit GPA space), so most
 * generated commands are valid and hit live state, while a weighted share carries edge values:
 * 2^64 − page, 2^63, unaligned and non-page-multiple sizes, negative, NaN, ±Infinity, fractional
 * and unsafe-integer numbers.
 */
import fc from 'fast-check';
import type { MemoryAccess } from '@guestmem/core';
import { PAGE_N } from './content.js';

/** A raw value exactly as it is passed to the API. */
export type Raw = bigint | number;

/** Where an address or offset comes from. */
export type AddrSpec =
  | { t: 'raw'; v: Raw }
  /** `pages` pages plus `delta` bytes from the start (or before the end) of the memory object. */
  | { t: 'memStart'; pages: number; delta: number; asNumber: boolean }
  | { t: 'memEnd'; pages: number; delta: number; asNumber: boolean }
  /** Inside (or around) the `which`-th bound piece of the VM (model's list). */
  | { t: 'piece'; which: number; pages: number; delta: number; asNumber: boolean }
  /** Just past the highest bound piece of the VM (free GPA space) plus pages. */
  | { t: 'free'; pages: number; asNumber: boolean }
  /** An anchor of the GPA space plus pages. */
  | { t: 'anchor'; anchor: number; pages: number; delta: number; asNumber: boolean };

/** A length: pages (+ bytes), up to the end of the object, or raw. */
export type SizeSpec =
  | { t: 'raw'; v: Raw }
  | { t: 'pages'; pages: number; delta: number; asNumber: boolean }
  | { t: 'toEnd'; asNumber: boolean };

export type Cmd =
  | { k: 'createVm'; confidential: boolean }
  | { k: 'createMem'; vm: number; size: SizeSpec; hostMappable: boolean; initiallyShared: boolean; hugePages: boolean }
  | { k: 'allocate'; mem: number; offset: AddrSpec; len: SizeSpec }
  | { k: 'punch'; mem: number; offset: AddrSpec; len: SizeSpec }
  | { k: 'bind'; vm: number; mem: number; offset: AddrSpec; gpa: AddrSpec; size: SizeSpec; access?: MemoryAccess; readOnly: boolean }
  | { k: 'unbind'; vm: number; which: number; byHandle: boolean }
  | { k: 'convert'; vm: number; gpa: AddrSpec; size: SizeSpec; to: MemoryAccess; discard?: boolean; keepContents?: boolean }
  | { k: 'map'; mem: number; offset?: AddrSpec; length?: SizeSpec }
  | { k: 'viewRead'; view: number; at: AddrSpec; len: number }
  | { k: 'viewWrite'; view: number; at: AddrSpec; len: number; seed: number }
  | { k: 'viewUnmap'; view: number }
  | { k: 'guestRead'; vm: number; gpa: AddrSpec; len: number }
  | { k: 'guestWrite'; vm: number; gpa: AddrSpec; len: number; seed: number }
  | { k: 'closeMem'; mem: number }
  | { k: 'destroyVm'; vm: number };

/** Anchors of the GPA space: low memory, 4 GiB, 2^40 − 16 pages, 2^52, 2^63 and 2^64 − 16 pages. */
export const ANCHORS: readonly bigint[] = [
  0n,
  0x10_0000n,
  1n << 32n,
  (1n << 40n) - 16n * PAGE_N,
  1n << 52n,
  1n << 63n,
  (1n << 64n) - 16n * PAGE_N,
];

/** Edge values that break a rule: negative, non-integer, NaN, ±Infinity, unsafe, at and past 2^64. */
export const BAD_NUMBERS: readonly Raw[] = [
  -4096,
  -1,
  -(2n ** 63n),
  0.5,
  4096.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  2 ** 53,
  2 ** 60,
  1n << 64n,
  (1n << 64n) + PAGE_N,
  (1n << 64n) - PAGE_N + 1n,
  1,
  4095,
];

/** Memory sizes far from the first pages: 1 GiB, 2^40, 2^52, the largest loff_t page and past it. */
export const BIG_SIZES: readonly bigint[] = [1n << 30n, 1n << 40n, 1n << 52n, (1n << 63n) - PAGE_N, 1n << 63n, 1n << 64n];

/** Knobs per target (the native kernel needs smaller objects and fewer commands). */
export interface GenProfile {
  maxCommands: number;
  /** Allow memory sizes from {@link BIG_SIZES}. */
  bigSizes: boolean;
}

const small = fc.nat({ max: 7 });
const delta = fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, 512, 4095, -1) });
const asNumber = fc.boolean();
const raw = fc.constantFrom(...BAD_NUMBERS);

const addr = (base: fc.Arbitrary<AddrSpec>): fc.Arbitrary<AddrSpec> =>
  fc.oneof({ weight: 14, arbitrary: base }, { weight: 1, arbitrary: raw.map((v): AddrSpec => ({ t: 'raw', v })) });

const memOffset = addr(
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('memStart' as const), pages: small, delta, asNumber }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('memEnd' as const), pages: fc.integer({ min: 1, max: 4 }), delta, asNumber }) },
  ),
);

const gpaSpec = addr(
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('anchor' as const),
        anchor: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, { weight: 3, arbitrary: fc.nat({ max: ANCHORS.length - 1 }) }),
        pages: fc.nat({ max: 15 }),
        delta,
        asNumber,
      }),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant('piece' as const),
        which: fc.nat({ max: 7 }),
        pages: fc.oneof({ weight: 6, arbitrary: fc.nat({ max: 1 }) }, { weight: 1, arbitrary: fc.integer({ min: -1, max: 5 }) }),
        delta,
        asNumber,
      }),
    },
  ),
);

/** GPAs for bind: mostly free space right after the bound pieces, so most bindings succeed. */
const bindGpa = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('free' as const), pages: fc.nat({ max: 2 }), asNumber }) },
  { weight: 2, arbitrary: gpaSpec },
);

const pagesSize = fc.record({
  t: fc.constant('pages' as const),
  pages: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 2 }) }, { weight: 1, arbitrary: fc.integer({ min: 3, max: 8 }) }),
  delta,
  asNumber,
});
const lenSpec = fc.oneof(
  { weight: 12, arbitrary: pagesSize },
  { weight: 1, arbitrary: fc.constant<SizeSpec>({ t: 'pages', pages: 0, delta: 0, asNumber: true }) },
  { weight: 1, arbitrary: raw.map((v): SizeSpec => ({ t: 'raw', v })) },
);

function memSize(p: GenProfile): fc.Arbitrary<SizeSpec> {
  const big = p.bigSizes ? BIG_SIZES : BIG_SIZES.filter((s) => s <= 1n << 30n || s >= 1n << 63n);
  return fc.oneof(
    { weight: 10, arbitrary: fc.record({ t: fc.constant('pages' as const), pages: fc.integer({ min: 4, max: 16 }), delta, asNumber }) },
    { weight: 2, arbitrary: fc.constantFrom(...big).map((v): SizeSpec => ({ t: 'raw', v })) },
    { weight: 1, arbitrary: fc.constant<SizeSpec>({ t: 'raw', v: 512n * PAGE_N }) },
    { weight: 1, arbitrary: raw.map((v): SizeSpec => ({ t: 'raw', v })) },
  );
}

const access = fc.constantFrom<MemoryAccess>('private', 'shared');
const seed = fc.integer({ min: 1, max: 255 });
const vmIx = fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 3 }) });
const memIx = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.nat({ max: 7 }) });

/** One command, weighted towards valid operations on live state. */
export function commandArb(p: GenProfile): fc.Arbitrary<Cmd> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.record({ k: fc.constant('createVm' as const), confidential: fc.boolean() }) },
    {
      weight: 5,
      arbitrary: fc.record({
        k: fc.constant('createMem' as const),
        vm: vmIx,
        size: memSize(p),
        hostMappable: fc.boolean(),
        initiallyShared: fc.boolean(),
        hugePages: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('allocate' as const), mem: memIx, offset: memOffset, len: lenSpec }) },
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('punch' as const),
        mem: memIx,
        offset: memOffset,
        len: fc.oneof({ weight: 8, arbitrary: lenSpec }, { weight: 1, arbitrary: fc.constant<SizeSpec>({ t: 'toEnd', asNumber: false }) }),
      }),
    },
    {
      weight: 8,
      arbitrary: fc.record(
        {
          k: fc.constant('bind' as const),
          vm: vmIx,
          mem: memIx,
          offset: memOffset,
          gpa: bindGpa,
          size: fc.oneof(
            { weight: 6, arbitrary: lenSpec },
            { weight: 2, arbitrary: fc.constant<SizeSpec>({ t: 'toEnd', asNumber: true }) },
          ),
          access,
          readOnly: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
        },
        { requiredKeys: ['k', 'vm', 'mem', 'offset', 'gpa', 'size', 'readOnly'] },
      ),
    },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('unbind' as const), vm: vmIx, which: fc.nat({ max: 7 }), byHandle: fc.boolean() }) },
    {
      weight: 6,
      arbitrary: fc.record(
        {
          k: fc.constant('convert' as const),
          vm: vmIx,
          gpa: gpaSpec,
          size: lenSpec,
          to: access,
          discard: fc.boolean(),
          keepContents: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
        },
        { requiredKeys: ['k', 'vm', 'gpa', 'size', 'to'] },
      ),
    },
    {
      weight: 4,
      arbitrary: fc.record(
        {
          k: fc.constant('map' as const),
          mem: memIx,
          offset: memOffset,
          length: fc.oneof(lenSpec, fc.constant<SizeSpec>({ t: 'toEnd', asNumber: true })),
        },
        { requiredKeys: ['k', 'mem'] },
      ),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        k: fc.constant('viewRead' as const),
        view: fc.nat({ max: 7 }),
        at: memOffset,
        len: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constant(4096), fc.constant(8192)),
      }),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        k: fc.constant('viewWrite' as const),
        view: fc.nat({ max: 7 }),
        at: memOffset,
        len: fc.integer({ min: 1, max: 64 }),
        seed,
      }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('viewUnmap' as const), view: fc.nat({ max: 7 }) }) },
    {
      weight: 8,
      arbitrary: fc.record({
        k: fc.constant('guestRead' as const),
        vm: vmIx,
        gpa: gpaSpec,
        len: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constant(4096)),
      }),
    },
    {
      weight: 7,
      arbitrary: fc.record({ k: fc.constant('guestWrite' as const), vm: vmIx, gpa: gpaSpec, len: fc.integer({ min: 1, max: 64 }), seed }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('closeMem' as const), mem: memIx }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('destroyVm' as const), vm: vmIx }) },
  );
}

/** A sequence: starts with a VM and a memory object so that most commands have something to act on. */
export function sequenceArb(p: GenProfile): fc.Arbitrary<Cmd[]> {
  const prelude = fc.tuple(
    fc.record({ k: fc.constant('createVm' as const), confidential: fc.boolean() }),
    fc.record({
      k: fc.constant('createMem' as const),
      vm: fc.constant(0),
      size: fc.constant<SizeSpec>({ t: 'pages', pages: 16, delta: 0, asNumber: true }),
      hostMappable: fc.boolean(),
      initiallyShared: fc.boolean(),
      hugePages: fc.constant(false),
    }),
  );
  return fc
    .tuple(prelude, fc.array(commandArb(p), { minLength: 1, maxLength: p.maxCommands, size: 'max' }))
    .map(([pre, rest]): Cmd[] => [...pre, ...rest]);
}

/** The value as passed: a number when asked and exact, else a bigint. */
export function asRaw(v: bigint, asNumber: boolean): Raw {
  return asNumber && v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v;
}

/** Test data for a write: `len` bytes from `seed`, never all zero. */
export function pattern(len: number, seed: number): Uint8Array {
  const d = new Uint8Array(len);
  for (let i = 0; i < len; i++) d[i] = ((seed + i * 37) % 255) + 1;
  return d;
}
