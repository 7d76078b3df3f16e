#!/usr/bin/env node
// `pnpm lint`: project conventions that the type checker does not see. Exits non-zero on findings.
//  - no focused or skipped-by-hand tests (.only / it.skip without a reason)
//  - relative imports in sources carry the .js extension (ESM under NodeNext)
//  - every package has a README and an exports map with types
//  - no console.log in library sources (cli, benches and examples may print)
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const findings = [];
function walk(dir, out = []) {
  for (const e of readdirSync(dir)) {
    if (e === 'node_modules' || e === 'dist') continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}
for (const base of ['packages', 'examples']) {
  for (const pkg of readdirSync(join(root, base))) {
    const dir = join(root, base, pkg);
    if (!statSync(dir).isDirectory()) continue;
    if (!existsSync(join(dir, 'README.md'))) findings.push(`${base}/${pkg}: missing README.md`);
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (base === 'packages' && !pj.exports?.['.']?.types) findings.push(`${base}/${pkg}: exports['.'] lacks types`);
    for (const file of walk(join(dir, 'src'))) {
      const rel = relative(root, file);
      const text = readFileSync(file, 'utf8');
      if (/\b(it|describe|test)\.only\(/.test(text)) findings.push(`${rel}: focused test (.only)`);
      for (const m of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        if (!m[1].endsWith('.js') && !m[1].endsWith('.json')) findings.push(`${rel}: relative import without .js: ${m[1]}`);
      }
      const library = base === 'packages' && pkg !== 'cli' && !rel.includes('/bench/') && !rel.endsWith('.test.ts');
      if (library && /console\.log\(/.test(text)) findings.push(`${rel}: console.log in library code`);
    }
  }
}
for (const f of findings) console.log(f);
console.log(findings.length ? `lint: ${findings.length} finding(s)` : 'lint: clean');
process.exitCode = findings.length ? 1 : 0;
