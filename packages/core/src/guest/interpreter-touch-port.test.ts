/**
 * `GuestOpInterpreter` with a port that has `touch` must behave as the same port without it
 * (backend-free). The port is a model machine: RAM pages, MMIO pages (some become RAM when the VMM
 * asks for a retry), and pages that exit with a memory fault until the VMM serves them. `touch` is
 * implemented exactly as its contract says (the one-byte accesses `access` would make, in order,
 * stopping at the first exit). The driver answers MMIO exits with `completeRead` / `retryMmio` /
 * nothing, chosen by fast-check. Compared: exits, the port's access log, final memory.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { VcpuExit } from '../hypervisor/vcpu.js';
import type { MemoryAccess } from '../hypervisor/interfaces.js';
import type { GuestImage } from './image.js';
import { GuestOpInterpreter, type GuestAccessPort } from './interpreter.js';
import type { GuestOp } from './program.js';

const PG = 4096n;
type Kind = 'ram' | 'mmio' | 'mmio-retryable' | 'fault';

function machine(kinds: Kind[], withTouch: boolean) {
  const mem = new Map<bigint, number>();
  const pageKind = kinds.map((k) => k);
  const log: string[] = [];
  const kindAt = (gpa: bigint): Kind => (gpa < 0n || gpa >= BigInt(pageKind.length) * PG ? 'mmio' : pageKind[Number(gpa / PG)]!);
  const access: GuestAccessPort['access'] = (kind, gpa, buf, view) => {
    log.push(`${kind}@${gpa}:${kind === 'write' ? [...buf].join(',') : buf.length}:${view ?? '-'}`);
    const k = kindAt(gpa);
    if (k === 'mmio' || k === 'mmio-retryable') {
      const data = kind === 'write' ? new Uint8Array(buf) : new Uint8Array(buf.length);
      return { kind: 'mmio', gpa, size: buf.length, write: kind === 'write', data, info: {} } as VcpuExit;
    }
    if (k === 'fault') return { kind: 'memory-fault', gpa: gpa - (gpa % PG), size: PG, access: view ?? 'shared', info: {} } as VcpuExit;
    for (let i = 0; i < buf.length; i++) {
      const a = gpa + BigInt(i);
      if (kind === 'write') mem.set(a, buf[i]!);
      else buf[i] = mem.get(a) ?? 0;
    }
    return undefined;
  };
  const port: GuestAccessPort = { access };
  if (withTouch) {
    port.touch = (kind, gpa, end, value, view) => {
      for (let at = gpa; at < end; at += PG) {
        const exit = access(kind, at, kind === 'write' ? Uint8Array.of(value) : new Uint8Array(1), view);
        if (exit) return { at, exit };
      }
      return undefined;
    };
  }
  return { port, mem, log, pageKind };
}

interface Touch {
  gpa: number;
  len: number;
  write: boolean;
  value: number;
  view: MemoryAccess | undefined;
}

function run(kinds: Kind[], touches: Touch[], answers: number[], withTouch: boolean) {
  const m = machine(kinds, withTouch);
  const it = new GuestOpInterpreter(m.port);
  const ops: GuestOp[] = [];
  for (const t of touches) {
    ops.push({
      op: 'touch',
      gpa: BigInt(t.gpa),
      len: BigInt(t.len),
      access: t.write ? 'write' : 'read',
      value: t.value,
      ...(t.view ? { view: t.view } : {}),
    } as GuestOp);
    ops.push({ op: 'load-report', gpa: BigInt(t.gpa), size: 1, port: 0x30 } as GuestOp);
  }
  ops.push({ op: 'hlt' } as GuestOp);
  it.load({ ops } as unknown as GuestImage);
  const exits: string[] = [];
  let a = 0;
  for (let n = 0; n < 400; n++) {
    const e = it.run();
    exits.push(
      `${e.kind}${'gpa' in e ? `@${String((e as { gpa: bigint }).gpa)}` : ''}${e.kind === 'io' ? `:${[...(e as { data: Uint8Array }).data]}` : ''}`,
    );
    if (e.kind === 'hlt' || e.kind === 'internal-error') break;
    if (e.kind === 'memory-fault') {
      m.pageKind[Number((e as { gpa: bigint }).gpa / PG)] = 'ram';
    } else if (e.kind === 'mmio') {
      const choice = answers[a++ % Math.max(1, answers.length)] ?? 0;
      const g = (e as { gpa: bigint }).gpa;
      if (choice === 1 && !(e as { write: boolean }).write) it.completeRead(Uint8Array.of(0x40 + (a & 0x3f)));
      else if (choice === 2) {
        it.retryMmio();
        const pi = Number(g / PG);
        if (m.pageKind[pi] === 'mmio-retryable') m.pageKind[pi] = 'ram';
      }
    }
  }
  return { exits, log: m.log, mem: [...m.mem].sort((x, y) => (x[0] < y[0] ? -1 : 1)) };
}

describe('interpreter touch with port.touch = without', () => {
  it('property: exits, access log and memory are equal', () => {
    const P = 4096;
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom<Kind>('ram', 'ram', 'mmio', 'mmio-retryable', 'fault'), { minLength: 1, maxLength: 10 }),
        fc.array(
          fc.record({
            gpa: fc.oneof(
              fc.integer({ min: -1, max: 11 }).map((p) => p * P),
              fc.integer({ min: 0, max: 11 * P }),
            ),
            len: fc.oneof(
              fc.integer({ min: 0, max: 12 }).map((p) => p * P),
              fc.integer({ min: 0, max: 12 * P }),
            ),
            write: fc.boolean(),
            value: fc.nat(255),
            view: fc.constantFrom<MemoryAccess | undefined>(undefined, 'private', 'shared'),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        fc.array(fc.nat(2), { maxLength: 12 }),
        (kinds, touches, answers) => {
          const ok = touches.filter((t) => t.gpa >= 0);
          expect(run([...kinds], ok, answers, true)).toEqual(run([...kinds], ok, answers, false));
        },
      ),
      { numRuns: 500 },
    );
  });
});
