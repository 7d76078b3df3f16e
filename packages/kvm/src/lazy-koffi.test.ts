import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

// Runs the built package in a fresh Node process (a test worker may have loaded koffi already) and
// asks Node which shared objects are loaded: koffi is a native addon, so loading it maps koffi.node.
const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const tscBin = fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url));

beforeAll(() => {
  if (!existsSync(`${pkgDir}/dist/index.js`)) {
    const r = spawnSync(process.execPath, [tscBin, '-b', pkgDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tsc -b failed: ${r.stdout}${r.stderr}`);
  }
});

function run(body: string): { koffi: boolean; out: string } {
  const script = `
import 'reflect-metadata';
${body}
const loaded = process.report.getReport().sharedObjects.some((p) => /koffi/.test(p));
console.log(JSON.stringify({ koffi: loaded }));
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: pkgDir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const last = r.stdout.trim().split('\n').pop()!;
  return { ...(JSON.parse(last) as { koffi: boolean }), out: r.stdout };
}

describe('koffi loads lazily', () => {
  it('importing @guestmem/kvm and using only the simulator never loads koffi', () => {
    const r = run(`
import { container } from 'tsyringe';
import { registerCore, HYPERVISOR } from '@guestmem/core';
import { openKvm, registerKvm, FALLOC_FL_KEEP_SIZE, KVM_CAP_GUEST_MEMFD } from '@guestmem/kvm';
import { openSimKvm } from '@guestmem/kvm/sim';
const kvm = openKvm({ driver: 'sim' });
const vm = kvm.createVm(0);
const g = vm.createGuestMemfd({ size: 8192, flags: 0n });
g.fallocate(FALLOC_FL_KEEP_SIZE, 0, 4096);
g.close(); vm.close(); kvm.close();
if (openSimKvm().checkExtension(KVM_CAP_GUEST_MEMFD) !== 1) throw new Error('sim has no guest_memfd');
const c = container.createChildContainer();
registerCore(c);
registerKvm(c, { driver: 'sim' });
const h = c.resolve(HYPERVISOR);
const m = h.createVm().createGuestMemory({ size: 4096 });
m.allocate(0, 4096);
h.close();
`);
    expect(r.koffi).toBe(false);
  });

  it('the first native call loads it (the check above can see a load)', () => {
    const r = run(`
import { probeNativeKvm } from '@guestmem/kvm';
probeNativeKvm();
`);
    expect(r.koffi).toBe(true);
  });
});
