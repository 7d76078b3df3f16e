import { describe, expect, it } from 'vitest';
import { GuestMemError } from '../errors/guest-mem-error.js';
import type { VcpuExit } from '../hypervisor/vcpu.js';
import { buildGuestImage } from './image.js';
import { GuestOpInterpreter, type GuestAccessPort } from './interpreter.js';
import { GuestProgram } from './program.js';

const einval = (f: () => unknown) => {
  expect(f).toThrow(GuestMemError);
  expect(f).toThrow(expect.objectContaining({ code: 'EINVAL' }));
};

describe('GuestProgram', () => {
  it('bad arguments are EINVAL and add nothing', () => {
    const p = new GuestProgram().out(1, 2);
    einval(() => p.out(0x10000, 1));
    einval(() => p.out(1, 256));
    einval(() => p.out(1, 1, 3 as 1));
    einval(() => p.loadReport(-1, 4, 1));
    einval(() => p.store((1n << 64n) - 2n, Uint8Array.of(1, 2, 3)));
    einval(() => p.fill(0, 1.5, 0));
    einval(() => p.fill(0, 1, 256));
    einval(() => p.touch(0x1001, 4096, 'read'));
    einval(() => p.touch(0x1000, 100, 'read'));
    einval(() => p.view('both' as 'private'));
    expect(p.ops).toEqual([{ op: 'out', port: 1, value: 2, size: 1 }]);
  });

  it('print is one byte out per character on port 0xe9; view tags later memory ops', () => {
    const p = new GuestProgram().print('Hi').view('private').touch(0, 4096, 'write').view(undefined).fill(0, 1, 1);
    expect(p.ops).toEqual([
      { op: 'out', port: 0xe9, value: 0x48, size: 1 },
      { op: 'out', port: 0xe9, value: 0x69, size: 1 },
      { op: 'touch', gpa: 0n, len: 4096n, access: 'write', value: 1, view: 'private' },
      { op: 'fill', gpa: 0n, len: 1n, byte: 1 },
    ]);
  });
});

describe('buildGuestImage', () => {
  it('adds the final hlt, places tables then code, maps enough for addresses above 4 GiB', () => {
    const img = buildGuestImage(new GuestProgram().store(9n << 30n, Uint8Array.of(1)), { at: 0x10_0000 });
    expect(img.ops.at(-1)).toEqual({ op: 'hlt' });
    expect(img.x86.identityMapped).toBe(10n << 30n);
    expect(img.x86.cr3).toBe(0x10_0000n);
    expect(img.chunks[0]!.gpa).toBe(0x10_0000n);
    expect(img.chunks[1]!.gpa).toBe(0x10_0000n + BigInt(img.chunks[0]!.data.length));
    expect(img.x86.entry).toBe(img.chunks[1]!.gpa);
    expect(img.chunks[1]!.data.at(-1)).toBe(0xf4);
    expect(img.region.size % 4096n).toBe(0n);
  });

  it('refuses an image overlapping the program’s memory, misaligned, or past 2^47', () => {
    einval(() => buildGuestImage(new GuestProgram().fill(0x1800, 16, 0)));
    einval(() => buildGuestImage(new GuestProgram(), { at: 0x1001 }));
    einval(() => buildGuestImage(new GuestProgram().store(1n << 47n, Uint8Array.of(1))));
  });
});

describe('GuestOpInterpreter', () => {
  /** A port with RAM at [0, 64 KiB), MMIO above, and a set of pages that fault until "served". */
  function port(faulting: Set<bigint>) {
    const ram = new Uint8Array(65536);
    const calls: string[] = [];
    const p: GuestAccessPort = {
      access(kind, gpa, buf): VcpuExit | undefined {
        calls.push(`${kind} ${gpa.toString(16)}+${buf.length}`);
        const page = gpa / 4096n;
        if (faulting.has(page)) return { kind: 'memory-fault', gpa: page * 4096n, size: 4096n, access: 'shared', info: {} };
        if (gpa + BigInt(buf.length) > 65536n)
          return {
            kind: 'mmio',
            gpa,
            size: buf.length,
            write: kind === 'write',
            data: kind === 'write' ? Uint8Array.from(buf) : new Uint8Array(buf.length),
            info: {},
          };
        if (kind === 'read') buf.set(ram.subarray(Number(gpa), Number(gpa) + buf.length));
        else ram.set(buf, Number(gpa));
        return undefined;
      },
    };
    return { p, ram, calls };
  }

  it('a memory fault is retried by the next run, after the VMM served it', () => {
    const faulting = new Set([1n]);
    const { p, ram } = port(faulting);
    const it = new GuestOpInterpreter(p);
    it.load(buildGuestImage(new GuestProgram().touch(0, 3 * 4096, 'write', 7), { at: 0x20000 }));
    const e = it.run();
    expect(e).toMatchObject({ kind: 'memory-fault', gpa: 4096n });
    expect(ram[0]).toBe(7);
    expect(ram[4096]).toBe(0);
    faulting.clear();
    expect(it.run().kind).toBe('hlt');
    expect([ram[0], ram[4096], ram[8192]]).toEqual([7, 7, 7]);
    expect(it.run()).toMatchObject({ kind: 'internal-error' });
  });

  it('a range op reaching MMIO goes byte by byte there, and MMIO reads take the completed bytes', () => {
    const { p, calls } = port(new Set());
    const it = new GuestOpInterpreter(p);
    it.load(buildGuestImage(new GuestProgram().checksum(65534, 4, 0x10), { at: 0x20000 }));
    expect(it.run()).toMatchObject({ kind: 'mmio', gpa: 65536n, size: 1, write: false });
    it.completeRead(Uint8Array.of(5));
    expect(it.run()).toMatchObject({ kind: 'mmio', gpa: 65537n, size: 1 });
    it.completeRead(Uint8Array.of(6, 99));
    expect(it.run()).toMatchObject({ kind: 'io', port: 0x10, data: Uint8Array.of(11, 0, 0, 0) });
    expect(calls).toEqual(['read fffe+2', 'read 10000+2', 'read 10000+1', 'read 10001+1']);
    expect(() => it.completeRead(Uint8Array.of(1))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('retryMmio re-executes the MMIO access instead of completing it (memory bound meanwhile); without a pending MMIO it is EINVAL', () => {
    // MMIO at [64 KiB, 68 KiB) until the VMM "binds" it, then plain memory.
    const mem = new Uint8Array(0x11000);
    let bound = false;
    const calls: string[] = [];
    const p: GuestAccessPort = {
      access(kind, gpa, buf) {
        calls.push(`${kind} ${gpa.toString(16)}+${buf.length}`);
        if (gpa >= 0x10000n && !bound)
          return { kind: 'mmio', gpa, size: buf.length, write: kind === 'write', data: Uint8Array.from(buf), info: {} };
        if (kind === 'read') buf.set(mem.subarray(Number(gpa), Number(gpa) + buf.length));
        else mem.set(buf, Number(gpa));
        return undefined;
      },
    };
    const it = new GuestOpInterpreter(p);
    expect(() => it.retryMmio()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    it.load(buildGuestImage(new GuestProgram().touch(0x10000, 4096, 'write', 9).loadReport(0x10000, 1, 0x11), { at: 0x20000 }));
    expect(it.run()).toMatchObject({ kind: 'mmio', gpa: 0x10000n, write: true });
    bound = true;
    it.retryMmio();
    // The write was re-executed into memory; the read after it comes from memory, not from completeRead.
    expect(it.run()).toMatchObject({ kind: 'io', port: 0x11, data: Uint8Array.of(9) });
    expect(mem[0x10000]).toBe(9);
    expect(calls).toEqual(['write 10000+1', 'write 10000+1', 'read 10000+1']);
    expect(() => it.retryMmio()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // Not retried: an MMIO write is done with the exit, nothing reaches memory.
    bound = false;
    mem.fill(0);
    it.load(buildGuestImage(new GuestProgram().touch(0x10000, 4096, 'write', 9), { at: 0x20000 }));
    expect(it.run()).toMatchObject({ kind: 'mmio' });
    bound = true;
    expect(it.run().kind).toBe('hlt');
    expect(mem[0x10000]).toBe(0);
  });
});
