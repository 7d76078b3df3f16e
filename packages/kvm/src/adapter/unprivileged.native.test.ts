import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// A user outside the kvm group: run the built package as uid/gid 65534 (nobody). Needs root to
// switch users and a /dev/kvm that such a user cannot open.
const pkgDir = fileURLToPath(new URL('../..', import.meta.url));
const kvmMode = existsSync('/dev/kvm') ? statSync('/dev/kvm').mode & 0o007 : undefined;
const why =
  process.getuid?.() !== 0
    ? 'not running as root (cannot switch to an unprivileged user)'
    : kvmMode === undefined
      ? 'no /dev/kvm'
      : kvmMode & 0o006
        ? '/dev/kvm is accessible to every user'
        : !existsSync(`${pkgDir}/dist/index.js`)
          ? 'packages/kvm is not built'
          : '';
const readable = (): boolean =>
  spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(`${pkgDir}/dist/index.js`)})`], { uid: 65534, gid: 65534 })
    .status === 0;
const skip = why || (readable() ? '' : 'the unprivileged user cannot read the repository');
if (skip) console.warn(`[unprivileged.native] skipped: ${skip}`);

describe.skipIf(skip !== '')('a user without access to /dev/kvm', () => {
  it('gets EACCES with the kvm-group hint, and auto-selection falls back to the simulator with a warning saying why', () => {
    const script = `
import 'reflect-metadata';
import { container } from 'tsyringe';
import { HYPERVISOR, registerCore } from '@guestmem/core';
import { probeNativeKvm, registerKvm } from '@guestmem/kvm';
const warnings = [];
process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
const probe = probeNativeKvm();
const c = container.createChildContainer();
registerCore(c);
registerKvm(c);
const h = c.resolve(HYPERVISOR);
setImmediate(() => console.log(JSON.stringify({ code: probe.code, hint: probe.hint, selected: h.id, warnings })));
`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: pkgDir,
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      env: { ...process.env, GUESTMEM_HYPERVISOR: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.code).toBe('EACCES');
    expect(out.hint).toMatch(/add the user to the 'kvm' group/);
    expect(out.selected).toBe('kvm-sim');
    expect(out.warnings).toEqual([
      { code: 'GUESTMEM_SIMULATOR_FALLBACK', message: expect.stringContaining("'kvm': open(/dev/kvm) failed with EACCES") },
    ]);
  });
});
