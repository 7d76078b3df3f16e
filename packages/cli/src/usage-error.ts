/** Bad usage found after parsing (an unknown backend id, an unknown bench target): exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
