#!/usr/bin/env node
// `pnpm lint`, second half: package-level conventions that biome (the first half, see biome.jsonc:
// focused tests, relative imports with .js, no console in library code) does not see. Exits
// non-zero on findings.
//  - every package and example has a README
//  - every publishable package has an exports map with types, and the fields a registry page needs
//  - no source comment names who on the team wrote what
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const findings = [];
const REQUIRED = ['license', 'repository', 'keywords', 'engines', 'files'];
const ROLE = /\((?:[a-z-]+ )?(?:engineer|lead|reviewer)\)/i;

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    if (e === 'node_modules' || e === 'dist') continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|mjs)$/.test(p)) out.push(p);
  }
  return out;
}

for (const base of ['packages', 'examples']) {
  for (const pkg of readdirSync(join(root, base))) {
    const dir = join(root, base, pkg);
    if (!statSync(dir).isDirectory()) continue;
    if (!existsSync(join(dir, 'README.md'))) findings.push(`${base}/${pkg}: missing README.md`);
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (base === 'packages') {
      if (!pj.exports?.['.']?.types) findings.push(`${base}/${pkg}: exports['.'] lacks types`);
      for (const f of REQUIRED) if (pj[f] === undefined) findings.push(`${base}/${pkg}/package.json: no "${f}"`);
    }
    for (const file of walk(join(dir, 'src'))) {
      const text = readFileSync(file, 'utf8');
      if (ROLE.test(text)) findings.push(`${relative(root, file)}: a comment names a team role (${ROLE.exec(text)[0]})`);
    }
  }
}
for (const f of findings) console.log(f);
console.log(findings.length ? `lint: ${findings.length} finding(s)` : 'lint: clean');
process.exitCode = findings.length ? 1 : 0;
