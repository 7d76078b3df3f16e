/**
 * What a page may read: a small set of candidate page images. The neutral contract pins most reads
 * to one image (zero on first use, the data last written); where it leaves a choice to the backend
 * (e.g. what a page converted without discarding shows) the set holds every allowed image, and the
 * first read narrows it to what the backend showed. Candidates only ever come from zero or from data
 * written to this very page, so a read never passes with another page's or another object's bytes.
 */
export const PAGE = 4096;
export const PAGE_N = 4096n;

/** A page image; `null` is the zero page. */
export type Img = Uint8Array | null;

function same(a: Img, b: Img): boolean {
  if (a === b) return true;
  for (let i = 0; i < PAGE; i++) if ((a ? a[i]! : 0) !== (b ? b[i]! : 0)) return false;
  return true;
}

export class Cands {
  private constructor(readonly imgs: readonly Img[]) {}
  static readonly ZERO = new Cands([null]);

  static of(...imgs: Img[]): Cands {
    const out: Img[] = [];
    for (const i of imgs) if (!out.some((o) => same(o, i))) out.push(i);
    return new Cands(out);
  }

  union(other: Cands): Cands {
    return Cands.of(...this.imgs, ...other.imgs);
  }

  get isZeroOnly(): boolean {
    return this.imgs.length === 1 && this.imgs[0] === null;
  }

  /** The candidates after writing `data` at byte `at` of the page. */
  write(at: number, data: Uint8Array): Cands {
    return Cands.of(
      ...this.imgs.map((i) => {
        const n = i ? i.slice() : new Uint8Array(PAGE);
        n.set(data, at);
        return n;
      }),
    );
  }

  /** The candidates whose bytes `[at, at+got.length)` equal `got`. */
  matching(at: number, got: Uint8Array): Cands {
    return new Cands(
      this.imgs.filter((i) => {
        for (let k = 0; k < got.length; k++) if ((i ? i[at + k]! : 0) !== got[k]) return false;
        return true;
      }),
    );
  }

  get empty(): boolean {
    return this.imgs.length === 0;
  }

  describe(at: number, len: number): string {
    return this.imgs.map((i) => (i ? hex(i.subarray(at, at + Math.min(len, 16))) : 'zero')).join(' | ');
  }
}

export function hex(b: Uint8Array): string {
  return [...b.subarray(0, 16)].map((x) => x.toString(16).padStart(2, '0')).join('') + (b.length > 16 ? '…' : '');
}
