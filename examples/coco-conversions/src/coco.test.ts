/**
 * How to test a CoCo VMM's conversion logic without SEV-SNP/TDX hardware: drive the VMM's handler
 * (`vmm.ts`) with simulated guest accesses on a `KVM_X86_SW_PROTECTED_VM` of the simulated kernel,
 * and assert what matters — exits, what the host can see, what memory is held.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runCocoDemo } from './demo.js';
import { CocoHarness, RAM_GPA } from './harness.js';
import { PrivateMemoryManager } from './vmm.js';

const P = 4096;
const page = (n: number) => RAM_GPA + BigInt(n * P);

describe('examples/coco-conversions', () => {
  it('the walkthrough runs end to end', () => {
    const lines: string[] = [];
    const r = runCocoDemo((l) => lines.push(l));
    const out = lines.join('\n');
    expect(out).toContain('memory fault: exit_reason 39, flags 0x8, gpa 0x100001000, size 4096');
    expect(out).toContain('private page 1, guest reads: ee ee ee ee ee ee ee ee');
    expect(out).toContain('private page 1, host reads:  00 00 00 00 00 00 00 00');
    expect(out).toContain('page 1 private again, guest reads: 00 00 00 00 00 00 00 00');
    expect(r).toEqual({ faults: 4, privateExits: 3, poisonCode: 'EHWPOISON', leakedBytes: 0, sharedRunsAtEnd: 2 });
  });

  it('implicit conversion: a private touch of a shared page exits once, is converted, and the retry succeeds', () => {
    const h = new CocoHarness();
    h.access(page(3), 16, 'private', 0xab);
    expect(h.faults).toEqual([{ exitReason: 39, memoryFault: { flags: 8n, gpa: page(3), size: 4096n } }]);
    expect(h.vm.isPrivate(page(3))).toBe(true);
    expect(h.vm.isPrivate(page(4))).toBe(false);
    h.close();
  });

  it('discard frees the unused side: memory in use tracks one copy per touched page', () => {
    const h = new CocoHarness();
    const base = h.bytesInUse();
    h.access(page(0), 4 * P, 'shared', 1); // 4 shared pages
    expect(h.bytesInUse() - base).toBe(4 * P);
    for (let i = 0; i < 4; i++) h.access(page(i), P, 'private', 0x80 + i); // each converts, shared copy discarded
    expect(h.bytesInUse() - base).toBe(4 * P);
    for (let i = 0; i < 4; i++) h.access(page(i), P, 'shared', 2); // back: private copies punched
    expect(h.bytesInUse() - base).toBe(4 * P);
    expect(h.manager.stats).toMatchObject({ toPrivate: 4, toShared: 4, punchedBytes: BigInt(4 * P), discardedBytes: BigInt(4 * P) });
    h.close();
  });

  it('catches a handler that forgets to punch on private→shared: the old secret comes back', () => {
    // The bug under test: a handler that converts but never frees the side it stops using.
    const h = new CocoHarness({ manager: (vm, regions) => new PrivateMemoryManager(vm, regions, { discard: false }) });
    h.access(page(0), 4, 'private', 0xee);
    h.access(page(0), 4, 'shared');
    // What a VMM wants to hold: once shared, the private copy is gone. This handler fails it.
    expect(h.access(page(0), 4, 'private')).toEqual(new Uint8Array([0xee, 0xee, 0xee, 0xee]));
    expect(h.memfd.file.core.pagesPresent).toBe(1); // the stale private page is still held
    h.close();
  });

  it('catches a handler that does not convert: the same fault repeats and the guard reports it', () => {
    class Stuck extends PrivateMemoryManager {
      override mapGpaRange(): void {}
    }
    const h = new CocoHarness({ manager: (vm, regions) => new Stuck(vm, regions) });
    expect(() => h.access(page(0), 1, 'private')).toThrow(/same memory fault repeated at gpa 0x100000000/);
    h.close();
  });

  it('property: for any access sequence the host never sees private data, and re-privatized pages read zero', () => {
    const access = fc.record({
      page: fc.nat({ max: 7 }),
      kind: fc.constantFrom<'private' | 'shared'>('private', 'shared'),
      write: fc.boolean(),
      byte: fc.integer({ min: 1, max: 0x7f }),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 30 }), (seq) => {
        const h = new CocoHarness();
        // Model: what each side of each page holds (0 = nothing written since the last discard).
        const priv = new Array<number>(8).fill(0);
        const shared = new Array<number>(8).fill(0);
        try {
          for (const a of seq) {
            const was = h.vm.isPrivate(page(a.page)) ? 'private' : 'shared';
            if (was !== a.kind) (a.kind === 'private' ? shared : priv)[a.page] = 0; // the handler discards the old side
            const byte = a.kind === 'private' ? a.byte | 0x80 : a.byte;
            const got = h.access(page(a.page), 1, a.kind, a.write ? byte : undefined);
            if (a.write) (a.kind === 'private' ? priv : shared)[a.page] = byte;
            else expect(got[0]).toBe(a.kind === 'private' ? priv[a.page] : shared[a.page]);
            for (let p = 0; p < 8; p++) {
              const seen = h.hostRead(page(p), 1)[0]!;
              expect(seen < 0x80, `host saw private byte 0x${seen.toString(16)} on page ${p}`).toBe(true);
              expect(seen).toBe(shared[p]);
            }
          }
        } finally {
          h.close();
        }
        expect(h.bytesInUse()).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
