/**
 * fast-check generators of {@link RandomOp} sequences over the whole input domain of the KVM API:
 * 64-bit GPAs, sizes, offsets and lengths with extra weight on the edges (0, page boundaries,
 * 2^32, the user-space end 2^47, 2^52 ± a page, 2^63 ± a page, 2^64 − a page, 2^64 − 1), values that
 * are not page multiples, and every fd kind in every fd position (`FD_KINDS`).
 *
 * Two deliberate limits, both because the real kernel would do real work the test machine cannot
 * afford, not because the sim could not answer:
 * - requests that would allocate memory (fallocate, POPULATE, mlock) are shrunk to `ALLOC_CAP` by the
 *   interpreter (`random-ops.ts`) when they would succeed; refused ones keep their full size;
 * - accepted mapping lengths stay ≤ 1 GiB (lengths from 1 GiB up to the 2^47 end of user space are
 *   folded into that range), so the process's address space and the host's overcommit policy never
 *   decide the outcome; lengths past 2^47 stay (the kernel refuses them with ENOMEM either way).
 */
import fc from 'fast-check';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_KEEP_SIZE as KEEP,
  FALLOC_FL_PUNCH_HOLE as PUNCH,
  FALLOC_FL_ZERO_RANGE,
  KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CAP_VM_TYPES,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  O_APPEND,
  O_ASYNC,
  O_DIRECT,
  O_NOATIME,
  O_NONBLOCK,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_NONE,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
} from '../uapi/constants.js';
import { FD_KINDS, type FdRef, type FileCall, type RandomOp, type SlotMem } from './random-ops.js';

const P = 4096n;
const U64 = (1n << 64n) - 1n;
const GIB = 1n << 30n;
const TASK_END = 1n << 47n;

/** The 64-bit values every numeric argument visits often. */
export const EDGES: readonly bigint[] = [
  0n,
  1n,
  P - 1n,
  P,
  P + 1n,
  2n * P,
  16n * P,
  0x20_0000n,
  (1n << 32n) - P,
  1n << 32n,
  TASK_END - P,
  TASK_END,
  (1n << 52n) - P,
  1n << 52n,
  (1n << 52n) + P,
  (1n << 63n) - P,
  (1n << 63n) - 1n,
  1n << 63n,
  (1n << 63n) + P,
  U64 + 1n - P,
  U64,
];

/**
 * A u64 over the whole range: edges, edges ± up to two pages (page multiples or not), small page
 * multiples (where most objects live), small non-multiples, and uniform 64-bit values.
 */
export const u64: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...EDGES) },
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 16 }).map((p) => BigInt(p) * P) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 16 * 4096 + 100 }).map(BigInt) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...EDGES), fc.integer({ min: -2 * 4096, max: 2 * 4096 }), fc.boolean())
      .map(([e, d, aligned]) => (e + BigInt(aligned ? Math.trunc(d / 4096) * 4096 : d)) & U64),
  },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: U64 }) },
);

/** Small page-aligned values mostly (object sizes, offsets inside objects), edges sometimes. */
const smallOrEdge: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 8 }).map((p) => BigInt(p) * P) },
  { weight: 3, arbitrary: u64 },
);

/** An offset or length inside a mapping mostly (the first pages of the 16 KiB starting mapping), edges sometimes. */
const inMapping: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 3 }).map((p) => BigInt(p) * P) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 5 * 4096 }).map(BigInt) },
  { weight: 2, arbitrary: u64 },
);

/** A mapping length: {@link u64}, with accepted lengths above 1 GiB folded below it (see the file comment). */
const mapLength: fc.Arbitrary<bigint> = smallOrEdge.map((l) => (l > GIB && l <= TASK_END ? l % GIB : l));

const idx = fc.nat({ max: 7 });
export const fdRef: fc.Arbitrary<FdRef> = fc.record({ kind: fc.constantFrom(...FD_KINDS), i: idx });

/**
 * A slot's host memory: none; an owned mapping plus an offset (page multiples inside it mostly,
 * unaligned and 64-bit values sometimes: the safe API's own checks); a raw address made from a
 * mapping's (± pages or bytes: the kernel's alignment and range checks around real memory); any raw
 * 64-bit value.
 */
const slotMem: fc.Arbitrary<SlotMem> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('owned' as const), m: idx, offset: inMapping }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      m: idx,
      delta: fc.constantFrom(0n, 0n, 0n, P, 2n * P, -P, 1n, -1n, 1n << 47n, -(1n << 63n)),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rawAddr' as const), addr: u64 }) },
);

const prot = fc.constantFrom(
  ...Array<number>(6).fill(PROT_READ | PROT_WRITE),
  PROT_READ,
  PROT_WRITE,
  PROT_NONE,
  PROT_READ | PROT_EXEC,
  PROT_SEM | PROT_READ,
);
const mprotectProt = fc.constantFrom(
  0,
  1,
  2,
  3,
  3,
  3,
  4,
  5,
  7,
  PROT_SEM,
  16,
  PROT_GROWSDOWN | 3,
  PROT_GROWSUP | 1,
  PROT_GROWSDOWN | PROT_GROWSUP,
  -1,
);
const gmemAdvice = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(4, 9, 22, 23, 24, 20, 21, 3, 0) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 27 }) },
  { weight: 1, arbitrary: fc.constantFrom(100, 101, 102, 103, -1, 1000) },
);
/**
 * Advice on anonymous memory. Not MADV_COLLAPSE: its answer depends on where the kernel placed the
 * mapping (2 MiB alignment), on adjacent anonymous mappings it merged into the same VMA, and on THP
 * allocation — the Node process's layout, not the API's inputs (the named scenarios cover the
 * reproducible cases).
 */
const anonAdvice = fc.constantFrom(4, 4, 24, 9, 8, 3, 0, 23, 22, 5, 102, 100, 103);
const statusFlags = fc
  .subarray([O_APPEND, O_NONBLOCK, O_NOATIME, O_ASYNC, O_DIRECT, 0o100, 0o1000, 0o4010000, 0o10000000])
  .map((bits) => bits.reduce((a, b) => a | b, 0));
const fileCall: fc.Arbitrary<FileCall> = fc.constantFrom(
  'readv',
  'writev',
  'fsync',
  'fdatasync',
  'fchmod',
  'fchown',
  'getfl',
  'setfl',
  'fionread',
  'reopen',
);

/** One operation; config-dependent ones (see `isConfigDependent`) are rare so most sequences run on both sim configurations. */
const configIndependentOp: fc.Arbitrary<RandomOp> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('createVm' as const), type: fc.constantFrom(0n, 0n, 0n, 0n, 2n, 5n, 1n << 32n, U64) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('createGmem' as const),
      vm: idx,
      size: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 8 }).map((p) => BigInt(p) * P) }, { weight: 3, arbitrary: u64 }),
      flags: fc.constantFrom(0n, 1n, 2n, 3n, 3n, 3n, 3n, 3n, 4n, 1n << 63n),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('dup' as const), g: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), g: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('closeVm' as const), vm: idx }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('fallocate' as const),
      g: idx,
      mode: fc.constantFrom(
        KEEP,
        KEEP,
        KEEP,
        PUNCH | KEEP,
        PUNCH | KEEP,
        0,
        PUNCH,
        FALLOC_FL_ZERO_RANGE | KEEP,
        FALLOC_FL_COLLAPSE_RANGE,
        0x100,
      ),
      offset: smallOrEdge,
      len: smallOrEdge,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('mmap' as const),
      g: idx,
      offset: smallOrEdge,
      length: mapLength,
      prot,
      flags: fc.constantFrom(...Array<number>(6).fill(MAP_SHARED), MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_SHARED | MAP_NORESERVE, 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('munmap' as const), m: idx }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('read' as const),
      m: idx,
      offset: fc.integer({ min: 0, max: 6 * 4096 }),
      len: fc.integer({ min: 0, max: 2 * 4096 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('write' as const),
      m: idx,
      offset: fc.integer({ min: 0, max: 6 * 4096 }),
      len: fc.integer({ min: 0, max: 2 * 4096 }),
      byte: fc.integer({ min: 1, max: 255 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('bind' as const),
      vm: idx,
      slot: fc.constantFrom(0, 1, 2, 3, 32763, 32764, 0x1_0000),
      gpa: smallOrEdge,
      size: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 6 }).map((p) => BigInt(p) * P) }, { weight: 3, arbitrary: u64 }),
      fd: fc.oneof({ weight: 3, arbitrary: idx.map((i) => ({ kind: 'gmem' as const, i })) }, { weight: 2, arbitrary: fdRef }),
      offset: smallOrEdge,
      flags: fc.constantFrom(
        KVM_MEM_GUEST_MEMFD,
        KVM_MEM_GUEST_MEMFD,
        KVM_MEM_GUEST_MEMFD,
        0,
        KVM_MEM_LOG_DIRTY_PAGES,
        KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY,
        0x8,
      ),
      mem: slotMem,
      pads: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), vm: idx, slot: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('fstat' as const), g: idx }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('anon' as const), length: mapLength }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('madvise' as const), a: idx, offset: smallOrEdge, len: smallOrEdge, advice: anonAdvice }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('gmadvise' as const), m: idx, offset: inMapping, len: inMapping, advice: gmemAdvice }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('mprotect' as const), m: idx, offset: inMapping, len: inMapping, prot: mprotectProt }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('mlock' as const),
      m: idx,
      offset: inMapping,
      len: inMapping,
      flags: fc.constantFrom(0, 0, 0, 1, 2, -1),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('munlock' as const), m: idx, offset: inMapping, len: inMapping }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('vcpu' as const),
      vm: idx,
      id: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }).map(BigInt) },
        { weight: 1, arbitrary: fc.constantFrom(4095n, 4096n, 1n << 31n, 1n << 32n, U64) },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('closeVcpu' as const), c: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('other' as const), kind: fc.constantFrom('memfd' as const, 'devnull' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('closeOther' as const), o: idx }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('wrongIoctl' as const),
      target: fdRef,
      call: fc.constantFrom('checkExtension' as const, 'createGuestMemfd' as const),
      cap: fc.oneof(fc.integer({ min: 0, max: 300 }).map(BigInt), u64),
      size: fc.oneof(fc.constant(P), u64),
      flags: fc.constantFrom(0n, 1n, 3n, 4n),
    }),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        op: fc.constant('fileOp' as const),
        g: idx,
        call: fileCall,
        arg: fc.constantFrom(0, 1, 2, 3, 0o600, 0o777, -1, 0o10000000, 1000),
        arg2: fc.constantFrom(-1, 0, 1000),
        bufs: fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 4 }),
      })
      .chain((o) => (o.call === 'setfl' ? statusFlags.map((arg) => ({ ...o, arg })) : fc.constant(o))),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('sendfile' as const),
      g: idx,
      dir: fc.constantFrom('to' as const, 'from' as const),
      other: fdRef,
      count: fc.oneof(fc.constantFrom(0n, 64n, P, 1n << 31n), u64),
      offset: fc.oneof(
        fc.constant(null),
        fc.constant(0n),
        u64.map((v) => BigInt.asIntN(64, v)),
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('checkExt' as const),
      on: fc.constantFrom('kvm' as const, 'vm' as const),
      vm: idx,
      cap: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(0n, 10n, 234n, BigInt(KVM_CAP_GUEST_MEMFD_FLAGS), 300n) },
        { weight: 3, arbitrary: u64.filter((c) => c !== BigInt(KVM_CAP_MEMORY_ATTRIBUTES) && c !== BigInt(KVM_CAP_VM_TYPES)) },
      ),
    }),
  },
);

/** The operations whose answer depends on `CONFIG_KVM_SW_PROTECTED_VM` (see `isConfigDependent`). */
const configDependentOp: fc.Arbitrary<RandomOp> = fc.oneof(
  fc.record({
    op: fc.constant('setAttrs' as const),
    vm: idx,
    address: smallOrEdge,
    size: smallOrEdge,
    attributes: fc.constantFrom(0n, 8n, 1n, 1n << 63n),
    flags: fc.constantFrom(0n, 0n, 1n),
  }),
  fc.record({ op: fc.constant('createVm' as const), type: fc.constant(1n) }),
  fc.record({
    op: fc.constant('checkExt' as const),
    on: fc.constantFrom('kvm' as const, 'vm' as const),
    vm: idx,
    cap: fc.constantFrom(BigInt(KVM_CAP_MEMORY_ATTRIBUTES), BigInt(KVM_CAP_VM_TYPES)),
  }),
);

/**
 * One operation. Config-dependent ones are rare (1 in 101), so most sequences are compared on both
 * simulated kernel configurations.
 */
export const randomOp: fc.Arbitrary<RandomOp> = fc.oneof(
  { weight: 100, arbitrary: configIndependentOp },
  { weight: 1, arbitrary: configDependentOp },
);

/** A sequence of 5–40 operations. */
export const randomSequence: fc.Arbitrary<RandomOp[]> = fc.array(randomOp, { minLength: 5, maxLength: 40, size: 'max' });
