/**
 * A guest program driven by raw `run()` receives, after a host shortcut access, the
 * `GuestOpResult` the full path would have left, compared strictly (keys and frozenness). Regression
 * from the outside review: after a shortcut write it once received a shared frozen `{ ok: true }`.
 */
import { describe, expect, it } from 'vitest';
import type { GuestOp, GuestOpResult } from './vcpu.js';
import { HoldingCell } from './test-helpers.js';
import type { SimVm } from './vm.js';

const GPA = 0x40_0000n;

function received(fast: boolean, kind: 'read' | 'write'): GuestOpResult[] {
  const cell = new HoldingCell();
  if (!fast) (cell.vm as SimVm as unknown as { fastAccess: unknown }).fastAccess = () => undefined;
  cell.addMemory(GPA, 4n * 4096n, 'share');
  const cpu = cell.cpu;
  expect(cpu.write(Number(GPA), Uint8Array.of(1, 2, 3)).status).toBe('done'); // provides the page
  const got: GuestOpResult[] = [];
  cpu.setGuest(
    (function* (): Generator<GuestOp, void, GuestOpResult> {
      for (;;) got.push(yield { kind: 'read', gpa: 0x7000_0000n, len: 1 }); // parks on MMIO
    })(),
  );
  cpu.run(); // MMIO exit: the program waits
  if (kind === 'write') expect(cpu.write(Number(GPA), Uint8Array.of(9)).status).toBe('done');
  else expect(cpu.read(Number(GPA), 2).status).toBe('done');
  cpu.run(); // the program receives the result of the host's access
  return got;
}

describe('the result a guest program receives after a host access', () => {
  for (const kind of ['read', 'write'] as const) {
    it(`${kind}: shortcut = full path (strict)`, () => {
      const a = received(true, kind);
      const b = received(false, kind);
      expect(a).toStrictEqual(b);
      expect(a.map((r) => [Object.keys(r), Object.isFrozen(r)])).toEqual(b.map((r) => [Object.keys(r), Object.isFrozen(r)]));
    });
  }
});
