/**
 * Runs a command sequence on one backend and, step by step, on the model: each real outcome (value
 * or GuestMemError code) must be one the model allows, and after each step the observable state —
 * bindings, memoryState, handle and object flags — must equal the model's. The first mismatch is
 * the counterexample.
 */
import {
  GuestMemError,
  type Hypervisor,
  type GuestMemory,
  type HostView,
  type MemoryBinding,
  type Vm,
  type MemoryAccess,
} from '@guestmem/core';
import { ANCHORS, asRaw, pattern, type AddrSpec, type Cmd, type Raw, type SizeSpec } from './commands.js';
import { PAGE, PAGE_N } from './content.js';
import type { DeviationId } from './deviations.js';
import { exactInt, GPA_END, Model, type Expect, type ModelMem, type ModelView, type ModelVm, type Piece } from './model.js';

/** A backend the fuzzer runs on. */
export interface FuzzTarget {
  /** Shown in test names and reports. */
  name: string;
  /** A fresh hypervisor per sequence (closed by the runner). */
  create: () => Hypervisor;
  /** Why the target cannot run here (e.g. no usable /dev/kvm); the tests then skip with this reason. */
  skip?: string | false;
  /** Known deviations tolerated on this target (see deviations.ts). */
  tolerate?: readonly DeviationId[];
}

/** A counterexample: the step where the backend left the contract, and what happened. */
export class Counterexample extends Error {
  constructor(
    readonly step: number,
    readonly cmd: Cmd | 'close',
    readonly detail: string,
    readonly trace: readonly string[],
  ) {
    super(`step ${step} ${cmd === 'close' ? 'hypervisor close' : show(cmd)}: ${detail}\ntrace:\n${trace.join('\n')}`);
    this.name = 'Counterexample';
  }
}

export function show(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : typeof x === 'number' && !Number.isFinite(x) ? String(x) : x));
}

type Observed<T> = { ok: true; value: T } | { ok: false; error: unknown };

function observe<T>(fn: () => T): Observed<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

const fmt = (e: unknown): string =>
  e instanceof GuestMemError ? `${e.code} (${e.message})` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
const fmtExpect = (x: ReadonlyArray<{ ok: boolean; why: string; codes?: readonly string[] }>): string =>
  x.map((o) => (o.ok ? `ok (${o.why})` : `${(o.codes ?? []).join('|')} (${o.why})`)).join(' or ');

/** One sequence on one backend. */
export class SequenceRun {
  readonly model: Model;
  private readonly h: Hypervisor;
  private readonly vms: Vm[] = [];
  private readonly mems: GuestMemory[] = [];
  private readonly views: HostView[] = [];
  private readonly handles = new Map<ModelVm, MemoryBinding[]>();
  private readonly trace: string[] = [];
  private step = 0;
  /** GFNs the last step touched (checked against memoryState after it). */
  private touched: Array<[ModelVm, bigint, bigint]> = [];

  constructor(
    readonly target: FuzzTarget,
    private readonly stats?: FuzzStats,
  ) {
    this.h = target.create();
    this.model = new Model(this.h.capabilities, new Set(target.tolerate ?? []));
  }

  private fail(cmd: Cmd | 'close', detail: string): never {
    throw new Counterexample(this.step, cmd, detail, this.trace);
  }

  /** Runs `fn` and matches what it did against `expect`; applies the matching outcome to the model. */
  private judge<T>(cmd: Cmd | 'close', expect: Expect<T>, fn: () => T): Observed<T> {
    const got = observe(fn);
    if (!got.ok) {
      const e = got.error;
      if (!(e instanceof GuestMemError)) this.fail(cmd, `threw a non-GuestMemError: ${fmt(e)}; expected ${fmtExpect(expect)}`);
      if (e.backend !== this.h.id && !this.model.tolerates('error-backend-id'))
        this.fail(cmd, `error backend '${e.backend}' is not the hypervisor id '${this.h.id}'`);
      const rangeErrno = this.model.tolerates('range-errno') && ['ERANGE', 'EOVERFLOW', 'EFBIG'].includes(e.code);
      const o = expect.find((x) => !x.ok && (x.codes.includes(e.code) || (rangeErrno && x.codes.includes('EINVAL'))));
      if (!o || o.ok) this.fail(cmd, `failed with ${fmt(e)}; expected ${fmtExpect(expect)}`);
      o.apply?.();
      this.stats?.count(cmd, e.code);
      this.trace.push(`  ${this.step}: ${cmd === 'close' ? 'close' : show(cmd)} -> ${e.code}`);
      return got;
    }
    const problems: string[] = [];
    for (const o of expect) {
      if (!o.ok) continue;
      const p = o.check?.(got.value);
      if (p === undefined) {
        o.apply?.(got.value);
        this.stats?.count(cmd, 'ok');
        this.trace.push(`  ${this.step}: ${cmd === 'close' ? 'close' : show(cmd)} -> ok`);
        return got;
      }
      problems.push(p);
    }
    this.fail(cmd, problems.length ? `succeeded but: ${problems.join('; ')}` : `succeeded; expected ${fmtExpect(expect)}`);
  }

  // ---- resolution of indices and specs against the model ----

  private vmAt(i: number): [ModelVm, Vm] | undefined {
    const n = this.model.vms.length;
    if (!n) return undefined;
    return [this.model.vms[i % n]!, this.vms[i % n]!];
  }
  private memAt(i: number): [ModelMem, GuestMemory] | undefined {
    const n = this.model.mems.length;
    if (!n) return undefined;
    return [this.model.mems[i % n]!, this.mems[i % n]!];
  }

  private addr(s: AddrSpec, ctx: { mem?: ModelMem; vm?: ModelVm; length?: number }): Raw {
    if (s.t === 'raw') return s.v;
    const off = BigInt(s.pages) * PAGE_N + ('delta' in s ? BigInt(s.delta) : 0n);
    let base = 0n;
    if (s.t === 'memEnd')
      return asRaw(
        (ctx.length !== undefined ? BigInt(ctx.length) : (ctx.mem?.size ?? 0n)) - BigInt(s.pages) * PAGE_N + BigInt(s.delta),
        s.asNumber,
      );
    if (s.t === 'piece') {
      const ps = ctx.vm?.pieces ?? [];
      base = ps.length ? ps[s.which % ps.length]!.gpa : ANCHORS[1]!;
    }
    if (s.t === 'free') {
      const ps = ctx.vm?.pieces ?? [];
      // The end of the highest piece below 2^63 (the top anchors have their own commands).
      const ends = ps.map((p) => p.gpa + p.size).filter((e) => e < 1n << 63n);
      return asRaw((ends.length ? ends.reduce((a, b) => (a > b ? a : b)) : ANCHORS[1]!) + BigInt(s.pages) * PAGE_N, s.asNumber);
    }
    if (s.t === 'anchor') base = ANCHORS[s.anchor % ANCHORS.length]!;
    return asRaw(base + off, s.asNumber);
  }

  private size(s: SizeSpec, rest: bigint | undefined): Raw {
    if (s.t === 'raw') return s.v;
    if (s.t === 'toEnd') return asRaw(rest !== undefined && rest > 0n ? rest : PAGE_N, s.asNumber);
    return asRaw(BigInt(s.pages) * PAGE_N + BigInt(s.delta), s.asNumber);
  }

  private touch(vm: ModelVm, gpa: Raw, size: Raw): void {
    const g = exactInt(gpa);
    const n = exactInt(size);
    if (g === undefined || n === undefined || g < 0n || n <= 0n || g + n > GPA_END) return;
    this.touched.push([vm, g / PAGE_N, (g + n + PAGE_N - 1n) / PAGE_N]);
  }

  // ---- one command ----

  run(cmd: Cmd): void {
    this.step++;
    this.touched = [];
    const m = this.model;
    switch (cmd.k) {
      case 'createVm': {
        if (m.vms.length >= 4) return;
        const got = this.judge(cmd, m.createVm(cmd.confidential), () => this.h.createVm({ confidential: cmd.confidential }));
        if (got.ok) this.vms.push(got.value);
        return;
      }
      case 'createMem': {
        const r = this.vmAt(cmd.vm);
        if (!r || m.mems.length >= 8) return;
        const [mv, vm] = r;
        const opts = {
          size: this.size(cmd.size, undefined),
          hostMappable: cmd.hostMappable,
          initiallyShared: cmd.initiallyShared,
          hugePages: cmd.hugePages,
        };
        let mem: GuestMemory | undefined;
        const got = this.judge(cmd, m.createMem(mv, opts), () => (mem = vm.createGuestMemory(opts)));
        if (got.ok) this.mems.push(mem!);
        return;
      }
      case 'allocate':
      case 'punch': {
        const r = this.memAt(cmd.mem);
        if (!r) return;
        const [mm, mem] = r;
        const offset = this.addr(cmd.offset, { mem: mm });
        const len = this.size(cmd.len, exactInt(offset) !== undefined ? mm.size - exactInt(offset)! : undefined);
        if (cmd.k === 'allocate') this.judge(cmd, m.allocate(mm, offset, len), () => mem.allocate(offset, len));
        else this.judge(cmd, m.punch(mm, offset, len), () => mem.punchHole(offset, len));
        return;
      }
      case 'map': {
        const r = this.memAt(cmd.mem);
        if (!r || m.views.length >= 8) return;
        const [mm, mem] = r;
        const opts: { offset?: Raw; length?: number } = {};
        if (cmd.offset) opts.offset = this.addr(cmd.offset, { mem: mm });
        if (cmd.length) {
          const off = exactInt(opts.offset ?? 0);
          const l = this.size(cmd.length, off !== undefined ? mm.size - off : undefined);
          opts.length = Number(l);
        } else if (mm.size > 1n << 30n) opts.length = PAGE * 4;
        const got = this.judge(cmd, m.map(mm, opts), () => mem.map(opts));
        if (got.ok) this.views.push(got.value);
        return;
      }
      case 'viewRead':
      case 'viewWrite': {
        if (!m.views.length) return;
        const i = cmd.view % m.views.length;
        const mv: ModelView = m.views[i]!;
        const view = this.views[i]!;
        const at = Number(this.addr(cmd.at, { length: mv.length }));
        if (cmd.k === 'viewRead') this.judge(cmd, m.viewRead(mv, at, cmd.len), () => view.read(at, cmd.len));
        else {
          // A host write stays inside one page (a refused page part-way would otherwise be a partial write).
          const len = Number.isSafeInteger(at) && at >= 0 ? Math.min(cmd.len, PAGE - Number((mv.offset + BigInt(at)) % PAGE_N)) : cmd.len;
          const data = pattern(len, cmd.seed);
          this.judge(cmd, m.viewWrite(mv, at, data), () => view.write(at, data));
        }
        return;
      }
      case 'viewUnmap': {
        if (!m.views.length) return;
        const i = cmd.view % m.views.length;
        this.judge(cmd, m.viewUnmap(m.views[i]!), () => this.views[i]!.unmap());
        return;
      }
      case 'bind': {
        const r = this.vmAt(cmd.vm);
        const q = this.memAt(cmd.mem);
        if (!r || !q) return;
        const [mv, vm] = r;
        const [mm, mem] = q;
        const offset = this.addr(cmd.offset, { mem: mm });
        const gpa = this.addr(cmd.gpa, { vm: mv });
        const o = exactInt(offset);
        const size = this.size(cmd.size, o !== undefined ? mm.size - o : undefined);
        const opts = { memory: mem, offset, gpa, size, readOnly: cmd.readOnly, ...(cmd.access ? { access: cmd.access } : {}) };
        const got = this.judge(cmd, m.bind(mv, mm, opts), () => vm.bind(opts));
        if (got.ok) this.handlesOf(mv).push(got.value);
        this.touch(mv, gpa, size);
        return;
      }
      case 'unbind': {
        const r = this.vmAt(cmd.vm);
        if (!r) return;
        const [mv, vm] = r;
        if (cmd.byHandle) {
          const hs = this.handlesOf(mv);
          if (!hs.length) return;
          const j = cmd.which % hs.length;
          const rec = mv.handles[j]!;
          const b = hs[j]!;
          // A handle a 'convert-remap' conversion replaced by pieces is inactive: unbind is a no-op.
          const noop = rec.unbound || mv.destroyed || (rec.split && !b.active);
          this.judge(cmd, noop ? [{ ok: true, why: 'unbind of an inactive handle is a no-op' }] : m.unbind(mv, rec.gpa, rec.size), () =>
            b.unbind(),
          );
          this.touch(mv, rec.gpa, rec.size);
        } else {
          const list = mv.destroyed ? [] : vm.bindings();
          if (!list.length) return;
          const b = list[cmd.which % list.length]!;
          this.judge(cmd, m.unbind(mv, b.gpa, b.size), () => b.unbind());
          this.touch(mv, b.gpa, b.size);
        }
        return;
      }
      case 'convert': {
        const r = this.vmAt(cmd.vm);
        if (!r) return;
        const [mv, vm] = r;
        const range = { gpa: this.addr(cmd.gpa, { vm: mv }), size: this.size(cmd.size, undefined) };
        const opts: { discard?: boolean; keepContents?: boolean } = {};
        if (cmd.discard !== undefined) opts.discard = cmd.discard;
        if (cmd.keepContents) opts.keepContents = true;
        this.judge(cmd, m.convert(mv, range, cmd.to, opts), () => vm.convert(range, cmd.to, opts));
        this.touch(mv, range.gpa, range.size);
        return;
      }
      case 'guestRead':
      case 'guestWrite': {
        const r = this.vmAt(cmd.vm);
        if (!r) return;
        const [mv, vm] = r;
        const gpa = this.addr(cmd.gpa, { vm: mv });
        const g = exactInt(gpa);
        // Accesses stay inside one page (a page-crossing access is a backend's choice to split).
        const len = g !== undefined && g >= 0n ? Math.min(cmd.len, PAGE - Number(g % PAGE_N)) : cmd.len;
        if (cmd.k === 'guestRead') this.judge(cmd, m.guestRead(mv, gpa, len), () => vm.guestRead(gpa, len));
        else {
          const data = pattern(len, cmd.seed);
          this.judge(cmd, m.guestWrite(mv, gpa, data), () => vm.guestWrite(gpa, data));
        }
        return;
      }
      case 'closeMem': {
        const r = this.memAt(cmd.mem);
        if (!r) return;
        this.judge(cmd, m.closeMem(r[0]), () => r[1].close());
        return;
      }
      case 'destroyVm': {
        const r = this.vmAt(cmd.vm);
        if (!r) return;
        this.judge(cmd, m.destroyVm(r[0]), () => r[1].destroy());
        return;
      }
    }
  }

  private handlesOf(mv: ModelVm): MemoryBinding[] {
    let hs = this.handles.get(mv);
    if (!hs) this.handles.set(mv, (hs = []));
    return hs;
  }

  /** After each step: every observable state equals the model's. */
  check(cmd: Cmd | 'close'): void {
    const m = this.model;
    m.vms.forEach((mv, i) => {
      const vm = this.vms[i]!;
      if (vm.destroyed !== mv.destroyed) this.fail(cmd, `VM #${i} destroyed=${vm.destroyed}, model ${mv.destroyed}`);
      const hs = this.handlesOf(mv);
      mv.handles.forEach((rec, j) => {
        const b = hs[j]!;
        if ((rec.unbound || mv.destroyed) && b.active) this.fail(cmd, `handle ${j} of VM #${i} still active after unbind/destroy`);
        if (!rec.unbound && !mv.destroyed && !rec.split && !b.active) this.fail(cmd, `handle ${j} of VM #${i} became inactive`);
      });
      if (mv.destroyed) {
        if (vm.bindings().length) this.fail(cmd, `destroyed VM #${i} still lists bindings`);
        return;
      }
      this.checkBindings(cmd, i, mv, vm);
      this.checkState(cmd, i, mv, vm);
    });
    m.mems.forEach((mm, i) => {
      if (this.mems[i]!.closed !== mm.closed) this.fail(cmd, `memory #${i} closed=${this.mems[i]!.closed}, model ${mm.closed}`);
    });
  }

  private checkBindings(cmd: Cmd | 'close', i: number, mv: ModelVm, vm: Vm): void {
    const list = vm.bindings();
    for (let j = 1; j < list.length; j++) if (list[j - 1]!.gpa >= list[j]!.gpa) this.fail(cmd, `VM #${i} bindings() not sorted by GPA`);
    if (list.some((b) => !b.active)) this.fail(cmd, `VM #${i} bindings() lists an inactive binding`);
    const memIx = (g: GuestMemory): number => this.mems.indexOf(g);
    const norm = (ps: Array<{ gpa: bigint; size: bigint; offset: bigint; mem: number; readOnly: boolean }>, merge: boolean): string => {
      const out: typeof ps = [];
      for (const p of ps) {
        const last = out[out.length - 1];
        if (
          merge &&
          last &&
          last.gpa + last.size === p.gpa &&
          last.mem === p.mem &&
          last.offset + last.size === p.offset &&
          last.readOnly === p.readOnly
        )
          last.size += p.size;
        else out.push({ ...p });
      }
      return show(out);
    };
    const merge = mv.has('convert-remap');
    const real = norm(
      list.map((b) => ({ gpa: BigInt(b.gpa), size: b.size, offset: BigInt(b.offset), mem: memIx(b.memory), readOnly: b.readOnly })),
      merge,
    );
    const model = norm(
      mv.pieces.map((p: Piece) => ({ gpa: p.gpa, size: p.size, offset: p.offset, mem: p.mem.index, readOnly: p.readOnly })),
      merge,
    );
    if (real !== model) this.fail(cmd, `VM #${i} bindings ${real}, model ${model}`);
  }

  private checkState(cmd: Cmd | 'close', i: number, mv: ModelVm, vm: Vm): void {
    const gfns = new Set<bigint>();
    const add = (g: bigint): void => {
      for (const x of [g - 1n, g]) if (x >= 0n && x < 1n << 52n) gfns.add(x);
    };
    for (const e of mv.state.edges()) add(e);
    for (const p of mv.pieces) {
      add(p.gpa / PAGE_N);
      add((p.gpa + p.size) / PAGE_N);
    }
    for (const [v, s, e] of this.touched) if (v === mv) [s, e, (s + e) / 2n].forEach(add);
    for (const g of gfns) {
      const want: MemoryAccess = mv.state.get(g);
      const got = vm.memoryState.get(Number(g));
      if (got !== want) this.fail(cmd, `VM #${i} memoryState of gfn 0x${g.toString(16)} is ${got}, model ${want}`);
    }
  }

  /** Runs the whole sequence, then closes the hypervisor and checks that it released everything. */
  runAll(cmds: readonly Cmd[]): void {
    try {
      for (const c of cmds) {
        this.run(c);
        this.check(c);
      }
      this.step++;
      this.judge('close', this.model.closeHypervisor(), () => this.h.close());
      this.check('close');
      this.model.views.forEach((v, i) => {
        const view = this.views[i]!;
        if (!v.unmapped && !this.model.tolerates('views-survive-hypervisor-close')) {
          const got = observe(() => view.read(0, 1));
          if (got.ok || !GuestMemError.is(got.error) || !['EBADF', 'EFAULT'].includes(got.error.code))
            this.fail('close', `view ${i} still readable after Hypervisor.close() (${got.ok ? 'read ok' : fmt(got.error)})`);
        }
      });
    } finally {
      try {
        this.h.close();
      } catch {
        // Already reported above when it matters.
      }
    }
  }
}

/** Runs one sequence on a target; throws a {@link Counterexample} on the first departure from the model. */
export function runSequence(target: FuzzTarget, cmds: readonly Cmd[], stats?: FuzzStats): void {
  new SequenceRun(target, stats).runAll(cmds);
}

/** Outcome counts per command kind: how much of a run exercised real state. */
export class FuzzStats {
  readonly byKind = new Map<string, Map<string, number>>();
  count(cmd: Cmd | 'close', outcome: string): void {
    const k = cmd === 'close' ? 'close' : cmd.k;
    let m = this.byKind.get(k);
    if (!m) this.byKind.set(k, (m = new Map()));
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
  }
  /** Calls made, and how many succeeded. */
  totals(): { calls: number; ok: number } {
    let calls = 0;
    let ok = 0;
    for (const m of this.byKind.values())
      for (const [o, n] of m) {
        calls += n;
        if (o === 'ok') ok += n;
      }
    return { calls, ok };
  }
  format(): string {
    return [...this.byKind].map(([k, m]) => `${k} ${[...m].map(([o, n]) => `${o}:${n}`).join(' ')}`).join('; ');
  }
}
