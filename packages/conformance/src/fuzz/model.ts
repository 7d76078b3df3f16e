/**
 * The executable model of the neutral contract (packages/core/src/hypervisor/interfaces.ts plus the
 * shared decisions of the coordination board): for every neutral call it says which outcomes are
 * allowed — the error codes a call must fail with, or what a successful call returns and what every
 * later read must give. It knows capabilities, never a backend: it reads `Capabilities.has(…)` and
 * nothing else from the implementation, and it never takes an expected value from one.
 *
 * Rules encoded here, beyond the interface's own text (each one a decision of issue 8 item 5 or of
 * the coordination board; where no rule was written down, the choice is marked "model's reading"):
 * - numbers: a non-integer, NaN, ±Infinity, an unsafe-integer number, a negative value or one out of
 *   range is EINVAL (item 5e); when several rules are broken, any of their codes is accepted (the
 *   contract does not order its checks);
 * - a binding or a conversion ends below 2^64, never exactly at it (BindOptions.gpa, core
 *   checkGpaRange); a backend may refuse GPAs its hardware cannot address (EINVAL; allowed on the
 *   targets that list 'gpa-above-host-phys-bits');
 * - unbind needs the capability 'unbind' (else EOPNOTSUPP, the binding kept);
 * - private → shared without `keepContents` (and the capability 'convert-keeps-contents') never
 *   shows the former private bytes to the guest or the host (item 5b);
 * - a punch never changes bytes outside its range; on huge-page memory a partial-folio punch may
 *   instead fail EINVAL changing nothing (item 5c);
 * - memory created without `initiallyShared` is never host-readable while private (item 5d); with
 *   it, a page is host-accessible while its last access was 'shared'; model's reading: a page of
 *   memory created private that became shared may or may not be host-reachable (KVM 6.18 never
 *   maps it; Gunyah and toyvisor do);
 * - conversions are all-or-nothing (item 4): a failed one changes nothing;
 * - model's reading: allocate/punch/map ranges are page-aligned and inside the object (map: offset
 *   below the size, length > 0 ending inside it), as fallocate on guest_memfd requires for
 *   allocate; a host-view access outside the view is EFAULT (the SIGSEGV analogue; inside the last
 *   mapped page past the asked length either answer); a guest access must lie inside one binding
 *   (else EFAULT); a file range that is already bound is EEXIST, like an overlapping GPA range;
 * - model's reading: conversions. A page that does not change keeps its bytes. A page converted to
 *   private may show what its private side held, zero, or the shared bytes (one-store backends:
 *   the guest could read those anyway, so nothing leaks); `discard` frees only a backing no longer
 *   used. A page converted to shared shows zero or what its shared side held before it went private;
 * - model's reading: read-only bindings have no capability, so a backend may refuse them with
 *   EOPNOTSUPP; resources may run out for bindings or views of 2^40 bytes and more (ENOMEM); a
 *   binding may stop reaching its memory once the memory handle is closed (EFAULT: "backend rules",
 *   a KVM memslot does not pin its guest_memfd); a 'convert-remap' backend may refuse to take back
 *   bound pages on punch (EBUSY, "May fail (Gunyah reclaim)").
 * Known deviations of today's backends are named in deviations.ts and tolerated only where a fuzz
 * target lists them.
 */
import type { Capabilities, CapabilityName, MemoryAccess } from '@guestmem/core';
import { Cands, PAGE, PAGE_N } from './content.js';
import { IntervalMap } from './intervals.js';
import type { DeviationId } from './deviations.js';

export type Num = bigint | number;
export const GPA_END = 1n << 64n;
const HUGE = 2n * 1024n * 1024n;
/** Where the Gunyah adapter puts its DTB page (tolerated deviation 'reserved-dtb-gpa'). */
const DTB_GPA = (1n << 40n) - PAGE_N;

/** The value of an exact integer argument, or undefined (NaN, fraction, ±Infinity, unsafe number, not a number). */
export function exactInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  return undefined;
}

/** One allowed outcome of a call. */
export interface Failure {
  ok: false;
  why: string;
  codes: readonly string[];
  apply?: () => void;
}
export type Outcome<T> = { ok: true; why: string; check?: (v: T) => string | undefined; apply?: (v: T) => void } | Failure;

export type Expect<T> = Outcome<T>[];

/** Broken rules collected while judging a call's arguments. */
class Violations {
  readonly codes = new Set<string>();
  readonly why: string[] = [];
  add(code: string, why: string): void {
    this.codes.add(code);
    this.why.push(`${code}: ${why}`);
  }
  get any(): boolean {
    return this.codes.size > 0;
  }
  outcome<T>(): Expect<T> {
    return [{ ok: false, codes: [...this.codes], why: this.why.join('; ') }];
  }
}

const fail = (code: string | string[], why: string, apply?: () => void): Failure => ({
  ok: false,
  codes: Array.isArray(code) ? code : [code],
  why,
  apply,
});

interface PageState {
  /** What the page reads in its current access. */
  cur: Cands;
  /** What its shared side held when it last stopped being shared (two-sided backends show it again). */
  sp: Cands;
  /** Same for the private side. */
  pp: Cands;
}

export class ModelMem {
  closed = false;
  /** Access of each page (by page index): set by bind/convert, kept by unbind. */
  readonly side: IntervalMap<MemoryAccess>;
  /** Pages whose content may be non-zero (sparse; absent = zero everywhere). */
  readonly pages = new Map<bigint, PageState>();
  constructor(
    readonly vm: ModelVm,
    readonly index: number,
    readonly size: bigint,
    readonly hostMappable: boolean,
    readonly initiallyShared: boolean,
    readonly huge: boolean,
  ) {
    this.side = new IntervalMap<MemoryAccess>(initiallyShared ? 'shared' : 'private');
  }
  page(p: bigint): PageState {
    return this.pages.get(p) ?? { cur: Cands.ZERO, sp: Cands.ZERO, pp: Cands.ZERO };
  }
  setPage(p: bigint, s: PageState): void {
    if (s.cur.isZeroOnly && s.sp.isZeroOnly && s.pp.isZeroOnly) this.pages.delete(p);
    else this.pages.set(p, s);
  }
  /** Item 5d and "the host never reads private memory". */
  hostAccessible(p: bigint, tolerated: ReadonlySet<DeviationId>): boolean | 'either' {
    if (this.initiallyShared && this.side.get(p) === 'shared') return true;
    const bound = this.boundPrivate(p);
    // A page of memory created private that a binding or conversion made shared: the contract is
    // silent (CreateGuestMemoryOptions.initiallyShared only says how pages start). KVM 6.18 never
    // maps such a guest_memfd page to the host; Gunyah and toyvisor let the host reach it. Either is
    // accepted; its contents are still checked (never former private bytes).
    if (!bound && this.side.get(p) === 'shared') return 'either';
    if (!bound && tolerated.has('private-by-default-host-readable')) return 'either';
    if (bound && !this.guestTouched.has(p) && tolerated.has('lent-untouched-host-accessible')) return 'either';
    return false;
  }
  /** Pages the guest accessed since they were last bound or converted (for a tolerated deviation). */
  readonly guestTouched = new Set<bigint>();
  /** The page is bound, at a GPA whose access is private. */
  boundPrivate(p: bigint): boolean {
    const off = p * PAGE_N;
    return this.vm.pieces.some(
      (x) =>
        x.mem === this && off >= x.offset && off < x.offset + x.size && this.vm.state.get((x.gpa + off - x.offset) / PAGE_N) === 'private',
    );
  }
}

/** A piece of a VM's bound GPA space. */
export interface Piece {
  gpa: bigint;
  size: bigint;
  mem: ModelMem;
  offset: bigint;
  readOnly: boolean;
}

/** What the model remembers of a handle returned by bind(). */
export interface HandleRecord {
  vm: ModelVm;
  gpa: bigint;
  size: bigint;
  unbound: boolean;
  /** A 'convert-remap' conversion touched it: the backend may have replaced it by pieces. */
  split: boolean;
}

export class ModelVm {
  destroyed = false;
  /** memoryState by gfn; every GPA starts 'shared' (the interface's RangeStateMap default). */
  readonly state = new IntervalMap<MemoryAccess>('shared');
  pieces: Piece[] = [];
  /** A guest access ran (a backend may have started the VM and mapped its own pages then). */
  dtbMapped = false;
  readonly handles: HandleRecord[] = [];
  constructor(
    readonly index: number,
    readonly caps: Capabilities,
  ) {}
  has(c: string): boolean {
    return this.caps.has(c as CapabilityName);
  }
  canConvert(): boolean {
    return this.has('convert-in-place') || this.has('convert-remap');
  }
  pieceAt(gpa: bigint): Piece | undefined {
    return this.pieces.find((p) => gpa >= p.gpa && gpa < p.gpa + p.size);
  }
  /** Removes `[gpa, gpa+size)` from the bound space (splitting pieces at its ends). */
  uncover(gpa: bigint, size: bigint): Piece[] {
    const end = gpa + size;
    const removed: Piece[] = [];
    const kept: Piece[] = [];
    for (const p of this.pieces) {
      const pe = p.gpa + p.size;
      if (pe <= gpa || p.gpa >= end) {
        kept.push(p);
        continue;
      }
      const lo = p.gpa > gpa ? p.gpa : gpa;
      const hi = pe < end ? pe : end;
      if (p.gpa < lo) kept.push({ ...p, size: lo - p.gpa });
      removed.push({ ...p, gpa: lo, size: hi - lo, offset: p.offset + (lo - p.gpa) });
      if (hi < pe) kept.push({ ...p, gpa: hi, size: pe - hi, offset: p.offset + (hi - p.gpa) });
    }
    this.pieces = kept.sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
    return removed;
  }
}

export interface ModelView {
  mem: ModelMem;
  offset: bigint;
  length: number;
  unmapped: boolean;
}

export interface ConvertFlags {
  discard?: boolean;
  keepContents?: boolean;
}

/** Checks `[at, at+len)` of the pages of `mem` starting at byte `base` against `got`; narrows on success. */
function judgeRead(mem: ModelMem, base: bigint, got: Uint8Array): { error?: string; narrow: () => void } {
  const narrowed: Array<[bigint, PageState]> = [];
  let done = 0;
  while (done < got.length) {
    const off = base + BigInt(done);
    const p = off / PAGE_N;
    const at = Number(off % PAGE_N);
    const n = Math.min(PAGE - at, got.length - done);
    const s = mem.page(p);
    const m = s.cur.matching(at, got.subarray(done, done + n));
    if (m.empty) {
      return {
        error: `memory #${mem.index} page ${p} bytes [${at}, +${n}) read ${[...got.subarray(done, done + Math.min(n, 16))].map((x) => x.toString(16).padStart(2, '0')).join('')}…, allowed: ${s.cur.describe(at, n)}`,
        narrow: () => {},
      };
    }
    narrowed.push([p, { ...s, cur: m }]);
    done += n;
  }
  return { narrow: () => narrowed.forEach(([p, s]) => mem.setPage(p, s)) };
}

export class Model {
  readonly vms: ModelVm[] = [];
  readonly mems: ModelMem[] = [];
  readonly views: ModelView[] = [];
  closed = false;

  constructor(
    readonly caps: Capabilities,
    readonly tolerated: ReadonlySet<DeviationId> = new Set(),
  ) {}

  tolerates(d: DeviationId): boolean {
    return this.tolerated.has(d);
  }

  // ---- Hypervisor ----

  createVm(confidential: boolean): Expect<{ capabilities: Capabilities; destroyed: boolean }> {
    if (confidential && !this.caps.has('private-memory')) return [fail('EOPNOTSUPP', 'a confidential VM needs private-memory')];
    return [
      {
        ok: true,
        why: 'createVm',
        check: ({ capabilities: c, destroyed }) => {
          if (destroyed) return 'born destroyed';
          if (confidential && !c.has('private-memory')) return 'a confidential VM without private-memory';
          for (const x of c.list()) if (!this.caps.has(x) && x !== 'private-memory') return `the VM has '${x}' the hypervisor does not`;
          return undefined;
        },
        apply: ({ capabilities: c }) => void this.vms.push(new ModelVm(this.vms.length, c)),
      },
    ];
  }

  // ---- Vm ----

  createMem(
    vm: ModelVm,
    o: { size: Num; hostMappable?: boolean; initiallyShared?: boolean; hugePages?: boolean },
  ): Expect<{ size: bigint; hostMappable: boolean; closed: boolean }> {
    const v = new Violations();
    if (vm.destroyed) v.add('EBADF', 'the VM was destroyed');
    if (o.hugePages && !vm.has('huge-pages')) v.add('EOPNOTSUPP', "hugePages without 'huge-pages'");
    if (o.hostMappable && !vm.has('host-map')) v.add('EOPNOTSUPP', "hostMappable without 'host-map'");
    if (o.initiallyShared && !vm.has('initially-shared')) v.add('EOPNOTSUPP', "initiallyShared without 'initially-shared'");
    const size = exactInt(o.size);
    if (size === undefined || size <= 0n || size % PAGE_N !== 0n || size > vm.caps.maxGuestMemorySize)
      v.add('EINVAL', `size ${String(o.size)}`);
    if (v.any) return v.outcome();
    // Tolerated (huge-bind-needs-2mib): a backend that binds huge-page memory only in 2 MiB units may
    // refuse a hugePages size that is not a 2 MiB multiple.
    const hugeRefusable = !!o.hugePages && size! % HUGE !== 0n && this.tolerates('huge-bind-needs-2mib');
    return [
      ...(hugeRefusable ? [fail('EINVAL', 'tolerated: huge-bind-needs-2mib (size)')] : []),
      {
        ok: true,
        why: 'createGuestMemory',
        check: (m) =>
          m.size !== size
            ? `size ${m.size}, asked ${size}`
            : m.closed
              ? 'born closed'
              : m.hostMappable !== !!o.hostMappable
                ? 'hostMappable differs'
                : undefined,
        apply: () => void this.mems.push(new ModelMem(vm, this.mems.length, size!, !!o.hostMappable, !!o.initiallyShared, !!o.hugePages)),
      },
    ];
  }

  /** Range rules shared by allocate and punch: page-aligned, non-empty, inside the object. */
  private fileRange(mem: ModelMem, offset: Num, len: Num, v: Violations): [bigint, bigint] | undefined {
    const off = exactInt(offset);
    const n = exactInt(len);
    if (off === undefined || n === undefined || off < 0n || n <= 0n || off % PAGE_N || n % PAGE_N || off + n > mem.size) {
      v.add('EINVAL', `range offset ${String(offset)} len ${String(len)} of a ${mem.size}-byte object`);
      return undefined;
    }
    return [off, n];
  }

  allocate(mem: ModelMem, offset: Num, len: Num): Expect<void> {
    const v = new Violations();
    if (mem.closed) v.add('EBADF', 'the memory is closed');
    this.fileRange(mem, offset, len, v);
    if (v.any) return v.outcome();
    return [{ ok: true, why: 'allocate changes no content' }];
  }

  punch(mem: ModelMem, offset: Num, len: Num): Expect<void> {
    const v = new Violations();
    if (mem.closed) v.add('EBADF', 'the memory is closed');
    if (!mem.vm.has('punch-hole')) v.add('EOPNOTSUPP', "no 'punch-hole'");
    const r = this.fileRange(mem, offset, len, v);
    if (!r && this.tolerates('punch-past-end-succeeds')) {
      const off = exactInt(offset);
      const n = exactInt(len);
      if (off !== undefined && n !== undefined && off >= 0n && n > 0n && off % PAGE_N === 0n && n % PAGE_N === 0n && off + n > mem.size) {
        const first = off / PAGE_N;
        const out: Expect<void> = [
          ...v.outcome<void>(),
          {
            ok: true,
            why: 'tolerated: punch-past-end-succeeds',
            apply: () => [...mem.pages.keys()].forEach((p) => p >= first && mem.pages.delete(p)),
          },
        ];
        if (this.mayRefuseReclaim(mem, off, n))
          out.push(fail('EBUSY', 'punching bound memory may fail on reclaim (GuestMemory.punchHole)'));
        return out;
      }
    }
    if (v.any || !r) return v.outcome();
    const [off, n] = r;
    const first = off / PAGE_N;
    const end = (off + n) / PAGE_N;
    const out: Expect<void> = [
      {
        ok: true,
        why: 'punch zeroes exactly its range',
        apply: () => {
          for (const p of [...mem.pages.keys()]) if (p >= first && p < end) mem.pages.delete(p);
        },
      },
    ];
    if (mem.huge && (off % HUGE || (off + n) % HUGE))
      out.push(fail('EINVAL', 'a partial-folio punch on huge memory may be refused (item 5c)'));
    if (this.mayRefuseReclaim(mem, off, n)) out.push(fail('EBUSY', 'punching bound memory may fail on reclaim (GuestMemory.punchHole)'));
    return out;
  }

  /** A 'convert-remap' backend may refuse to take back bound pages (Gunyah: lent pages the guest holds). */
  private mayRefuseReclaim(mem: ModelMem, off: bigint, n: bigint): boolean {
    return mem.vm.has('convert-remap') && mem.vm.pieces.some((p) => p.mem === mem && p.offset < off + n && off < p.offset + p.size);
  }

  map(mem: ModelMem, o: { offset?: Num; length?: number }): Expect<{ length: number }> {
    const v = new Violations();
    if (!mem.vm.has('host-map')) v.add('EOPNOTSUPP', "no 'host-map'");
    if (mem.closed) v.add('EBADF', 'the memory is closed');
    if (!mem.hostMappable) v.add('ENODEV', 'memory created without hostMappable');
    const off = exactInt(o.offset ?? 0);
    if (off === undefined || off < 0n || off % PAGE_N || off >= mem.size) v.add('EINVAL', `offset ${String(o.offset)}`);
    let length = 0;
    if (off !== undefined && off >= 0n && off < mem.size) {
      const len = o.length ?? Number(mem.size - off);
      if (!Number.isSafeInteger(len) || len <= 0 || BigInt(len) > mem.size - off) v.add('EINVAL', `length ${String(o.length)}`);
      else length = len;
    }
    // Resource exhaustion (model's reading): a view this large may not fit the host address space.
    if (v.any && o.length !== undefined && Number.isSafeInteger(o.length) && o.length >= 2 ** 40)
      v.add('ENOMEM', 'a view this large may not fit');
    // Tolerated: a backend refusing to map pages the guest holds (checked before the range rules).
    const busy = (o2: bigint, l2: number): boolean =>
      this.tolerates('map-refused-while-lent') &&
      mem.vm.pieces.some((x) => x.mem === mem && x.offset < o2 + BigInt(l2) && o2 < x.offset + x.size);
    const len0 = o.length ?? (off !== undefined ? Number(mem.size - off) : 0);
    if (
      v.any &&
      mem.hostMappable &&
      !mem.closed &&
      off !== undefined &&
      off >= 0n &&
      Number.isSafeInteger(len0) &&
      len0 > 0 &&
      busy(off, len0)
    )
      v.add('EBUSY', 'tolerated: map-refused-while-lent');
    if (v.any) {
      const out = v.outcome<{ length: number }>();
      // Tolerated: the mapping is made as asked and the pages past the end fault.
      if (this.tolerates('map-past-end-succeeds') && mem.hostMappable && off !== undefined && off >= 0n && off % PAGE_N === 0n) {
        const len = o.length ?? Number(mem.size - off);
        if (Number.isSafeInteger(len) && len > 0 && off + BigInt(len) > mem.size) {
          out.push({
            ok: true,
            why: 'tolerated: map-past-end-succeeds',
            apply: () => void this.views.push({ mem, offset: off, length: len, unmapped: false }),
          });
        }
      }
      return out;
    }
    const out: Expect<{ length: number }> = [
      {
        ok: true,
        why: 'map',
        check: (view) =>
          view.length < length || view.length > length + PAGE ? `view length ${view.length} for ${length} asked` : undefined,
        apply: () => void this.views.push({ mem, offset: off!, length, unmapped: false }),
      },
    ];
    if (length >= 2 ** 40) out.push(fail('ENOMEM', 'a view this large may not fit the host address space'));
    if (busy(off!, length)) out.push(fail('EBUSY', 'tolerated: map-refused-while-lent'));
    return out;
  }

  /** A view access of `[at, at+len)`: the view's bounds, then each page's host access. */
  private viewAccess(view: ModelView, at: number, len: number): { err?: Failure; alt?: Failure; base: bigint } {
    if (view.unmapped || this.closed) return { err: fail(['EFAULT', 'EBADF'], 'the view was unmapped'), base: 0n };
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(len) || at < 0 || len <= 0 || at + len > Math.ceil(view.length / PAGE) * PAGE) {
      return { err: fail(['EFAULT', 'EINVAL'], `[${at}, +${len}) is outside the ${view.length}-byte view`), base: 0n };
    }
    // Past the asked length but inside the mapping's last page: the backend may refuse it as outside
    // the view (EFAULT) or treat it as mapped (model's reading).
    const tail = at + len > view.length ? fail(['EFAULT', 'EINVAL'], 'past the asked length, inside the last mapped page') : undefined;
    const base = view.offset + BigInt(at);
    const refused = (p: bigint): Failure =>
      fail(['SIGBUS', 'EFAULT', 'EPERM', 'EACCES'], `page ${p} of memory #${view.mem.index} is not host-accessible`);
    let alt: Failure | undefined;
    for (let p = base / PAGE_N; p <= (base + BigInt(len) - 1n) / PAGE_N; p++) {
      const a = p >= view.mem.size / PAGE_N ? false : view.mem.hostAccessible(p, this.tolerated);
      if (a === false) return { err: tail ? { ...refused(p), codes: [...refused(p).codes, 'EINVAL'] } : refused(p), base };
      if (a === 'either') alt = refused(p);
    }
    if (tail) alt = alt ? { ...alt, codes: [...alt.codes, 'EINVAL'] } : tail;
    return { base, alt };
  }

  viewRead(view: ModelView, at: number, len: number): Expect<Uint8Array> {
    const { err, alt, base } = this.viewAccess(view, at, len);
    if (err) return [err];
    let pending: (() => void) | undefined;
    return [
      {
        ok: true,
        why: 'host read',
        check: (got) => {
          if (got.length !== len) return `read ${got.length} bytes, asked ${len}`;
          const j = judgeRead(view.mem, base, got);
          pending = j.narrow;
          return j.error;
        },
        apply: () => pending?.(),
      },
      ...(alt ? [alt] : []),
    ];
  }

  viewWrite(view: ModelView, at: number, data: Uint8Array): Expect<void> {
    const { err, alt, base } = this.viewAccess(view, at, data.length);
    if (err) return [err];
    return [{ ok: true, why: 'host write', apply: () => writeBytes(view.mem, base, data) }, ...(alt ? [alt] : [])];
  }

  viewUnmap(view: ModelView): Expect<void> {
    return [{ ok: true, why: 'unmap (idempotent)', apply: () => void (view.unmapped = true) }];
  }

  bind(
    vm: ModelVm,
    mem: ModelMem,
    o: { offset: Num; gpa: Num; size: Num; access?: MemoryAccess; readOnly?: boolean },
  ): Expect<{ gpa: bigint; size: bigint; offset: bigint; readOnly: boolean; active: boolean }> {
    const v = new Violations();
    if (vm.destroyed) v.add('EBADF', 'the VM was destroyed');
    if (mem.vm !== vm) v.add('EINVAL', "another VM's memory");
    else if (mem.closed) v.add('EBADF', 'the memory is closed');
    const access: MemoryAccess = o.access ?? (vm.has('private-memory') ? 'private' : 'shared');
    if (access === 'private' && !vm.has('private-memory')) v.add('EOPNOTSUPP', "private access without 'private-memory'");
    const gpa = exactInt(o.gpa);
    const size = exactInt(o.size);
    const off = exactInt(o.offset);
    if (gpa === undefined || size === undefined || off === undefined)
      v.add('EINVAL', `gpa ${String(o.gpa)} size ${String(o.size)} offset ${String(o.offset)}`);
    else {
      // BindOptions.gpa: a binding ends below 2^64 (never exactly at it).
      if (gpa < 0n || gpa % PAGE_N || gpa + size >= GPA_END) v.add('EINVAL', `gpa 0x${gpa.toString(16)} (+${size})`);
      // BindOptions.gpa: a backend may refuse GPAs its hardware cannot address (KVM: a slot must end at or below 2^52).
      if (gpa + size > 1n << 52n && this.tolerates('gpa-above-host-phys-bits')) v.add('EINVAL', 'allowed: gpa-above-host-phys-bits');
      if (size <= 0n || size % PAGE_N) v.add('EINVAL', `size ${size}`);
      if (off < 0n || off % PAGE_N || off + size > mem.size) v.add('EINVAL', `offset ${off} (+${size}) of ${mem.size}`);
      if (!v.any && !vm.destroyed) {
        if (vm.pieces.some((p) => p.gpa < gpa + size && gpa < p.gpa + p.size)) v.add('EEXIST', 'the GPA range overlaps a binding');
        if (vm.pieces.some((p) => p.mem === mem && p.offset < off + size && off < p.offset + p.size)) {
          v.add('EEXIST', 'the memory range is already bound');
          if (this.tolerates('file-overlap-einval')) v.add('EINVAL', 'tolerated: file-overlap-einval');
        }
      }
    }
    const readOnly = !!o.readOnly;
    if (
      gpa !== undefined &&
      size !== undefined &&
      size > 0n &&
      vm.dtbMapped &&
      this.tolerates('reserved-dtb-gpa') &&
      gpa < DTB_GPA + PAGE_N &&
      DTB_GPA < gpa + size
    )
      v.add('EEXIST', 'tolerated: reserved-dtb-gpa');
    // Host resources may be taken before the other checks (KVM maps a slot's shared side first).
    if (v.any && size !== undefined && size >= 1n << 40n) v.add('ENOMEM', 'a binding this large may exhaust host resources');
    const hugeMisaligned =
      mem.huge &&
      gpa !== undefined &&
      off !== undefined &&
      size !== undefined &&
      (gpa % HUGE || off % HUGE || size % HUGE) &&
      this.tolerates('huge-bind-needs-2mib');
    if (v.any && hugeMisaligned) v.add('EINVAL', 'tolerated: huge-bind-needs-2mib');
    // No capability names read-only bindings: a backend without them refuses them (model's reading).
    if (v.any && readOnly) v.add('EOPNOTSUPP', 'read-only bindings may be refused first');
    if (v.any) return v.outcome();
    const out: Expect<{ gpa: bigint; size: bigint; offset: bigint; readOnly: boolean; active: boolean }> = [
      {
        ok: true,
        why: 'bind',
        check: (b) =>
          b.gpa !== gpa || b.size !== size || b.offset !== off || b.readOnly !== readOnly || !b.active
            ? `binding {gpa ${b.gpa}, size ${b.size}, offset ${b.offset}, readOnly ${b.readOnly}, active ${b.active}}`
            : undefined,
        apply: () => {
          vm.pieces.push({ gpa: gpa!, size: size!, mem, offset: off!, readOnly });
          vm.pieces.sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
          vm.handles.push({ vm, gpa: gpa!, size: size!, unbound: false, split: false });
          this.transition(mem, off! / PAGE_N, (off! + size!) / PAGE_N, access, { discard: false });
          vm.state.set(gpa! / PAGE_N, (gpa! + size!) / PAGE_N, access);
        },
      },
    ];
    if (readOnly) out.push(fail('EOPNOTSUPP', 'read-only bindings are not offered'));
    // Resource exhaustion (model's reading): a binding's host-side resources may not fit (KVM maps
    // the shared side of a slot in the 47-bit user address space).
    if (size! >= 1n << 40n) out.push(fail('ENOMEM', 'a binding this large may exhaust host resources'));
    if (hugeMisaligned) out.push(fail('EINVAL', 'tolerated: huge-bind-needs-2mib'));
    return out;
  }

  /** Unbinds `[gpa, gpa+size)` (a binding the backend lists, or a handle still active). */
  unbind(vm: ModelVm, gpa: bigint, size: bigint): Expect<void> {
    // MemoryBinding.unbind: needs 'unbind', else EOPNOTSUPP and the binding is kept.
    if (!vm.has('unbind')) return [fail('EOPNOTSUPP', "no 'unbind'")];
    return [
      {
        ok: true,
        why: 'unbind',
        apply: () => {
          for (const h of vm.handles) if (!h.unbound && h.gpa >= gpa && h.gpa + h.size <= gpa + size) h.unbound = true;
          const removed = vm.uncover(gpa, size);
          if (this.tolerates('shared-data-lives-in-binding'))
            for (const p of removed)
              if (!p.mem.hostMappable) this.dropSide(p.mem, p.offset / PAGE_N, (p.offset + p.size) / PAGE_N, 'shared');
          if (this.tolerates('unbind-sanitizes-private'))
            for (const p of removed) this.dropSide(p.mem, p.offset / PAGE_N, (p.offset + p.size) / PAGE_N, 'private');
        },
      },
    ];
  }

  /** Tolerated deviations at unbind: one side of these pages may have been dropped (reads zero). */
  private dropSide(mem: ModelMem, first: bigint, end: bigint, side: MemoryAccess): void {
    for (const [p, s] of [...mem.pages]) {
      if (p < first || p >= end) continue;
      const cur = mem.side.get(p) === side ? s.cur.union(Cands.ZERO) : s.cur;
      mem.setPage(p, side === 'shared' ? { ...s, cur, sp: s.sp.union(Cands.ZERO) } : { ...s, cur, pp: s.pp.union(Cands.ZERO) });
    }
  }

  /** Pages of `mem` in `[first, end)` take access `to`; what each page then reads (see the file header). */
  private transition(mem: ModelMem, first: bigint, end: bigint, to: MemoryAccess, f: ConvertFlags & { keep?: boolean }): void {
    const discard = f.discard ?? true;
    for (const [p, s] of [...mem.pages]) {
      if (p < first || p >= end) continue;
      const from = mem.side.get(p);
      const past = (a: MemoryAccess): Cands => (a === 'shared' ? s.sp : s.pp);
      let n: PageState;
      if (from === to) {
        // Nothing to convert; a discard may free the unused side.
        n = discard ? (to === 'shared' ? { ...s, pp: s.pp.union(Cands.ZERO) } : { ...s, sp: s.sp.union(Cands.ZERO) }) : s;
      } else if (to === 'private') {
        // The guest may see what the private side held, zero, or the shared bytes (one-store
        // backends, KVM's gmem-only slots): shared bytes becoming private leak nothing, and
        // `discard` frees only a backing that is no longer used (model's reading).
        const cur = Cands.ZERO.union(past('private')).union(s.cur);
        n = { cur, pp: s.pp, sp: discard ? Cands.ZERO : s.cur };
      } else {
        // To shared: never the former private bytes (item 5b), unless asked and offered.
        const cur = f.keep
          ? s.cur
          : this.tolerates('shared-keeps-private-bytes') && !discard
            ? Cands.ZERO.union(s.sp).union(s.cur)
            : Cands.ZERO.union(s.sp);
        n = { cur, sp: s.sp, pp: discard ? Cands.ZERO : s.cur };
      }
      mem.setPage(p, n);
    }
    for (const p of [...mem.guestTouched]) if (p >= first && p < end) mem.guestTouched.delete(p);
    mem.side.set(first, end, to);
  }

  convert(vm: ModelVm, range: { gpa: Num; size: Num }, to: MemoryAccess, opts: ConvertFlags | undefined): Expect<void> {
    const v = new Violations();
    if (vm.destroyed) v.add('EBADF', 'the VM was destroyed');
    if (!vm.canConvert()) v.add('EOPNOTSUPP', 'no conversion capability');
    const gpa = exactInt(range.gpa);
    const size = exactInt(range.size);
    // The neutral range rule (core checkGpaRange): like a binding, a range ends below 2^64.
    if (gpa === undefined || size === undefined || gpa < 0n || size <= 0n || gpa % PAGE_N || size % PAGE_N || gpa + size >= GPA_END) {
      v.add('EINVAL', `range gpa ${String(range.gpa)} size ${String(range.size)}`);
    }
    const keepAsked = !!opts?.keepContents;
    const keepOffered = vm.has('convert-keeps-contents');
    if (v.any) return v.outcome();
    const end = gpa! + size!;
    const touched = vm.pieces.filter((p) => p.gpa < end && gpa! < p.gpa + p.size);
    const apply = (keep: boolean) => (): void => {
      for (const p of touched) {
        const lo = p.gpa > gpa! ? p.gpa : gpa!;
        const hi = p.gpa + p.size < end ? p.gpa + p.size : end;
        this.transition(p.mem, (p.offset + lo - p.gpa) / PAGE_N, (p.offset + hi - p.gpa) / PAGE_N, to, { discard: opts?.discard, keep });
      }
      if (vm.has('convert-remap')) for (const h of vm.handles) if (!h.unbound && h.gpa < end && gpa! < h.gpa + h.size) h.split = true;
      vm.state.set(gpa! / PAGE_N, end / PAGE_N, to);
    };
    const out: Expect<void> = [{ ok: true, why: `convert to ${to}`, apply: apply(keepAsked && keepOffered && to === 'shared') }];
    if (keepAsked && !keepOffered) out.push(fail('EOPNOTSUPP', "keepContents without 'convert-keeps-contents'"));
    for (const p of touched) {
      if (!p.mem.huge) continue;
      const lo = p.gpa > gpa! ? p.gpa : gpa!;
      const hi = p.gpa + p.size < end ? p.gpa + p.size : end;
      if ((lo - p.gpa + p.offset) % HUGE || (hi - p.gpa + p.offset) % HUGE) {
        out.push(fail('EINVAL', 'a huge-page binding may convert in 2 MiB units only'));
        break;
      }
    }
    return out;
  }

  /** The guest access rules shared by read and write. */
  private guestAccess(
    vm: ModelVm,
    gpa: Num,
    len: number,
    write: boolean,
  ): { err?: Failure; dtb?: boolean; piece?: Piece; at?: bigint; closedMem?: boolean } {
    const v = new Violations();
    if (vm.destroyed) v.add('EBADF', 'the VM was destroyed');
    if (!vm.has('guest-access')) v.add('EOPNOTSUPP', "no 'guest-access'");
    const g = exactInt(gpa);
    const badArgs = g === undefined || g < 0n || g >= GPA_END || !Number.isSafeInteger(len) || len <= 0 || g + BigInt(len) > GPA_END;
    if (badArgs) {
      v.add('EINVAL', `gpa ${String(gpa)} len ${len}`);
      if (this.tolerates('guest-access-bad-gpa-efault') && g !== undefined) v.add('EFAULT', 'tolerated: guest-access-bad-gpa-efault');
    }
    // Tolerated: a backend that starts the VM (and maps its DTB) before judging the access, so
    // even an access that faults starts it. Bad arguments are refused before anything starts.
    if (!badArgs && !vm.destroyed && vm.has('guest-access') && !vm.dtbMapped && this.tolerates('reserved-dtb-gpa')) {
      if (vm.pieceAt(DTB_GPA)) v.add('EEXIST', 'tolerated: reserved-dtb-gpa (the VM cannot start: its DTB GPA is bound)');
      // gunyah-ack-sim answers ENOENT there (GH_VM_START: no binding of its own holds the DTB).
      if (vm.pieceAt(DTB_GPA)) v.add('ENOENT', 'tolerated: reserved-dtb-gpa (the VM cannot start: its DTB GPA is bound)');
      else vm.dtbMapped = true;
    }
    if (v.any) return { err: { ok: false, codes: [...v.codes], why: v.why.join('; ') } };
    const piece = vm.pieceAt(g!);
    if (!piece && g! >= DTB_GPA && g! < DTB_GPA + PAGE_N && this.tolerates('reserved-dtb-gpa'))
      return { err: fail('EFAULT', 'no binding'), dtb: true };
    if (!piece || g! + BigInt(len) > piece.gpa + piece.size)
      return { err: fail('EFAULT', `[0x${g!.toString(16)}, +${len}) is not inside one binding`) };
    if (write && piece.readOnly) return { err: fail('EFAULT', 'a read-only binding written') };
    const at = piece.offset + (g! - piece.gpa);
    const mapped =
      this.tolerates('guest-fault-while-host-mapped') &&
      vm.state.get(g! / PAGE_N) === 'private' &&
      this.views.some((w) => w.mem === piece.mem && !w.unmapped && at >= w.offset && at < w.offset + BigInt(w.length) + PAGE_N);
    return { piece, at, closedMem: piece.mem.closed || mapped };
  }

  guestRead(vm: ModelVm, gpa: Num, len: number): Expect<Uint8Array> {
    const a = this.guestAccess(vm, gpa, len, false);
    // Tolerated: the adapter's own DTB page answers guest accesses with its contents.
    if (a.dtb) return [a.err!, { ok: true, why: 'tolerated: reserved-dtb-gpa' }];
    if (a.err) return [a.err];
    let pending: (() => void) | undefined;
    const out: Expect<Uint8Array> = [
      {
        ok: true,
        why: 'guest read',
        check: (got) => {
          if (got.length !== len) return `read ${got.length} bytes, asked ${len}`;
          const j = judgeRead(a.piece!.mem, a.at!, got);
          pending = j.narrow;
          return j.error;
        },
        apply: () => {
          pending?.();
          a.piece!.mem.guestTouched.add(a.at! / PAGE_N);
        },
      },
    ];
    // "Memory lives on while bindings or views pin it (backend rules)": a KVM memslot does not pin.
    if (a.closedMem) out.push(fail('EFAULT', 'the binding outlived its closed memory'));
    return out;
  }

  guestWrite(vm: ModelVm, gpa: Num, data: Uint8Array): Expect<void> {
    const a = this.guestAccess(vm, gpa, data.length, true);
    if (a.dtb) return [a.err!, { ok: true, why: 'tolerated: reserved-dtb-gpa' }];
    if (a.err) return [a.err];
    const out: Expect<void> = [
      {
        ok: true,
        why: 'guest write',
        apply: () => {
          writeBytes(a.piece!.mem, a.at!, data);
          a.piece!.mem.guestTouched.add(a.at! / PAGE_N);
        },
      },
    ];
    if (a.closedMem) out.push(fail('EFAULT', 'the binding outlived its closed memory'));
    return out;
  }

  destroyVm(vm: ModelVm): Expect<void> {
    return [
      {
        ok: true,
        why: 'destroy (idempotent)',
        apply: () => {
          for (const p of [...vm.pieces]) this.unbind(vm, p.gpa, p.size)[0]!.apply?.(undefined as never);
          vm.destroyed = true;
        },
      },
    ];
  }

  closeMem(mem: ModelMem): Expect<void> {
    return [{ ok: true, why: 'close (idempotent)', apply: () => void (mem.closed = true) }];
  }

  closeHypervisor(): Expect<void> {
    return [
      {
        ok: true,
        why: 'hypervisor close',
        apply: () => {
          for (const vm of this.vms) this.destroyVm(vm)[0]!.apply?.(undefined as never);
          for (const m of this.mems) m.closed = true;
          this.closed = true;
        },
      },
    ];
  }
}

function writeBytes(mem: ModelMem, base: bigint, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) {
    const off = base + BigInt(done);
    const p = off / PAGE_N;
    const at = Number(off % PAGE_N);
    const n = Math.min(PAGE - at, data.length - done);
    const s = mem.page(p);
    mem.setPage(p, { ...s, cur: s.cur.write(at, data.subarray(done, done + n)) });
    done += n;
  }
}
