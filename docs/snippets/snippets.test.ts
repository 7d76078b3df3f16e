/**
 * Runs every uAPI snippet of docs/uapi-examples.md (one file per operation, in the style of
 * kvm-ioctls' per-ioctl examples): each file asserts what it shows, so importing it is the test.
 * Also checks that the page lists exactly the snippet files that exist.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const groups = ['kvm', 'gunyah'] as const;

describe('docs/uapi-examples.md snippets', () => {
  for (const g of groups) {
    for (const f of readdirSync(`${here}/${g}`).filter((n) => n.endsWith('.ts'))) {
      it(`${g}/${f} runs`, async () => {
        await import(`./${g}/${f}`);
      });
    }
  }

  it('the page links every snippet file and no other', () => {
    const page = readFileSync(`${here}/../uapi-examples.md`, 'utf8');
    const linked = [...page.matchAll(/\]\(snippets\/((?:kvm|gunyah)\/[a-z0-9-]+\.ts)\)/g)].map((m) => m[1]).sort();
    const files = groups
      .flatMap((g) =>
        readdirSync(`${here}/${g}`)
          .filter((n) => n.endsWith('.ts'))
          .map((n) => `${g}/${n}`),
      )
      .sort();
    expect(linked).toEqual(files);
  });
});
