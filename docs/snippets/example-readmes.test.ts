/**
 * Every command in every example's README works: each line of their `sh` blocks is checked or run.
 * Install and build lines name scripts the root package.json has (`pnpm test` has just built
 * everything); `node …` and `pnpm start` lines run; `npx vitest run <path>` lines name a directory
 * with tests (they run in this same suite).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const PNPM = 'npx -y pnpm@10.34.8';

function commands(readme: string): string[] {
  const out: string[] = [];
  let inSh = false;
  for (const line of readFileSync(readme, 'utf8').split('\n')) {
    if (/^```(sh|bash)\s*$/.test(line)) inSh = true;
    else if (line.startsWith('```')) inSh = false;
    else if (inSh && line.trim()) out.push(line.replace(/\s+#.*$/, '').trim());
  }
  return out;
}

function run(cmd: string, args: string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('example READMEs', () => {
  for (const ex of readdirSync(join(root, 'examples'))) {
    const readme = join(root, 'examples', ex, 'README.md');
    if (!existsSync(readme)) continue;
    it(`${ex}: every command works`, () => {
      const cmds = commands(readme);
      expect(cmds.length, `${ex}/README.md has no sh block`).toBeGreaterThan(0);
      for (const line of cmds) {
        let cwd = root;
        for (const part of line.split('&&').map((p) => p.trim())) {
          if (part.startsWith('cd ')) {
            cwd = join(cwd, part.slice(3).trim());
            expect(existsSync(cwd), part).toBe(true);
          } else if (part.startsWith(`${PNPM} `)) {
            const script = part.slice(PNPM.length + 1).split(/\s+/)[0]!;
            if (script === 'install') continue;
            const pj = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
            const body = (cwd === root ? scripts : (pj.scripts ?? {}))[script];
            expect(body, `${ex}: '${part}' names no script in ${cwd}/package.json`).toBeDefined();
            if (script === 'start') {
              const [bin, ...args] = body!.split(/\s+/);
              expect(bin).toBe('node');
              const r = run(process.execPath, args, cwd);
              expect(r.status, `${part}:\n${r.out}`).toBe(0);
            }
          } else if (part.startsWith('node ')) {
            const r = run(process.execPath, part.slice(5).split(/\s+/), cwd);
            expect(r.status, `${part}:\n${r.out}`).toBe(0);
          } else if (part.startsWith('npx vitest run')) {
            const target = part.split(/\s+/).at(-1)!;
            expect(existsSync(join(cwd, target)), part).toBe(true);
          } else {
            throw new Error(`${ex}/README.md: no rule for '${part}'`);
          }
        }
      }
    });
  }
});
