import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GuestMemError, HostAccessFault } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openKvm } from '../open.js';
import { FALLOC_FL_KEEP_SIZE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { probeNativeKvm } from './probe.js';

const probe = probeNativeKvm();
if (!probe.available) console.warn(`[kvm native] skipping host-access ground truth: ${probe.reason}`);

const CHILD = fileURLToPath(new URL('./fixtures/raw-touch.mjs', import.meta.url));
const PAGE = 4096;
const SIZE = 4 * PAGE;

interface Case {
  name: string;
  flags: bigint;
  falloc: boolean;
  mapOffset: number;
  mapLength: number;
  prot: number;
  touch: number;
  op: 'read' | 'write';
}

/** What the kernel does to a process making this access: 'ok', 'SIGBUS' or 'SIGSEGV'. */
function kernelVerdict(c: Case): string {
  const r = spawnSync(
    process.execPath,
    [
      CHILD,
      String(c.flags),
      String(SIZE),
      c.falloc ? '1' : '0',
      String(c.mapOffset),
      String(c.mapLength),
      String(c.prot),
      String(c.touch),
      c.op,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (r.signal) return r.signal;
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return 'ok';
}

/** What the native driver does for the same access, in this process: it must never signal. */
function driverVerdict(c: Case): string {
  const kvm = openKvm({ driver: 'native' });
  const vm = kvm.createVm();
  const f = vm.createGuestMemfd({ size: SIZE, flags: c.flags });
  const m = f.mmap({ length: c.mapLength, prot: c.prot, flags: MAP_SHARED, offset: c.mapOffset });
  try {
    if (c.falloc) f.fallocate(FALLOC_FL_KEEP_SIZE, 0, SIZE);
    if (c.op === 'read') m.read(c.touch, 1);
    else m.write(c.touch, Uint8Array.of(0x5a));
    return 'ok';
  } catch (e) {
    if (e instanceof HostAccessFault) return 'SIGBUS';
    if (GuestMemError.is(e, 'EFAULT') && e.info.signal === 'SIGSEGV') return 'SIGSEGV';
    throw e;
  } finally {
    m.munmap();
    f.close();
    vm.close();
    kvm.close();
  }
}

const RW = PROT_READ | PROT_WRITE;
const cases: Case[] = [
  { name: 'INIT_SHARED, page 0, read', flags: 3n, falloc: false, mapOffset: 0, mapLength: SIZE, prot: RW, touch: 0, op: 'read' },
  { name: 'INIT_SHARED, last byte, write', flags: 3n, falloc: true, mapOffset: 0, mapLength: SIZE, prot: RW, touch: SIZE - 1, op: 'write' },
  {
    name: 'INIT_SHARED, first byte past EOF, write',
    flags: 3n,
    falloc: false,
    mapOffset: 0,
    mapLength: 2 * SIZE,
    prot: RW,
    touch: SIZE,
    op: 'write',
  },
  {
    name: 'INIT_SHARED, mapping at 1 MiB (past EOF), read',
    flags: 3n,
    falloc: false,
    mapOffset: 1 << 20,
    mapLength: PAGE,
    prot: RW,
    touch: 0,
    op: 'read',
  },
  {
    name: 'INIT_SHARED, mapping at page 3, read its page 0',
    flags: 3n,
    falloc: false,
    mapOffset: 3 * PAGE,
    mapLength: 2 * PAGE,
    prot: RW,
    touch: 10,
    op: 'read',
  },
  {
    name: 'INIT_SHARED, mapping at page 3, read its page 1 (EOF)',
    flags: 3n,
    falloc: false,
    mapOffset: 3 * PAGE,
    mapLength: 2 * PAGE,
    prot: RW,
    touch: PAGE,
    op: 'read',
  },
  { name: 'MMAP only (private), read', flags: 1n, falloc: false, mapOffset: 0, mapLength: SIZE, prot: RW, touch: 0, op: 'read' },
  {
    name: 'MMAP only (private), allocated page, read',
    flags: 1n,
    falloc: true,
    mapOffset: 0,
    mapLength: SIZE,
    prot: RW,
    touch: PAGE,
    op: 'read',
  },
  {
    name: 'MMAP only (private), allocated page, write',
    flags: 1n,
    falloc: true,
    mapOffset: 0,
    mapLength: SIZE,
    prot: RW,
    touch: 0,
    op: 'write',
  },
  {
    name: 'INIT_SHARED, PROT_READ mapping, write',
    flags: 3n,
    falloc: false,
    mapOffset: 0,
    mapLength: SIZE,
    prot: PROT_READ,
    touch: 0,
    op: 'write',
  },
  {
    name: 'INIT_SHARED, 100-byte mapping, last byte of its page, write (whole pages are mapped)',
    flags: 3n,
    falloc: false,
    mapOffset: 0,
    mapLength: 100,
    prot: RW,
    touch: PAGE - 1,
    op: 'write',
  },
  {
    name: 'INIT_SHARED, 100-byte mapping, byte 4000, read',
    flags: 3n,
    falloc: false,
    mapOffset: 0,
    mapLength: 100,
    prot: RW,
    touch: 4000,
    op: 'read',
  },
  {
    name: 'INIT_SHARED, PROT_READ mapping, write past EOF (SIGSEGV wins over SIGBUS)',
    flags: 3n,
    falloc: false,
    mapOffset: 0,
    mapLength: 2 * SIZE,
    prot: PROT_READ,
    touch: SIZE,
    op: 'write',
  },
  {
    name: 'MMAP only (private), PROT_NONE mapping, read (SIGSEGV wins over SIGBUS)',
    flags: 1n,
    falloc: false,
    mapOffset: 0,
    mapLength: SIZE,
    prot: 0,
    touch: 0,
    op: 'read',
  },
  {
    name: 'INIT_SHARED, PROT_WRITE-only mapping, read (x86: allowed)',
    flags: 3n,
    falloc: false,
    mapOffset: 0,
    mapLength: SIZE,
    prot: PROT_WRITE,
    touch: 0,
    op: 'read',
  },
];

describe.skipIf(!probe.available)('native host-access pre-checks agree with the real kernel (child processes)', () => {
  it.each(cases)('$name', (c) => {
    const kernel = kernelVerdict(c);
    expect(driverVerdict(c)).toBe(kernel);
  });

  it('the cases cover allowed, SIGBUS and SIGSEGV outcomes', () => {
    const seen = new Set(cases.slice(0, 3).concat(cases[6], cases[9]).map(kernelVerdict));
    expect(seen).toEqual(new Set(['ok', 'SIGBUS', 'SIGSEGV']));
  });
});
