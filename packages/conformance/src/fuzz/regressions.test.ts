/**
 * Every counterexample the fuzzer found, as a named regression test: the shrunk command sequence,
 * run on the backend where it was found, against the model.
 *
 * - Fixed in the backend: a plain `it` (the sequence must now pass).
 * - A known deviation pending another issue item (deviations.ts): `it.fails`, run strictly (the
 *   target's tolerances minus that deviation). When the backend starts following the rule, vitest
 *   reports the test as unexpectedly passing: flip it to `it` and drop the deviation from the target.
 */
import { describe, expect, it } from 'vitest';
import type { AddrSpec, Cmd, SizeSpec } from './commands.js';
import type { DeviationId } from './deviations.js';
import { Counterexample, runSequence, type FuzzTarget } from './runner.js';
import { SIM_TARGETS } from './targets.fixture.js';

const target = (name: string): FuzzTarget => {
  const t = SIM_TARGETS.find((x) => x.name.startsWith(name));
  if (!t) throw new Error(`no target ${name}`);
  return t;
};
const KVM = target('kvm-sim (SW');
const KVM_DEFAULT = target('kvm-sim (swProtectedVm');
const GUNYAH = target('gunyah-sim');
const TOY = target('toyvisor');
const ACK = target('gunyah-ack-sim');

/** The target without one tolerated deviation. */
const strict = (t: FuzzTarget, d: DeviationId): FuzzTarget => {
  expect(t.tolerate, `${t.name} tolerates ${d}`).toContain(d);
  return { ...t, tolerate: (t.tolerate ?? []).filter((x) => x !== d) };
};

/** Runs a sequence; a counterexample fails the test with its trace. */
const passes = (t: FuzzTarget, cmds: Cmd[]): void => runSequence(t, cmds);

// ---- builders for readable sequences ----
const vm = (confidential = false): Cmd => ({ k: 'createVm', confidential });
const mem = (pages: number, o: { hostMappable?: boolean; initiallyShared?: boolean } = {}): Cmd => ({
  k: 'createMem',
  vm: 0,
  size: { t: 'pages', pages, delta: 0, asNumber: true },
  hostMappable: o.hostMappable ?? false,
  initiallyShared: o.initiallyShared ?? false,
  hugePages: false,
});
const memRaw = (v: bigint | number, hugePages = false): Cmd => ({
  k: 'createMem',
  vm: 0,
  size: { t: 'raw', v },
  hostMappable: false,
  initiallyShared: false,
  hugePages,
});
const raw = (v: bigint | number): AddrSpec => ({ t: 'raw', v });
const start = (pages: number): AddrSpec => ({ t: 'memStart', pages, delta: 0, asNumber: false });
const end = (pages: number): AddrSpec => ({ t: 'memEnd', pages, delta: 0, asNumber: false });
const free = (pages = 0): AddrSpec => ({ t: 'free', pages, asNumber: false });
const piece = (pages = 0): AddrSpec => ({ t: 'piece', which: 0, pages, delta: 0, asNumber: false });
const anchor = (a: number, pages = 0): AddrSpec => ({ t: 'anchor', anchor: a, pages, delta: 0, asNumber: false });
const pages = (n: number): SizeSpec => ({ t: 'pages', pages: n, delta: 0, asNumber: false });
const bind = (gpa: AddrSpec, size: SizeSpec, o: Partial<Extract<Cmd, { k: 'bind' }>> = {}): Cmd => ({
  k: 'bind',
  vm: 0,
  mem: 0,
  offset: start(0),
  gpa,
  size,
  readOnly: false,
  ...o,
});

describe('fuzzer regressions: fixed in the backends', () => {
  it('gunyah-ack-sim: a guest access refused for its arguments starts nothing, so the DTB GPA stays free to bind (was: the model took the VM as started)', () => {
    passes(ACK, [
      vm(),
      mem(16),
      { k: 'guestRead', vm: 0, gpa: raw(-4096), len: 4096 },
      bind(anchor(3), pages(3)),
      bind(free(), { t: 'toEnd', asNumber: true }, { offset: start(3), readOnly: true }),
      { k: 'map', mem: 0 },
    ]);
  });
  it('gunyah-ack-sim: huge-page memory binds in 2 MiB units (was: a binding cutting a 2 MiB folio let the guest read the unbound page before it)', () => {
    passes(ACK, [
      vm(),
      mem(16),
      memRaw(2n << 20n, true),
      bind(free(), { t: 'toEnd', asNumber: true }, { mem: 1, offset: start(1), readOnly: true }),
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 1 },
      { k: 'guestRead', vm: 0, gpa: piece(-1), len: 1 },
      { k: 'unbind', vm: 0, which: 0, byHandle: false },
    ]);
  });
  it('gunyah-ack-sim: binding a memory range already bound at another GPA is EEXIST (was: the range was aliased at both GPAs)', () => {
    passes(ACK, [vm(), mem(16), bind(free(), pages(1)), bind(free(), pages(1))]);
  });
  it('kvm-sim: convert at gpa -2^63 is EINVAL and changes nothing (was: the ioctl ran, then a RangeError)', () => {
    passes(KVM, [vm(true), mem(16), { k: 'convert', vm: 0, gpa: raw(-(2n ** 63n)), size: pages(1), to: 'private' }]);
  });
  it('kvm-sim: a binding past EOF of a 2^63 − 4 KiB memory is EINVAL (the kernel wraps offset + size in loff_t)', () => {
    passes(KVM, [vm(), memRaw((1n << 63n) - 4096n), bind(free(), pages(3), { offset: end(1) })]);
  });
  it('kvm-sim: map() without a length at an offset past the end is EINVAL (was ENOMEM from a negative length)', () => {
    passes(KVM_DEFAULT, [vm(), mem(16, { hostMappable: true, initiallyShared: true }), { k: 'map', mem: 0, offset: start(17) }]);
  });
  it('kvm-sim: map() with length -4096 is EINVAL (was ENOMEM)', () => {
    passes(KVM_DEFAULT, [
      vm(),
      mem(16, { hostMappable: true, initiallyShared: true }),
      { k: 'map', mem: 0, length: { t: 'raw', v: -4096 } },
    ]);
  });
  it('kvm-sim: converting a binding whose memory was closed succeeds (was EBADF from discarding through the closed fd, after converting)', () => {
    passes(KVM, [
      vm(true),
      mem(16),
      bind(free(), { t: 'toEnd', asNumber: true }),
      { k: 'closeMem', mem: 0 },
      { k: 'convert', vm: 0, gpa: anchor(1), size: pages(3), to: 'shared' },
    ]);
  });
  it('kvm-sim: a guest access to the last page of a 2^63 − 4 KiB memory works (was EINVAL: the file offset was rounded as a number)', () => {
    passes(KVM, [
      vm(true),
      memRaw((1n << 63n) - 4096n),
      bind(free(), pages(1), { offset: end(1) }),
      { k: 'guestWrite', vm: 0, gpa: piece(0), len: 1, seed: 1 },
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 1 },
    ]);
  });
  it('kvm-sim: converting an already-shared page of host-mappable memory to shared keeps its data (was: the discard punched it)', () => {
    passes(KVM, [
      vm(true),
      mem(16, { hostMappable: true }),
      bind(free(), pages(2), { access: 'shared' }),
      { k: 'guestWrite', vm: 0, gpa: piece(1), len: 1, seed: 1 },
      { k: 'convert', vm: 0, gpa: piece(0), size: pages(2), to: 'shared' },
      { k: 'guestRead', vm: 0, gpa: piece(1), len: 1 },
    ]);
  });
  it('kvm-sim: a guest read at gpa -2^63 is EINVAL (was: the u64 GPA wrapped onto the binding at 2^63 and read it)', () => {
    passes(KVM_DEFAULT, [
      vm(),
      mem(16),
      bind(anchor(5), pages(1)),
      { k: 'guestWrite', vm: 0, gpa: anchor(5), len: 1, seed: 1 },
      { k: 'guestRead', vm: 0, gpa: raw(-(2n ** 63n)), len: 1 },
    ]);
  });
  it('kvm-sim: guest accesses at gpa -4096 and 2^64 are EINVAL (was EFAULT and ERANGE)', () => {
    passes(KVM, [
      vm(),
      { k: 'guestRead', vm: 0, gpa: raw(-4096), len: 1 },
      { k: 'guestWrite', vm: 0, gpa: raw(1n << 64n), len: 1, seed: 1 },
    ]);
  });
  it('kvm-sim: converting to shared after memory.close() still discards the private bytes while a host view pins the file (was: the discard was skipped and the guest read them)', () => {
    passes(KVM, [
      vm(true),
      mem(16, { hostMappable: true }),
      { k: 'map', mem: 0 },
      bind(free(), { t: 'toEnd', asNumber: true }),
      { k: 'guestWrite', vm: 0, gpa: piece(0), len: 1, seed: 1 },
      { k: 'closeMem', mem: 0 },
      { k: 'convert', vm: 0, gpa: piece(0), size: pages(1), to: 'shared' },
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 1 },
    ]);
  });
  it('gunyah-sim: createGuestMemory({ size: -Infinity }) is EINVAL (was a RangeError)', () => {
    passes(GUNYAH, [vm(), memRaw(Number.NEGATIVE_INFINITY)]);
  });
  it('gunyah-sim: createGuestMemory above maxGuestMemorySize (2^64 + 4 KiB) is EINVAL (was accepted)', () => {
    passes(GUNYAH, [vm(), memRaw((1n << 64n) + 4096n)]);
  });
  it('gunyah-sim: a guest access to the last page of a 2^63 − 4 KiB memory works (was EINVAL: the file offset was rounded as a number)', () => {
    passes(GUNYAH, [
      vm(),
      memRaw((1n << 63n) - 4096n),
      bind(free(), { t: 'toEnd', asNumber: true }, { offset: end(1) }),
      { k: 'guestWrite', vm: 0, gpa: piece(0), len: 1, seed: 1 },
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 1 },
    ]);
  });
  it('gunyah-sim: a guest access that could not map the DTB leaves nothing half-done (was: every later access failed EINVAL, no DTB configured)', () => {
    // The DTB GPA stays refused while bound (pending 'reserved-dtb-gpa'); after unbinding it the VM starts.
    passes(GUNYAH, [
      vm(),
      mem(16),
      bind(anchor(3), { t: 'toEnd', asNumber: true }),
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 1 },
      { k: 'guestWrite', vm: 0, gpa: piece(0), len: 1, seed: 1 },
      { k: 'unbind', vm: 0, which: 0, byHandle: true },
      bind(anchor(1), pages(1)),
      { k: 'guestRead', vm: 0, gpa: anchor(1), len: 1 },
    ]);
  });
  it('gunyah-sim: punching the last page of a 2^63 − 4 KiB memory works (was EINVAL: the offset was rounded as a number)', () => {
    passes(GUNYAH, [vm(), memRaw((1n << 63n) - 4096n), { k: 'punch', mem: 1, offset: end(1), len: pages(1) }]);
  });
  it('gunyah-sim: unbinding and converting a 2^43-byte binding is quick (was: the guest relinquished it page by page, 2^31 steps)', () => {
    passes(GUNYAH, [
      vm(),
      memRaw(1n << 43n),
      bind(free(), { t: 'toEnd', asNumber: true }, { mem: 1 }),
      { k: 'guestWrite', vm: 0, gpa: piece(0), len: 1, seed: 1 },
      { k: 'convert', vm: 0, gpa: piece(0), size: pages(1), to: 'shared' },
      { k: 'unbind', vm: 0, which: 1, byHandle: false },
    ]);
  }, 5_000);
  it("toyvisor: bind({ access: 'shared' }) over a private GPA makes it shared (was: memoryState stayed private)", () => {
    passes(TOY, [
      vm(),
      mem(16),
      { k: 'convert', vm: 0, gpa: anchor(1), size: pages(1), to: 'private' },
      bind(anchor(1), pages(1), { access: 'shared' }),
    ]);
  });
  it('toyvisor: a binding keeps its memory alive after memory.close(): convert works, map() is EBADF (was EBADF from a released file)', () => {
    passes(TOY, [
      vm(),
      mem(16, { hostMappable: true }),
      bind(anchor(1), { t: 'toEnd', asNumber: true }),
      { k: 'closeMem', mem: 0 },
      { k: 'convert', vm: 0, gpa: anchor(1), size: pages(1), to: 'shared' },
      { k: 'map', mem: 0 },
      { k: 'guestRead', vm: 0, gpa: anchor(1), len: 1 },
    ]);
  });
});

/** A pending deviation: the sequence fails strictly on `t` today. */
function pending(name: string, t: FuzzTarget, d: DeviationId, cmds: Cmd[]): void {
  it.fails(`${name} [${t.name}; pending ${d}]`, () => {
    try {
      runSequence(strict(t, d), cmds);
    } catch (e) {
      if (process.env.FUZZ_DEBUG)
        console.log(`[why] ${name} ${t.name}: ${e instanceof Counterexample ? e.detail : String(e)}`.slice(0, 300));
      expect(e).toBeInstanceOf(Counterexample);
      throw e;
    }
  });
}

/**
 * A former deviation the backend now keeps (main implemented the neutral rule): the sequence that
 * showed it must pass strictly, with nothing tolerated for it.
 */
function nowKept(name: string, t: FuzzTarget, d: DeviationId, cmds: Cmd[]): void {
  it(`${name} [${t.name}; was ${d}]`, () => {
    expect(t.tolerate ?? [], `${t.name} no longer tolerates ${d}`).not.toContain(d);
    passes(t, cmds);
  });
}

describe('fuzzer regressions: neutral rules the backends now keep (were pending deviations)', () => {
  const viewThenClose = [vm(), mem(16, { hostMappable: true, initiallyShared: true }), { k: 'map', mem: 0 } as Cmd];
  for (const t of [KVM_DEFAULT, GUNYAH, TOY])
    nowKept('a host view is unmapped by Hypervisor.close() (item 2)', t, 'views-survive-hypervisor-close', viewThenClose);
  it('gunyah-sim: a view of a private page is EFAULT after Hypervisor.close() (was SIGBUS: HostViewSet.unmapAll released the mapping but left the view live)', () => {
    passes(GUNYAH, [vm(), mem(16, { hostMappable: true }), bind(free(), pages(1)), { k: 'map', mem: 0 }]);
  });

  for (const t of [GUNYAH, TOY])
    nowKept('guestRead at gpa -4096 is EINVAL (item 5e)', t, 'guest-access-bad-gpa-efault', [
      vm(),
      { k: 'guestRead', vm: 0, gpa: raw(-4096), len: 1 },
    ]);

  nowKept('an error names the hypervisor backend id, not a layer (item 6)', KVM, 'error-backend-id', [
    vm(),
    mem(16),
    { k: 'punch', mem: 0, offset: raw(0.5), len: pages(1) },
  ]);
  nowKept('an error names the hypervisor backend id, not a layer (item 6)', GUNYAH, 'error-backend-id', [
    vm(),
    { k: 'guestRead', vm: 0, gpa: raw(2 ** 53), len: 1 },
  ]);
  nowKept('an error names the hypervisor backend id, not a layer (item 6)', TOY, 'error-backend-id', [
    vm(),
    { k: 'convert', vm: 0, gpa: raw(Number.NEGATIVE_INFINITY), size: pages(1), to: 'private' },
  ]);

  nowKept('createGuestMemory({ size: 2^64 }) is EINVAL, not ERANGE (item 5e)', KVM, 'range-errno', [vm(), memRaw(1n << 64n)]);

  for (const t of [KVM_DEFAULT, GUNYAH, TOY])
    nowKept('map() past the end of the memory is EINVAL (item 5e)', t, 'map-past-end-succeeds', [
      vm(),
      mem(1, { hostMappable: true }),
      { k: 'map', mem: 0, length: pages(2) },
    ]);
  for (const t of [KVM, GUNYAH, TOY])
    nowKept('punchHole past the end of the memory is EINVAL (item 5e)', t, 'punch-past-end-succeeds', [
      vm(),
      mem(1),
      { k: 'punch', mem: 0, offset: end(1), len: pages(2) },
    ]);

  nowKept('memory without initiallyShared is never host-readable (item 5d)', GUNYAH, 'private-by-default-host-readable', [
    vm(),
    mem(16, { hostMappable: true }),
    { k: 'map', mem: 0 },
    { k: 'viewRead', view: 0, at: start(0), len: 1 },
  ]);
  nowKept('a page bound private is not host-writable before the guest touches it (item 5d)', GUNYAH, 'lent-untouched-host-accessible', [
    vm(),
    mem(16, { hostMappable: true, initiallyShared: true }),
    bind(free(), pages(1)),
    { k: 'map', mem: 0 },
    { k: 'viewWrite', view: 0, at: start(0), len: 1, seed: 1 },
  ]);
  const keeps = [
    vm(true),
    mem(16),
    bind(free(), pages(2)),
    { k: 'guestWrite', vm: 0, gpa: piece(1), len: 1, seed: 1 } as Cmd,
    { k: 'convert', vm: 0, gpa: piece(1), size: pages(1), to: 'shared', discard: false } as Cmd,
    { k: 'guestRead', vm: 0, gpa: piece(1), len: 1 } as Cmd,
  ];
  for (const t of [GUNYAH, TOY])
    nowKept('convert to shared without discard never shows the former private bytes (item 5b)', t, 'shared-keeps-private-bytes', keeps);
  // KVM: only memory created hostMappable (GUEST_MEMFD_FLAG_MMAP: the slot takes shared and private pages from the guest_memfd).
  nowKept(
    'convert to shared without discard never shows the former private bytes (item 5b; hostMappable memory)',
    KVM,
    'shared-keeps-private-bytes',
    [keeps[0]!, mem(16, { hostMappable: true }), ...keeps.slice(2)],
  );

  // Contract reading: a page bound shared may be host-reachable even when the memory started private (KVM refuses, toyvisor allows).
  nowKept(
    'the host may write a page bound shared of memory created private; never an unbound one',
    TOY,
    'private-by-default-host-readable',
    [
      vm(),
      mem(16, { hostMappable: true }),
      bind(free(), pages(1), { access: 'shared' }),
      { k: 'map', mem: 0 },
      { k: 'viewWrite', view: 0, at: start(0), len: 1, seed: 1 },
      { k: 'viewRead', view: 0, at: start(1), len: 1 },
    ],
  );
  // BindOptions.gpa / core checkGpaRange: a binding or a conversion never ends exactly at 2^64 (EINVAL on every backend).
  for (const t of [KVM, GUNYAH, TOY]) {
    it(`a binding ending exactly at 2^64 is EINVAL (item 5a) [${t.name}]`, () => passes(t, [vm(), mem(16), bind(anchor(6, 14), pages(2))]));
  }
  for (const t of [KVM, GUNYAH, TOY]) {
    it(`a conversion ending exactly at 2^64 is EINVAL (item 5a) [${t.name}]`, () =>
      passes(t, [vm(true), mem(16), { k: 'convert', vm: 0, gpa: anchor(6, 12), size: pages(4), to: 'private' }]));
  }
});

describe('fuzzer regressions: pending neutral rules (it.fails until the backend follows them)', () => {
  pending(
    "unbind keeps what the guest wrote to a shared page in the memory object ('Data stays in the memory object')",
    KVM_DEFAULT,
    'shared-data-lives-in-binding',
    [
      vm(),
      mem(16),
      bind(anchor(1), pages(2), { offset: start(3) }),
      { k: 'guestWrite', vm: 0, gpa: piece(1), len: 1, seed: 1 },
      { k: 'unbind', vm: 0, which: 0, byHandle: false },
      bind(free(), pages(3), { offset: start(4) }),
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 1 },
    ],
  );
  pending('binding an already bound memory range is EEXIST', KVM, 'file-overlap-einval', [
    vm(),
    mem(16),
    bind(free(), pages(1)),
    bind(free(1), pages(1)),
  ]);

  pending(
    "unbind keeps the guest's private data in the memory object ('Data stays in the memory object')",
    GUNYAH,
    'unbind-sanitizes-private',
    [
      vm(),
      mem(16),
      bind(free(), pages(2)),
      { k: 'guestWrite', vm: 0, gpa: piece(0), len: 2, seed: 1 },
      { k: 'unbind', vm: 0, which: 0, byHandle: false },
      bind(free(), pages(2)),
      { k: 'guestRead', vm: 0, gpa: piece(0), len: 2 },
    ],
  );
  pending('huge-page memory of any page-multiple size can be created', GUNYAH, 'huge-bind-needs-2mib', [vm(), memRaw(16384n, true)]);
  pending('huge-page memory binds at 4 KiB granularity', GUNYAH, 'huge-bind-needs-2mib', [
    vm(),
    memRaw(2n * 1024n * 1024n, true),
    bind(free(), pages(1)),
  ]);
  pending('no GPA is reserved by the adapter (its DTB page at 2^40 − 4 KiB)', GUNYAH, 'reserved-dtb-gpa', [
    vm(),
    mem(16),
    { k: 'guestRead', vm: 0, gpa: anchor(1), len: 1 },
    bind(anchor(3, 13), pages(3)),
  ]);
  pending('a guest access starts the VM even when the user bound GPA 2^40 − 4 KiB', GUNYAH, 'reserved-dtb-gpa', [
    vm(),
    mem(16),
    bind(anchor(3, 13), pages(3)),
    { k: 'guestRead', vm: 0, gpa: anchor(1), len: 1 },
  ]);
  pending('map() succeeds while the guest holds a page of the range', GUNYAH, 'map-refused-while-lent', [
    vm(),
    mem(16, { hostMappable: true }),
    bind(free(), pages(1)),
    { k: 'guestWrite', vm: 0, gpa: piece(0), len: 1, seed: 1 },
    { k: 'map', mem: 0 },
  ]);
  pending('a host view does not make guest accesses to private pages fault', GUNYAH, 'guest-fault-while-host-mapped', [
    vm(),
    mem(16, { hostMappable: true }),
    bind(free(), pages(1)),
    { k: 'map', mem: 0 },
    { k: 'guestWrite', vm: 0, gpa: anchor(1), len: 1, seed: 1 },
  ]);
});
