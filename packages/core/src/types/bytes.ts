/**
 * Small copies without views: making a view (`subarray`) of a small typed array costs V8 a copy of
 * the array out of the JS heap, which for a few bytes costs more than the copy itself.
 */

/** Largest copy {@link copySmall} takes. */
export const SMALL_COPY_MAX = 32;

const scratch = new Uint8Array(SMALL_COPY_MAX);

/**
 * Copies `n` ≤ {@link SMALL_COPY_MAX} bytes from `src[srcAt…]` to `dst[dstAt…]` with `memmove`
 * semantics, like `TypedArray#set`: the source bytes are read before any is written, so a source
 * that overlaps the destination (two views of one buffer) is copied as it was.
 */
export function copySmall(dst: Uint8Array, dstAt: number, src: Uint8Array, srcAt: number, n: number): void {
  for (let k = 0; k < n; k++) scratch[k] = src[srcAt + k]!;
  for (let k = 0; k < n; k++) dst[dstAt + k] = scratch[k]!;
}

/**
 * A new array holding `src[at…at+len)`: a plain byte loop for a few bytes (cheaper than `slice`,
 * which goes through the array's buffer), `slice` beyond {@link SMALL_COPY_MAX}.
 */
export function bytesAt(src: Uint8Array, at: number, len: number): Uint8Array {
  if (len > SMALL_COPY_MAX) return src.slice(at, at + len);
  const out = new Uint8Array(len);
  for (let k = 0; k < len; k++) out[k] = src[at + k]!;
  return out;
}
