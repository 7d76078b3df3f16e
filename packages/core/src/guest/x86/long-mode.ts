/**
 * 64-bit long mode for guest programs: identity page tables with 2 MiB pages (built as bytes the
 * VMM places in guest memory) and the machine code of each {@link GuestOp}.
 *
 * Paging structures (Intel SDM vol. 3A §4.5, 4-level paging): a PML4 entry points to a PDPT, a PDPT
 * entry to a page directory, and a page-directory entry with PS (bit 7) maps a 2 MiB page. Every
 * entry here has P (bit 0) and R/W (bit 1); U/S, PWT, PCD, NX are 0.
 */
import type { GuestOp } from '../program.js';
import {
  Cond,
  Reg,
  addR32R32,
  addR64Imm32,
  cld,
  decR64,
  hlt,
  jccRel8,
  jmpRel8,
  lodsb,
  movLoad,
  movR16Imm16,
  movR32Imm32,
  movR32R32,
  movR64Imm64,
  movStore,
  movStoreImm8,
  outDx,
  repStosb,
  testR64R64,
  xorR32R32,
} from './encoder.js';

const PAGE = 4096n;
export const GIB = 1n << 30n;
const TWO_MIB = 2n << 20n;
const PRESENT_RW = 0x3n;
const PAGE_SIZE_BIT = 0x80n;

/** Lowest address outside the identity map's reach: the canonical lower half (2^47). */
export const LONG_MODE_GPA_LIMIT = 1n << 47n;

/** Page-table bytes for an identity map of `[0, cover)` placed at `base` (both as documented in {@link identityPageTables}). */
export interface PageTables {
  /** CR3: the PML4's address (= `base`). */
  readonly cr3: bigint;
  /** The PML4, the PDPTs, then the page directories, contiguous from `base`. */
  readonly bytes: Uint8Array;
}

/**
 * Identity map of `[0, cover)` (`cover` a multiple of 1 GiB, at most 2^47) with 2 MiB pages:
 * one PML4 page at `base`, `ceil(cover / 512 GiB)` PDPT pages after it, then `cover / 1 GiB` page
 * directories. Page-directory entry `j` of directory `i` maps GPA `i GiB + j * 2 MiB` to itself.
 */
export function identityPageTables(base: bigint, cover: bigint): PageTables {
  if (base % PAGE) throw new RangeError('page tables must be page-aligned');
  if (cover <= 0n || cover % GIB || cover > LONG_MODE_GPA_LIMIT)
    throw new RangeError(`cover ${cover} must be a positive multiple of 1 GiB up to 2^47`);
  const nPd = Number(cover / GIB);
  const nPdpt = Math.ceil(nPd / 512);
  const bytes = new Uint8Array((1 + nPdpt + nPd) * 4096);
  const dv = new DataView(bytes.buffer);
  const pdptAt = (k: number) => base + PAGE * BigInt(1 + k);
  const pdAt = (i: number) => base + PAGE * BigInt(1 + nPdpt + i);
  for (let k = 0; k < nPdpt; k++) dv.setBigUint64(8 * k, pdptAt(k) | PRESENT_RW, true);
  for (let i = 0; i < nPd; i++) {
    dv.setBigUint64(4096 * (1 + Math.floor(i / 512)) + 8 * (i % 512), pdAt(i) | PRESENT_RW, true);
    const pd = 4096 * (1 + nPdpt + i);
    for (let j = 0; j < 512; j++) dv.setBigUint64(pd + 8 * j, (BigInt(i) * GIB + BigInt(j) * TWO_MIB) | PAGE_SIZE_BIT | PRESENT_RW, true);
  }
  return { cr3: base, bytes };
}

/** The machine code of one op (see {@link GuestOp} for what each does). */
export function encodeOp(op: GuestOp): number[] {
  switch (op.op) {
    case 'store': {
      const out: number[] = [];
      const d = op.data;
      let i = 0;
      for (; i + 8 <= d.length; i += 8) {
        let q = 0n;
        for (let k = 7; k >= 0; k--) q = (q << 8n) | BigInt(d[i + k]!);
        out.push(...movR64Imm64(Reg.rdi, op.gpa + BigInt(i)), ...movR64Imm64(Reg.rax, q), ...movStore(8, Reg.rdi, Reg.rax));
      }
      for (; i < d.length; i++) out.push(...movR64Imm64(Reg.rdi, op.gpa + BigInt(i)), ...movStoreImm8(Reg.rdi, d[i]!));
      return out;
    }
    case 'load-report':
      return [...movR64Imm64(Reg.rsi, op.gpa), ...movLoad(op.size, Reg.rax, Reg.rsi), ...movR16Imm16(Reg.rdx, op.port), ...outDx(op.size)];
    case 'fill':
      if (op.len === 0n) return [];
      return [...movR64Imm64(Reg.rdi, op.gpa), ...movR64Imm64(Reg.rcx, op.len), ...movR32Imm32(Reg.rax, op.byte), ...repStosb()];
    case 'checksum': {
      // edx = sum; loop: test rcx,rcx; jz done; lodsb; add edx,eax; dec rcx; jmp loop; done: mov eax,edx; out
      const body = [...lodsb(), ...addR32R32(Reg.rdx, Reg.rax), ...decR64(Reg.rcx)];
      const head = testR64R64(Reg.rcx, Reg.rcx);
      const loopLen = head.length + 2 + body.length + 2;
      return [
        ...movR64Imm64(Reg.rsi, op.gpa),
        ...movR64Imm64(Reg.rcx, op.len),
        ...xorR32R32(Reg.rdx, Reg.rdx),
        ...xorR32R32(Reg.rax, Reg.rax),
        ...head,
        ...jccRel8(Cond.z, body.length + 2),
        ...body,
        ...jmpRel8(-loopLen),
        ...movR32R32(Reg.rax, Reg.rdx),
        ...movR16Imm16(Reg.rdx, op.port),
        ...outDx(4),
      ];
    }
    case 'out':
      return [...movR32Imm32(Reg.rax, op.value), ...movR16Imm16(Reg.rdx, op.port), ...outDx(op.size)];
    case 'touch': {
      const pages = op.len / PAGE;
      if (pages === 0n) return [];
      const access = op.access === 'read' ? movLoad(1, Reg.rax, Reg.rdi) : movStoreImm8(Reg.rdi, op.value);
      const body = [...access, ...addR64Imm32(Reg.rdi, 4096), ...decR64(Reg.rcx)];
      return [...movR64Imm64(Reg.rdi, op.gpa), ...movR64Imm64(Reg.rcx, pages), ...body, ...jccRel8(Cond.nz, -(body.length + 2))];
    }
    case 'hlt':
      return hlt();
  }
}

/** The whole program's code: `cld`, then every op in order. */
export function encodeProgram(ops: readonly GuestOp[]): Uint8Array {
  const out: number[] = [...cld()];
  for (const op of ops) for (const b of encodeOp(op)) out.push(b);
  return Uint8Array.from(out);
}
