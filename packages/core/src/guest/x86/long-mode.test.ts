import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestProgram } from '../program.js';
import { encodeOp, identityPageTables } from './long-mode.js';

const GIB = 1n << 30n;

/** Walks 4-level paging by the SDM rules (vol. 3A §4.5) over the table bytes placed at `base`. */
function translate(bytes: Uint8Array, base: bigint, cr3: bigint, va: bigint): bigint | undefined {
  const dv = new DataView(bytes.buffer);
  const entry = (table: bigint, index: bigint): bigint => dv.getBigUint64(Number(table - base + index * 8n), true);
  const pml4e = entry(cr3, (va >> 39n) & 511n);
  if (!(pml4e & 1n)) return undefined;
  const pdpte = entry(pml4e & 0xf_ffff_ffff_f000n, (va >> 30n) & 511n);
  if (!(pdpte & 1n) || pdpte & 0x80n) return undefined;
  const pde = entry(pdpte & 0xf_ffff_ffff_f000n, (va >> 21n) & 511n);
  if (!(pde & 1n) || !(pde & 0x80n) || !(pde & 2n)) return undefined;
  return (pde & 0xf_ffff_ffe0_0000n) | (va & 0x1f_ffffn);
}

describe('long-mode identity paging', () => {
  it('4 GiB at 0x1000: PML4, one PDPT, four page directories; known entries', () => {
    const t = identityPageTables(0x1000n, 4n * GIB);
    expect(t.cr3).toBe(0x1000n);
    expect(t.bytes.length).toBe(6 * 4096);
    const dv = new DataView(t.bytes.buffer);
    expect(dv.getBigUint64(0, true)).toBe(0x2003n); // PML4[0] → PDPT at 0x2000, P|RW
    expect(dv.getBigUint64(4096, true)).toBe(0x3003n); // PDPT[0] → PD at 0x3000
    expect(dv.getBigUint64(4096 + 24, true)).toBe(0x6003n); // PDPT[3] → PD at 0x6000
    expect(dv.getBigUint64(2 * 4096, true)).toBe(0x83n); // PD0[0] maps 0, PS|RW|P
    expect(dv.getBigUint64(2 * 4096 + 8, true)).toBe(0x20_0083n);
    expect(dv.getBigUint64(5 * 4096 + 511 * 8, true)).toBe(0xffe0_0083n); // last 2 MiB below 4 GiB
  });

  it('every address below the cover translates to itself (property), above it nothing', () => {
    const cover = 600n * GIB; // two PDPTs
    const base = 0x10_0000n;
    const t = identityPageTables(base, cover);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: cover - 1n }), (va) => {
        expect(translate(t.bytes, base, t.cr3, va)).toBe(va);
      }),
    );
    expect(translate(t.bytes, base, t.cr3, 1024n * GIB)).toBeUndefined();
  });

  it('refuses covers that are not whole GiB or reach past 2^47', () => {
    expect(() => identityPageTables(0n, GIB + 4096n)).toThrow(RangeError);
    expect(() => identityPageTables(0n, 1n << 48n)).toThrow(RangeError);
    expect(() => identityPageTables(0x800n, GIB)).toThrow(RangeError);
  });

  it('op encodings: an out, a touch loop, a checksum loop (bytes by hand)', () => {
    const ops = new GuestProgram()
      .out(0xe9, 0x41)
      .touch(0x20_0000, 3 * 4096, 'write', 0x5a)
      .checksum(0x1000, 16, 0x10).ops;
    expect(encodeOp(ops[0]!)).toEqual([0xb8, 0x41, 0, 0, 0, 0x66, 0xba, 0xe9, 0x00, 0xee]);
    expect(encodeOp(ops[1]!)).toEqual([
      0x48,
      0xbf,
      0x00,
      0x00,
      0x20,
      0x00,
      0x00,
      0x00,
      0x00,
      0x00, // mov rdi, 0x200000
      0x48,
      0xb9,
      0x03,
      0x00,
      0x00,
      0x00,
      0x00,
      0x00,
      0x00,
      0x00, // mov rcx, 3
      0xc6,
      0x07,
      0x5a, // l: mov byte [rdi], 0x5a
      0x48,
      0x81,
      0xc7,
      0x00,
      0x10,
      0x00,
      0x00, // add rdi, 4096
      0x48,
      0xff,
      0xc9, // dec rcx
      0x75,
      0xf1, // jnz l (-15)
    ]);
    expect(encodeOp(ops[2]!)).toEqual([
      0x48,
      0xbe,
      0x00,
      0x10,
      0,
      0,
      0,
      0,
      0,
      0, // mov rsi, 0x1000
      0x48,
      0xb9,
      0x10,
      0,
      0,
      0,
      0,
      0,
      0,
      0, // mov rcx, 16
      0x31,
      0xd2,
      0x31,
      0xc0, // xor edx, edx; xor eax, eax
      0x48,
      0x85,
      0xc9, // l: test rcx, rcx
      0x74,
      0x08, // jz done
      0xac,
      0x01,
      0xc2,
      0x48,
      0xff,
      0xc9, // lodsb; add edx, eax; dec rcx
      0xeb,
      0xf3, // jmp l (-13)
      0x89,
      0xd0,
      0x66,
      0xba,
      0x10,
      0x00,
      0xef, // done: mov eax, edx; mov dx, 0x10; out dx, eax
    ]);
  });
});
