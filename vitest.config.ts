import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const pkg = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url));

// Tests run against the TypeScript sources of every workspace package (no build needed for the
// inner loop); `pnpm test` still type-checks and builds everything with `tsc -b` first.
const alias = [
  { find: /^@guestmem\/core\/testing$/, replacement: pkg('core/src/testing/index.ts') },
  { find: /^@guestmem\/core$/, replacement: pkg('core/src/index.ts') },
  { find: /^@guestmem\/kvm\/sim$/, replacement: pkg('kvm/src/sim-entry.ts') },
  { find: /^@guestmem\/kvm$/, replacement: pkg('kvm/src/index.ts') },
  { find: /^@guestmem\/gunyah$/, replacement: pkg('gunyah/src/index.ts') },
  { find: /^@guestmem\/conformance\/fuzz$/, replacement: pkg('conformance/src/fuzz/index.ts') },
  { find: /^@guestmem\/conformance$/, replacement: pkg('conformance/src/index.ts') },
];

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'examples/*/*.test.ts', 'docs/snippets/*.test.ts'],
          exclude: ['**/*.native.test.ts', '**/*.diff.test.ts', '**/node_modules/**', '**/dist/**'],
          testTimeout: 60_000,
          setupFiles: ['./scripts/vitest-setup.ts'],
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'native',
          include: ['packages/*/src/**/*.native.test.ts', 'packages/*/src/**/*.diff.test.ts', 'examples/*/src/**/*.native.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**'],
          testTimeout: 300_000,
          setupFiles: ['./scripts/vitest-setup.ts'],
          // Real-kernel suites share one /dev/kvm and count fds: run files one after another.
          fileParallelism: false,
        },
      },
    ],
  },
});
