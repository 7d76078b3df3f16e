import { describe, expect, it } from 'vitest';
import { runCli, type CliIo } from './program.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (s) => void (out += s), stderr: (s) => void (err += s) };
  // A bench target list that would fail loudly if a --help ever ran the command.
  const code = await runCli(argv, io, { benchTargets: () => [{ name: 'core', file: '/nonexistent/never-run.js' }] });
  return { code, out, err };
}

describe('guestmem command line', () => {
  it('--help on the program and on every command prints usage, exits 0 and runs nothing', async () => {
    for (const argv of [
      ['--help'],
      ['-h'],
      ['probe', '--help'],
      ['demo', '--help'],
      ['bench', '--help'],
      ['help', 'bench'],
      ['demo', '--hypervisor', 'kvm-sim', '--help'],
    ]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.out).toMatch(/^Usage: guestmem/);
      // Running demo would print its header; bench would report the missing target.
      expect(r.out + r.err).not.toMatch(/guestmem demo —|never-run|selected:/);
    }
  });

  it('--version prints the package version', async () => {
    const r = await run('--version');
    expect(r).toMatchObject({ code: 0, out: '0.1.0\n' });
  });

  it('an unknown command, an unknown option, an extra argument, an unknown backend or bench target exit 2 with a message', async () => {
    expect(await run('nosuch')).toMatchObject({ code: 2, err: expect.stringContaining("unknown command 'nosuch'") });
    expect(await run('demo', '--nosuch')).toMatchObject({ code: 2, err: expect.stringContaining("unknown option '--nosuch'") });
    expect(await run('demo', 'nosuch')).toMatchObject({ code: 2, err: expect.stringContaining('too many arguments') });
    expect(await run('demo', '--hypervisor')).toMatchObject({ code: 2, err: expect.stringContaining('argument missing') });
    expect(await run('demo', '--hypervisor', 'xen')).toMatchObject({ code: 2, err: expect.stringContaining("unknown hypervisor 'xen'") });
    expect(await run('bench', 'nosuch')).toMatchObject({ code: 2, err: expect.stringContaining('unknown benchmark nosuch') });
    expect(await run()).toMatchObject({ code: 2, err: expect.stringContaining('Usage: guestmem') });
  });

  it('demo --hypervisor runs that backend only; --json prints one document', async () => {
    const text = await run('demo', '--hypervisor', 'gunyah-sim');
    expect(text.code).toBe(0);
    expect(text.out).toContain('== gunyah-sim:');
    expect(text.out).not.toContain('== kvm-sim:');
    const j = await run('demo', '--hypervisor', 'kvm-sim', '--json');
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.out);
    expect(doc).toMatchObject({ requested: 'kvm-sim', ok: true, backends: [{ id: 'kvm-sim', status: 'passed' }] });
    expect(doc.backends[0].log).toContain('VM destroyed; binding active: false');
    // Issue 11 item 5: { selected, backends: [{ id, simulated, guest: { exits: [{ kind, … }], output }, memory: { … } }] }.
    expect(doc.selected).toEqual({ id: 'kvm-sim', reason: 'chosen explicitly' });
    const b = doc.backends[0];
    expect(b.simulated).toBe(true);
    expect(b.guest.output).toBe(
      'hello from a guest whose code, page tables and data live in guest memory\nwrote above 4 GiB, checksums reported, halting\n',
    );
    expect(b.guest.exits.at(-1)).toEqual({ kind: 'hlt' });
    for (const e of b.guest.exits)
      expect(['io', 'mmio', 'hlt', 'memory-fault', 'internal-error', 'shutdown', 'interrupted']).toContain(e.kind);
    expect(b.memory).toMatchObject({ pageSize: 4096, accounting: 'exact', privatePages: 0, sharedPages: 528, faultsServed: 0 });
    expect(b.memory.boundRanges).toEqual([
      { gpa: '0x0', size: 2 << 20, access: 'shared' },
      { gpa: '0x140000000', size: 64 << 10, access: 'shared' },
    ]);
    expect(doc.outputIdentical).toBe(true);
  });

  it('probe --json is one document with selected, backends and host', async () => {
    const r = await run('probe', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(Object.keys(doc)).toEqual(expect.arrayContaining(['selected', 'backends', 'host']));
    expect(doc.backends.map((b: { id: string }) => b.id)).toEqual(expect.arrayContaining(['kvm', 'kvm-sim', 'gunyah-sim']));
    for (const b of doc.backends)
      expect(b).toMatchObject({ id: expect.any(String), available: expect.any(Boolean), reason: expect.any(String) });
    expect(['PVM', 'VMX', 'SVM', 'none']).toContain(doc.host.virtualization.kind);
    expect(doc.selection.reason).toEqual(expect.any(String));
  });
});
