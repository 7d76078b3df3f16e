/**
 * The few x86-64 instructions guest programs are made of, encoded by the rules of the Intel SDM
 * vol. 2 (REX prefix, opcode, ModRM). Registers are limited to rax…rdi (no REX.R/REX.B), memory
 * operands to `[reg]` with a base other than rsp/rbp (no SIB, no displacement), which is all the
 * programs need. Every function returns the instruction's bytes.
 */

/** General-purpose registers by their 3-bit encoding. */
export const Reg = { rax: 0, rcx: 1, rdx: 2, rbx: 3, rsp: 4, rbp: 5, rsi: 6, rdi: 7 } as const;
export type Reg = (typeof Reg)[keyof typeof Reg];

const REX_W = 0x48;
const OPSIZE = 0x66;

/** ModRM byte: mod (2 bits), reg (3 bits), rm (3 bits). */
export function modrm(mod: number, reg: number, rm: number): number {
  return ((mod & 3) << 6) | ((reg & 7) << 3) | (rm & 7);
}

function memBase(r: Reg): number {
  // rm=100 selects a SIB byte and mod=00 rm=101 is RIP-relative: neither is a plain [reg].
  if (r === Reg.rsp || r === Reg.rbp)
    throw new RangeError('[rsp] and [rbp] need a SIB byte or displacement, which this encoder does not emit');
  return modrm(0, 0, r);
}

function le(value: bigint, bytes: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(bytes * 8, value);
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** `mov r64, imm64` — REX.W + B8+rd io. */
export function movR64Imm64(r: Reg, imm: bigint): number[] {
  return [REX_W, 0xb8 + r, ...le(imm, 8)];
}

/** `mov r32, imm32` — B8+rd id (zero-extends into the 64-bit register). */
export function movR32Imm32(r: Reg, imm: number): number[] {
  return [0xb8 + r, ...le(BigInt(imm >>> 0), 4)];
}

/** `mov r16, imm16` — 66 B8+rw iw. */
export function movR16Imm16(r: Reg, imm: number): number[] {
  return [OPSIZE, 0xb8 + r, ...le(BigInt(imm & 0xffff), 2)];
}

/** `mov [base], reg` of `size` bytes — 88 /r (8-bit), 66 89 /r, 89 /r, REX.W 89 /r. */
export function movStore(size: 1 | 2 | 4 | 8, base: Reg, src: Reg): number[] {
  const m = memBase(base) | (src << 3);
  if (size === 1) return [0x88, m];
  if (size === 2) return [OPSIZE, 0x89, m];
  if (size === 4) return [0x89, m];
  return [REX_W, 0x89, m];
}

/** `mov reg, [base]` of `size` bytes — 8A /r, 66 8B /r, 8B /r, REX.W 8B /r. */
export function movLoad(size: 1 | 2 | 4 | 8, dst: Reg, base: Reg): number[] {
  const m = memBase(base) | (dst << 3);
  if (size === 1) return [0x8a, m];
  if (size === 2) return [OPSIZE, 0x8b, m];
  if (size === 4) return [0x8b, m];
  return [REX_W, 0x8b, m];
}

/** `mov byte [base], imm8` — C6 /0 ib. */
export function movStoreImm8(base: Reg, imm: number): number[] {
  return [0xc6, memBase(base), imm & 0xff];
}

/** `add r64, imm32` (sign-extended) — REX.W 81 /0 id. */
export function addR64Imm32(r: Reg, imm: number): number[] {
  return [REX_W, 0x81, modrm(3, 0, r), ...le(BigInt(imm | 0), 4)];
}

/** `add dst32, src32` — 01 /r (ModRM.reg = src, ModRM.rm = dst). */
export function addR32R32(dst: Reg, src: Reg): number[] {
  return [0x01, modrm(3, src, dst)];
}

/** `mov dst32, src32` — 89 /r. */
export function movR32R32(dst: Reg, src: Reg): number[] {
  return [0x89, modrm(3, src, dst)];
}

/** `xor dst32, src32` — 31 /r (`xor r, r` zeroes the whole 64-bit register). */
export function xorR32R32(dst: Reg, src: Reg): number[] {
  return [0x31, modrm(3, src, dst)];
}

/** `test a64, b64` — REX.W 85 /r. */
export function testR64R64(a: Reg, b: Reg): number[] {
  return [REX_W, 0x85, modrm(3, b, a)];
}

/** `dec r64` — REX.W FF /1. */
export function decR64(r: Reg): number[] {
  return [REX_W, 0xff, modrm(3, 1, r)];
}

/** `out dx, al|ax|eax` — EE, 66 EF, EF. */
export function outDx(size: 1 | 2 | 4): number[] {
  if (size === 1) return [0xee];
  if (size === 2) return [OPSIZE, 0xef];
  return [0xef];
}

/** `lodsb` — AC (al = [rsi]; rsi += 1 with DF clear). */
export const lodsb = (): number[] => [0xac];
/** `rep stosb` — F3 AA ([rdi] = al, rcx times). */
export const repStosb = (): number[] => [0xf3, 0xaa];
/** `hlt` — F4. */
export const hlt = (): number[] => [0xf4];
/** `cld` — FC. */
export const cld = (): number[] => [0xfc];

/** Condition codes of `jcc rel8` (70+cc). */
export const Cond = { z: 0x4, nz: 0x5 } as const;

/** `jcc rel8` — 70+cc cb; `rel` counts from the end of this 2-byte instruction. */
export function jccRel8(cc: number, rel: number): number[] {
  if (rel < -128 || rel > 127) throw new RangeError(`rel8 ${rel} out of range`);
  return [0x70 + cc, rel & 0xff];
}

/** `jmp rel8` — EB cb. */
export function jmpRel8(rel: number): number[] {
  if (rel < -128 || rel > 127) throw new RangeError(`rel8 ${rel} out of range`);
  return [0xeb, rel & 0xff];
}
