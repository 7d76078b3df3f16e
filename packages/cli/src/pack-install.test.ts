/**
 * The packages as a user gets them: packs every publishable package with pnpm (as `pnpm publish`
 * would), checks what each tarball carries, installs the tarballs into a scratch project outside the
 * repository (from the local pnpm store; the registry only for what the store lacks), type-checks
 * an ESM consumer under TypeScript strict, and runs it and the installed `guestmem` command.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = ['core', 'kvm', 'gunyah', 'conformance', 'cli'] as const;
const scratch = mkdtempSync(join(tmpdir(), 'guestmem-pack-'));
const tarballs = join(scratch, 'tarballs');
const project = join(scratch, 'project');

/** pnpm as `pnpm test` runs it, else the pinned version through npx (cached after the first use). */
function pnpm(args: string[], cwd: string): SpawnSyncReturns<string> {
  const viaPnpm = process.env.npm_execpath && /pnpm/.test(process.env.npm_execpath);
  const [cmd, pre] = viaPnpm ? [process.execPath, [process.env.npm_execpath!]] : ['npx', ['-y', 'pnpm@10.34.8']];
  return spawnSync(cmd, [...pre, ...args], { cwd, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const contents = new Map<string, string[]>();

beforeAll(() => {
  if (PACKAGES.some((p) => !existsSync(join(root, 'packages', p, 'dist', 'index.js')))) {
    ok(spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: root, encoding: 'utf8' }), 'tsc -b');
  }
  mkdirSync(tarballs);
  for (const p of PACKAGES) {
    ok(pnpm(['pack', '--pack-destination', tarballs], join(root, 'packages', p)), `pnpm pack ${p}`);
  }
  for (const f of readdirSync(tarballs)) {
    contents.set(
      f,
      ok(spawnSync('tar', ['tzf', join(tarballs, f)], { encoding: 'utf8' }), `tar ${f}`)
        .trim()
        .split('\n'),
    );
  }
  const tgz = (p: string): string => `file:${join(tarballs, `guestmem-${p}-0.1.0.tgz`)}`;
  mkdirSync(project);
  const deps = Object.fromEntries(PACKAGES.map((p) => [`@guestmem/${p}`, tgz(p)]));
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'guestmem-smoke',
      private: true,
      type: 'module',
      dependencies: { ...deps, 'reflect-metadata': '^0.2.2', tsyringe: '^4.10.0' },
      devDependencies: { typescript: '7.0.2', '@types/node': '^20.19.0', vitest: '^4.1.12' },
    }),
  );
  // The tarballs name each other by version (0.1.0, not published): point those at the tarballs.
  writeFileSync(
    join(project, 'pnpm-workspace.yaml'),
    `overrides:\n${PACKAGES.map((p) => `  '@guestmem/${p}': '${tgz(p)}'`).join('\n')}\nignoredBuiltDependencies:\n  - koffi\n`,
  );
  ok(pnpm(['install', '--prefer-offline', '--config.confirmModulesPurge=false'], project), 'pnpm install (scratch project)');
}, 600_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('packages as published', () => {
  it('every tarball has package.json, README, LICENSE and dist; no build info, tests, bench sources or fixtures', () => {
    expect([...contents.keys()].sort()).toEqual(PACKAGES.map((p) => `guestmem-${p}-0.1.0.tgz`).sort());
    for (const [name, files] of contents) {
      for (const required of [
        'package/package.json',
        'package/README.md',
        'package/LICENSE',
        'package/dist/index.js',
        'package/dist/index.d.ts',
      ]) {
        expect(files, `${name} lacks ${required}`).toContain(required);
      }
      const bad = files.filter((f) => /tsbuildinfo|\.test\.|\/src\/bench\/|^package\/bench\/|fixtures\/|\.c$/.test(f));
      expect(bad, name).toEqual([]);
    }
  });

  it('an ESM consumer type-checks under TypeScript strict and runs on the simulators without loading koffi', () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          experimentalDecorators: true,
          types: ['node'],
          outDir: 'out',
          skipLibCheck: false,
        },
        files: ['smoke.ts'],
      }),
    );
    writeFileSync(
      join(project, 'smoke.ts'),
      `import 'reflect-metadata';
import { container } from 'tsyringe';
import { GuestMemError, HYPERVISOR, registerCore, type GuestMemory, type Hypervisor } from '@guestmem/core';
import { FaultInjectingAllocator } from '@guestmem/core/testing';
import { FALLOC_FL_KEEP_SIZE, KVM_CAP_GUEST_MEMFD, openKvm, registerKvm } from '@guestmem/kvm';
import { openSimKvm } from '@guestmem/kvm/sim';
import { openGunyah, registerGunyah } from '@guestmem/gunyah';
import { defineConformanceSuite, type ConformanceTarget } from '@guestmem/conformance';
import { probeReport, type ProbeReport } from '@guestmem/cli';

const results: Record<string, unknown> = {};
for (const id of ['kvm-sim', 'gunyah-sim'] as const) {
  const c = container.createChildContainer();
  registerCore(c, { hypervisor: id });
  registerKvm(c, { driver: 'sim' });
  registerGunyah(c);
  const h: Hypervisor = c.resolve(HYPERVISOR);
  const vm = h.createVm();
  const mem: GuestMemory = vm.createGuestMemory({ size: 8192, hostMappable: true, initiallyShared: true });
  const view = mem.map();
  view.write(0, new Uint8Array([1, 2, 3]));
  mem.punchHole(0, 4096);
  results[id] = Array.from(view.read(0, 3));
  try {
    mem.allocate(1, 1);
  } catch (e) {
    results[id + ':error'] = e instanceof GuestMemError ? e.code : 'not a GuestMemError';
  }
  view.unmap();
  mem.close();
  vm.destroy();
  h.close();
}
const kvm = openKvm({ driver: 'sim' });
const gmemVm = kvm.createVm(0);
const gmem = gmemVm.createGuestMemfd({ size: 8192, flags: 0n });
gmem.fallocate(FALLOC_FL_KEEP_SIZE, 0, 4096);
gmem.close();
gmemVm.close();
results.guestMemfd = openSimKvm().checkExtension(KVM_CAP_GUEST_MEMFD);
results.gunyah = typeof openGunyah;
results.conformance = typeof defineConformanceSuite;
const target: ConformanceTarget | undefined = undefined;
results.target = target ?? null;
results.allocator = typeof FaultInjectingAllocator;
results.koffi = process.report.getReport() !== null && (process.report.getReport() as { sharedObjects: string[] }).sharedObjects.some((p) => p.includes('koffi'));
const report: ProbeReport['host']['virtualization']['kind'] | undefined = undefined;
results.report = report ?? typeof probeReport;
console.log(JSON.stringify(results));
`,
    );
    ok(
      spawnSync(process.execPath, [join(project, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: project, encoding: 'utf8' }),
      'tsc (strict consumer)',
    );
    const out = JSON.parse(
      ok(spawnSync(process.execPath, [join(project, 'out/smoke.js')], { cwd: project, encoding: 'utf8' }), 'node smoke.js').trim(),
    );
    expect(out).toEqual({
      'kvm-sim': [0, 0, 0],
      'kvm-sim:error': 'EINVAL',
      'gunyah-sim': [0, 0, 0],
      'gunyah-sim:error': 'EINVAL',
      guestMemfd: 1,
      gunyah: 'function',
      conformance: 'function',
      target: null,
      allocator: 'function',
      koffi: false,
      report: 'function',
    });
  });

  it('the installed guestmem command: --version, --help, usage errors, probe --json with GUESTMEM_HYPERVISOR', () => {
    const bin = join(project, 'node_modules/.bin/guestmem');
    const run = (args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> =>
      spawnSync(bin, args, { cwd: project, encoding: 'utf8', env: { ...process.env, ...env } });
    expect(run(['--version'])).toMatchObject({ status: 0, stdout: '0.1.0\n' });
    expect(run(['bench', '--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('Usage: guestmem bench') });
    expect(run(['nosuch']).status).toBe(2);
    expect(run(['probe', '--bogus']).status).toBe(2);
    const probe = run(['probe', '--json'], { GUESTMEM_HYPERVISOR: 'gunyah-sim' });
    expect(probe.status).toBe(0);
    expect(JSON.parse(probe.stdout)).toMatchObject({ selected: 'gunyah-sim', selection: { source: 'env' } });
  });

  it('the installed guestmem bench runs the shipped benchmark, and SIGTERM stops it and leaves no temp files', async () => {
    const bin = join(project, 'node_modules/.bin/guestmem');
    const bench = spawnSync(bin, ['bench', 'core', '--json'], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, BENCH_SIZES: '10' },
    });
    expect(bench.status, bench.stderr).toBe(0);
    const doc = JSON.parse(bench.stdout);
    expect(doc).toMatchObject({ ok: true, targets: [{ name: 'core', status: 'passed' }] });
    expect(doc.targets[0].result.results.length).toBeGreaterThan(0);

    const tmp = mkdtempSync(join(scratch, 'tmp-'));
    const child = spawn(bin, ['bench', 'core'], {
      cwd: project,
      env: { ...process.env, TMPDIR: tmp, BENCH_SIZES: '20,24' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Stop it once its benchmark child is running (it reports progress on stderr, or its temp dir appears).
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (readdirSync(tmp).length > 0) {
          clearInterval(poll);
          setTimeout(resolve, 300);
        }
      }, 20);
    });
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(143);
    expect(readdirSync(tmp)).toEqual([]);
  });
});
