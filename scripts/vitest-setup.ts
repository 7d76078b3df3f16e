// Runs before every test file. On CI (CI=true) every property test and random sequence runs with a
// pinned seed, so a CI run is reproducible; local runs draw a new seed each time and explore more.
// A seed given explicitly (FUZZ_SEED, DIFF_SEED) wins either way.
import fc from 'fast-check';

if (process.env.CI) {
  const seed = Number(process.env.GUESTMEM_TEST_SEED ?? 20261201);
  fc.configureGlobal({ seed });
  process.env.FUZZ_SEED ??= String(seed);
  process.env.DIFF_SEED ??= String(seed);
}
