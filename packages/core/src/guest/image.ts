import { gmErr } from '../errors/guest-mem-error.js';
import { toBig } from '../types/brands.js';
import { GuestProgram, opRanges, type GuestOp } from './program.js';
import { GIB, LONG_MODE_GPA_LIMIT, encodeProgram, identityPageTables } from './x86/long-mode.js';

const PAGE = 4096n;

/** Bytes the VMM places in guest memory before the first run. */
export interface GuestImageChunk {
  readonly gpa: bigint;
  readonly data: Uint8Array;
}

/**
 * A {@link GuestProgram} ready to run: the operation list (what simulated backends execute) and
 * its x86-64 long-mode form (what native KVM executes): identity page tables and code, placed in
 * `region` of guest memory by `loadGuest`. Both forms make the same guest accesses in the same order.
 */
export interface GuestImage {
  /** The operations, ending with `hlt`. */
  readonly ops: readonly GuestOp[];
  /** Page tables, then code. */
  readonly chunks: readonly GuestImageChunk[];
  /** Guest range the chunks occupy (page-aligned); the program's own accesses stay outside it. */
  readonly region: { readonly gpa: bigint; readonly size: bigint };
  /** The CPU state of the x86 form: 64-bit long mode, paging on, identity map of `[0, identityMapped)`. */
  readonly x86: { readonly mode: 'long64'; readonly entry: bigint; readonly cr3: bigint; readonly identityMapped: bigint };
}

/** Options of {@link buildGuestImage}. */
export interface BuildGuestImageOptions {
  /** Where the image (page tables, then code) starts: page-aligned. Default 0x1000. */
  at?: bigint | number;
  /**
   * Bytes of guest-physical space the identity map covers, rounded up to 1 GiB. Default: enough
   * for the image and every address the program touches (at least 1 GiB).
   */
  identityMap?: bigint | number;
}

/**
 * Builds the image of `program` (a final `hlt` is added when it does not end with one). `EINVAL`
 * when the image would overlap a range the program touches, or an address is at or past 2^47 (the
 * identity map's reach in long mode's canonical lower half).
 */
export function buildGuestImage(program: GuestProgram | readonly GuestOp[], opts: BuildGuestImageOptions = {}): GuestImage {
  const ops = [...(program instanceof GuestProgram ? program.ops : program)];
  if (ops[ops.length - 1]?.op !== 'hlt') ops.push({ op: 'hlt' });
  const at = toBig(opts.at ?? 0x1000, 'buildGuestImage');
  if (at < 0n || at % PAGE) throw gmErr('EINVAL', 'buildGuestImage', 'core', `image address 0x${at.toString(16)} must be page-aligned`);
  let top = 0n;
  for (const op of ops) for (const r of opRanges(op)) if (r.gpa + r.len > top) top = r.gpa + r.len;
  const code = encodeProgram(ops);
  const codeBytes = (BigInt(code.length) + PAGE - 1n) & ~(PAGE - 1n);
  // The tables' size depends on the cover, which depends on where the image ends: iterate once more if needed.
  let cover = GIB;
  for (;;) {
    const want = opts.identityMap !== undefined ? toBig(opts.identityMap, 'buildGuestImage') : 0n;
    const tableBytes = PAGE * BigInt(1 + Math.ceil(Number(cover / GIB) / 512) + Number(cover / GIB));
    const end = at + tableBytes + codeBytes;
    const need = [top, end, want].reduce((a, b) => (a > b ? a : b));
    const rounded = ((need + GIB - 1n) / GIB) * GIB || GIB;
    if (rounded > LONG_MODE_GPA_LIMIT)
      throw gmErr('EINVAL', 'buildGuestImage', 'core', `address 0x${need.toString(16)} is past the identity map's reach (2^47)`);
    if (rounded <= cover) break;
    cover = rounded;
  }
  const tables = identityPageTables(at, cover);
  const codeAt = at + BigInt(tables.bytes.length);
  const region = { gpa: at, size: BigInt(tables.bytes.length) + codeBytes };
  for (const op of ops) {
    for (const r of opRanges(op)) {
      if (r.len > 0n && r.gpa < region.gpa + region.size && region.gpa < r.gpa + r.len) {
        throw gmErr(
          'EINVAL',
          'buildGuestImage',
          'core',
          `${op.op} at 0x${r.gpa.toString(16)} +${r.len} overlaps the image at 0x${at.toString(16)} +${region.size}`,
        );
      }
    }
  }
  return {
    ops,
    chunks: [
      { gpa: at, data: tables.bytes },
      { gpa: codeAt, data: code },
    ],
    region,
    x86: { mode: 'long64', entry: codeAt, cr3: tables.cr3, identityMapped: cover },
  };
}
