import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBench } from './bench.js';
import { runCli, type CliIo } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'guestmem-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
}

const passing = script(
  'pass.mjs',
  `console.log('| a | b |\\n|---|---|\\n| 1 | 2 |');\nconsole.log('JSON ' + JSON.stringify({ results: [1, 2] }));\n`,
);
const failing = script('fail.mjs', `console.log('| partial |');\nprocess.exit(3);\n`);
// Leaves a temp file, starts a grandchild that would outlive it, reports both, then waits.
const hanging = script(
  'hang.mjs',
  `import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const f = join(tmpdir(), 'scratch.bin');
writeFileSync(f, 'x');
const g = spawn('sleep', ['60'], { stdio: 'ignore' });
console.log('STARTED ' + JSON.stringify({ pid: process.pid, grandchild: g.pid, tmp: tmpdir(), file: f }));
setInterval(() => {}, 1000);
`,
);

/** Running (a zombie waiting for its reaper counts as ended). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function cli(argv: string[], targets: { name: string; file: string }[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (s) => void (out += s), stderr: (s) => void (err += s) };
  const code = await runCli(['bench', ...argv], io, { benchTargets: () => targets });
  return { code, out, err };
}

describe('guestmem bench', () => {
  it('prints tables (never the JSON line) by default; --json prints one document with the parsed results', async () => {
    const t = await cli([], [{ name: 'core', file: passing }]);
    expect(t.code).toBe(0);
    expect(t.out).toContain('| 1 | 2 |');
    expect(t.out).not.toContain('JSON');
    const j = await cli(['--json'], [{ name: 'core', file: passing }]);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({
      ok: true,
      interrupted: null,
      targets: [{ name: 'core', status: 'passed', exitCode: 0, result: { results: [1, 2] } }],
    });
  });

  it('exits 1 when a target fails or is missing, 0 with --no-fail; runs only the named targets', async () => {
    const targets = [
      { name: 'core', file: passing },
      { name: 'kvm', file: failing },
      { name: 'gone', file: join(dir, 'absent.mjs') },
    ];
    const r = await cli([], targets);
    expect(r.code).toBe(1);
    expect(r.err).toContain('bench kvm: failed (exited with code 3)');
    expect(r.err).toContain('bench gone: missing');
    expect((await cli(['--no-fail'], targets)).code).toBe(0);
    expect((await cli(['core'], targets)).code).toBe(0);
    expect((await cli(['gone', '--json'], targets)).code).toBe(1);
  });

  it('a stop signal ends the child and its children and removes the temporary files', async () => {
    const ac = new AbortController();
    let started: { pid: number; grandchild: number; tmp: string; file: string } | undefined;
    const report = await runBench(
      [
        { name: 'hang', file: hanging, nodeArgs: [] },
        { name: 'next', file: passing },
      ],
      {
        signal: ac.signal,
        onProgress: () => {},
        onText: (s) => {
          const m = /STARTED (.*)/.exec(s);
          if (m) {
            started = JSON.parse(m[1]!);
            ac.abort('SIGTERM');
          }
        },
      },
    );
    expect(started).toBeDefined();
    expect(report).toMatchObject({
      ok: false,
      interrupted: 'SIGTERM',
      targets: [{ name: 'hang', status: 'interrupted', signal: 'SIGTERM' }],
    });
    expect(report.targets.length).toBe(1); // the next target never started
    expect(existsSync(started!.file)).toBe(false);
    expect(existsSync(started!.tmp)).toBe(false);
    expect(alive(started!.pid)).toBe(false);
    // The grandchild got SIGTERM with its group; give the reaper a moment.
    for (let i = 0; i < 150 && alive(started!.grandchild); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(started!.grandchild)).toBe(false);
    expect(readdirSync(tmpdir()).filter((n) => n === started!.tmp.split('/').pop())).toEqual([]);
  });
});
