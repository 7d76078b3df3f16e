/**
 * Known encodings, written by hand from the Intel SDM vol. 2 opcode tables (REX.W = 0x48, ModRM =
 * mod<<6 | reg<<3 | rm) and cross-checked with the bytes GNU as prints for the same mnemonics.
 */
import { describe, expect, it } from 'vitest';
import * as x from './encoder.js';

const R = x.Reg;

describe('x86-64 encoder: known encodings', () => {
  it.each([
    [
      'mov rax, 0x1122334455667788',
      x.movR64Imm64(R.rax, 0x1122334455667788n),
      [0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
    ],
    ['mov rdi, 0x140000000', x.movR64Imm64(R.rdi, 0x1_4000_0000n), [0x48, 0xbf, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00]],
    ['mov rcx, -1', x.movR64Imm64(R.rcx, -1n), [0x48, 0xb9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ['mov eax, 0xdeadbeef', x.movR32Imm32(R.rax, 0xdeadbeef), [0xb8, 0xef, 0xbe, 0xad, 0xde]],
    ['mov dx, 0xe9', x.movR16Imm16(R.rdx, 0xe9), [0x66, 0xba, 0xe9, 0x00]],
    ['mov [rdi], rax', x.movStore(8, R.rdi, R.rax), [0x48, 0x89, 0x07]],
    ['mov [rdi], eax', x.movStore(4, R.rdi, R.rax), [0x89, 0x07]],
    ['mov [rdi], ax', x.movStore(2, R.rdi, R.rax), [0x66, 0x89, 0x07]],
    ['mov [rdi], al', x.movStore(1, R.rdi, R.rax), [0x88, 0x07]],
    ['mov [rbx], ecx', x.movStore(4, R.rbx, R.rcx), [0x89, 0x0b]],
    ['mov al, [rsi]', x.movLoad(1, R.rax, R.rsi), [0x8a, 0x06]],
    ['mov ax, [rsi]', x.movLoad(2, R.rax, R.rsi), [0x66, 0x8b, 0x06]],
    ['mov eax, [rsi]', x.movLoad(4, R.rax, R.rsi), [0x8b, 0x06]],
    ['mov rax, [rsi]', x.movLoad(8, R.rax, R.rsi), [0x48, 0x8b, 0x06]],
    ['mov al, [rdi]', x.movLoad(1, R.rax, R.rdi), [0x8a, 0x07]],
    ['mov byte [rdi], 0x5a', x.movStoreImm8(R.rdi, 0x5a), [0xc6, 0x07, 0x5a]],
    ['add rdi, 4096', x.addR64Imm32(R.rdi, 4096), [0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00]],
    ['add rdi, -8', x.addR64Imm32(R.rdi, -8), [0x48, 0x81, 0xc7, 0xf8, 0xff, 0xff, 0xff]],
    ['add edx, eax', x.addR32R32(R.rdx, R.rax), [0x01, 0xc2]],
    ['mov eax, edx', x.movR32R32(R.rax, R.rdx), [0x89, 0xd0]],
    ['xor eax, eax', x.xorR32R32(R.rax, R.rax), [0x31, 0xc0]],
    ['xor edx, edx', x.xorR32R32(R.rdx, R.rdx), [0x31, 0xd2]],
    ['test rcx, rcx', x.testR64R64(R.rcx, R.rcx), [0x48, 0x85, 0xc9]],
    ['dec rcx', x.decR64(R.rcx), [0x48, 0xff, 0xc9]],
    ['out dx, al', x.outDx(1), [0xee]],
    ['out dx, ax', x.outDx(2), [0x66, 0xef]],
    ['out dx, eax', x.outDx(4), [0xef]],
    ['lodsb', x.lodsb(), [0xac]],
    ['rep stosb', x.repStosb(), [0xf3, 0xaa]],
    ['hlt', x.hlt(), [0xf4]],
    ['cld', x.cld(), [0xfc]],
    ['jz +8', x.jccRel8(x.Cond.z, 8), [0x74, 0x08]],
    ['jnz -15', x.jccRel8(x.Cond.nz, -15), [0x75, 0xf1]],
    ['jmp -13', x.jmpRel8(-13), [0xeb, 0xf3]],
  ])('%s', (_name, got, want) => {
    expect(got).toEqual(want);
  });

  it('refuses what it cannot encode: [rsp]/[rbp] bases, rel8 out of range', () => {
    expect(() => x.movStore(8, R.rsp, R.rax)).toThrow(RangeError);
    expect(() => x.movLoad(1, R.rax, R.rbp)).toThrow(RangeError);
    expect(() => x.jmpRel8(128)).toThrow(RangeError);
    expect(() => x.jccRel8(x.Cond.z, -129)).toThrow(RangeError);
  });
});
