/**
 * A guest write whose `data` is itself a view into guest memory, overlapping the destination. The
 * full path (`SimVcpu.access`) copies `data` before writing (snapshot semantics), and so must the
 * shortcut. Regression from the outside review: the shortcut once copied ≤ 16 bytes forward,
 * straight from `data`, smearing it.
 */
import { describe, expect, it } from 'vitest';
import type { SimGuestMem } from './guest-mem.js';
import { HoldingCell } from './test-helpers.js';
import type { SimVm } from './vm.js';

const GPA = 0x40_0000n;

function run(fast: boolean, len: number, shift: number): number[] {
  const cell = new HoldingCell();
  const vm = cell.vm as SimVm;
  if (!fast) (vm as unknown as { fastAccess: unknown }).fastAccess = () => undefined;
  const mem = cell.addMemory(GPA, 8n * 4096n, 'share') as unknown as SimGuestMem;
  const cpu = cell.cpu;
  const pattern = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  expect(cpu.write(Number(GPA), pattern).status).toBe('done'); // full path: provides page 0
  expect(cpu.read(Number(GPA), 4).status).toBe('done'); // remembered by the shortcut
  // A view of guest page 0 (the folio's bytes) — the data of the next write.
  const folio = mem.file.pageIndex.load(0);
  const page = mem.file.allocator.view(folio);
  const data = page.subarray(0, len); // guest bytes [0, len)
  const r = cpu.write(Number(GPA) + shift, data); // writes them at [shift, shift + len)
  expect(r.status).toBe('done');
  const out = cpu.read(Number(GPA), 64);
  return [...(out as { data: Uint8Array }).data];
}

describe('v17 shortcut with a data view into guest memory', () => {
  for (const len of [8, 16, 17]) {
    it(`write of ${len} bytes from guest [0,${len}) to guest [1,${len + 1}): shortcut = full path`, () => {
      expect(run(true, len, 1)).toEqual(run(false, len, 1));
    });
  }
});
