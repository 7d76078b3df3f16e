/**
 * `PageIndex`: an xarray-like sparse radix index keyed by page index (0..2^52-1).
 *
 * Layout is struct-of-arrays: every node is a row in three typed arrays (64 slots, 3×64 mark bits,
 * a slot count), addressed by an integer node id. There is one JS object for the whole index, not
 * one per page, so the garbage collector never sees individual pages and memory stays about
 * 4.4 bytes per stored page when dense.
 *
 * Semantics follow the kernel's xarray where the two overlap:
 * - A slot holds an *entry* (a 31-bit unsigned value) or nothing; `load` of an absent index is -1.
 * - Multi-order entries: an order-9 entry covers 512 consecutive, 512-aligned indices and is stored
 *   once in a level-1 node (8 slots of 64 indices). `load` of any covered index returns it; `erase`
 *   of any covered index erases all of it; storing over any part of it replaces all of it.
 * - Three mark bits per entry, propagated up the tree so "find next marked" skips unmarked subtrees.
 * - The height grows with the largest index stored, so lookups cost O(log64 range) and memory is
 *   proportional to what is stored. A one-leaf cursor cache makes sequential lookups O(1).
 */

const FANOUT = 64;
const ENTRY = 0x80000000;
const VALUE_MASK = 0x7fffffff;
/** Mark words per node: 3 marks × 64 bits = 6 × u32. */
const MARK_WORDS = 6;
const MAX_SHIFT = 48; // 64 * 2^48 = 2^54 > 2^52
const POW2: number[] = Array.from({ length: MAX_SHIFT + 1 }, (_, i) => 2 ** i);

/** Largest value an entry can hold. */
export const PAGE_INDEX_MAX_VALUE = VALUE_MASK;
/** Largest index the page index accepts. */
export const PAGE_INDEX_MAX_INDEX = 2 ** 52 - 1;
/** Number of mark bits per entry. */
export const PAGE_INDEX_MARKS = 3;

export type EntryOrder = 0 | 9;
export type MarkBit = 0 | 1 | 2;

/** Visitor for ordered iteration: `index` is the entry's first index (512-aligned for order 9). */
export type EntryVisitor = (index: number, value: number, order: EntryOrder) => void;

/**
 * Collects the values of erased entries without a call per entry (the bulk-punch path): they are
 * appended to `values[count…]`, growing `values` when full.
 */
export interface ErasedValues {
  values: Int32Array;
  count: number;
}

/** Makes room for `n` more values in `sink`. */
function reserve(sink: ErasedValues, n: number): void {
  if (sink.values.length >= sink.count + n) return;
  const bigger = new Int32Array(Math.max(64, sink.values.length * 2, sink.count + n));
  bigger.set(sink.values);
  sink.values = bigger;
}

function collect(sink: ErasedValues, v: number): void {
  reserve(sink, 1);
  sink.values[sink.count++] = v;
}

function slotOf(index: number, shift: number): number {
  // `(x / 2^shift) & 63`: ToInt32 truncates and keeps the low bits, exact for every index < 2^53.
  return (index / POW2[shift]!) & 63;
}

function lowestBit(w: number): number {
  return 31 - Math.clz32(w & -w);
}

export class PageIndex {
  private slots: Uint32Array;
  private marks: Uint32Array;
  private counts: Uint8Array;
  private capacity: number;
  private nodesUsed = 1; // node 0 is the null node
  private freeList: number[] = [];
  private root = 0;
  private rootShift = 0;
  private cacheBase = -1;
  private cacheLeaf = 0;
  private entries = 0;
  private covered = 0;

  constructor(initialNodes = 16) {
    this.capacity = Math.max(2, initialNodes);
    this.slots = new Uint32Array(this.capacity * FANOUT);
    this.marks = new Uint32Array(this.capacity * MARK_WORDS);
    this.counts = new Uint8Array(this.capacity);
  }

  /** Number of entries (an order-9 entry counts once). */
  get size(): number {
    return this.entries;
  }

  /** Number of indices covered by entries (an order-9 entry counts 512). */
  get indicesCovered(): number {
    return this.covered;
  }

  /** Nodes in use. */
  get nodeCount(): number {
    return this.nodesUsed - 1 - this.freeList.length;
  }

  /** Bytes of typed-array memory reserved by the index (its whole metadata footprint). */
  get reservedBytes(): number {
    return this.slots.byteLength + this.marks.byteLength + this.counts.byteLength;
  }

  /** Bytes of metadata held by live nodes. */
  get usedBytes(): number {
    return this.nodeCount * (FANOUT * 4 + MARK_WORDS * 4 + 1);
  }

  // ---------------------------------------------------------------- lookups

  /** The entry covering `index`, or -1. */
  load(index: number): number {
    const base = index - (index & 63);
    if (base === this.cacheBase) {
      const v = this.slots[this.cacheLeaf * FANOUT + (index & 63)]!;
      return v === 0 ? -1 : v & VALUE_MASK;
    }
    let node = this.root;
    let shift = this.rootShift;
    // Not an index (negative, fractional, NaN, too large): nothing is stored there.
    if (node === 0 || !isIndex(index) || index >= FANOUT * POW2[shift]!) return -1;
    for (;;) {
      const v = this.slots[node * FANOUT + slotOf(index, shift)]!;
      if (v === 0) return -1;
      if (v & ENTRY) return v & VALUE_MASK;
      node = v;
      shift -= 6;
      if (shift === 0) {
        this.cacheBase = base;
        this.cacheLeaf = node;
      }
    }
  }

  /** Order of the entry covering `index` (0 or 9), or -1 when absent. */
  orderOf(index: number): EntryOrder | -1 {
    const loc = this.locate(index);
    return loc < 0 ? -1 : loc === 0 ? 0 : 9;
  }

  /** Shift of the level holding the entry at `index`, or -1 if absent. */
  private locate(index: number): number {
    let node = this.root;
    let shift = this.rootShift;
    if (node === 0 || !isIndex(index) || index >= FANOUT * POW2[shift]!) return -1;
    for (;;) {
      const v = this.slots[node * FANOUT + slotOf(index, shift)]!;
      if (v === 0) return -1;
      if (v & ENTRY) return shift;
      node = v;
      shift -= 6;
    }
  }

  /** True when `index` is covered by an entry. */
  has(index: number): boolean {
    return this.load(index) !== -1;
  }

  // ---------------------------------------------------------------- stores

  /**
   * Stores `value` at `index` with `order` (0 or 9; for order 9 `index` is rounded down to 512).
   * Whatever overlapped the new entry is replaced (its marks are dropped). Returns the old value at
   * `index` (or -1).
   */
  store(index: number, value: number, order: EntryOrder = 0): number {
    checkIndex(index);
    if (!(value >= 0 && value <= VALUE_MASK && Number.isInteger(value))) {
      throw new RangeError(`PageIndex value out of range: ${value}`);
    }
    if (order === 0) {
      const r = this.storeFast(index, value);
      if (r !== -2) return r;
    }
    const first = order === 9 ? index - (index % 512) : index;
    const span = order === 9 ? 512 : 1;
    const old = this.load(index);
    this.eraseRange(first, first + span);
    this.ensureHeight(first + span - 1, order === 9 ? 6 : 0);
    const shift = order === 9 ? 6 : 0;
    // The range was just erased, so no entry stands on the path.
    const node = this.nodeAt(first, shift);
    const firstSlot = slotOf(first, shift);
    const nslots = order === 9 ? 8 : 1;
    for (let s = firstSlot; s < firstSlot + nslots; s++) this.slots[node * FANOUT + s] = (value | ENTRY) >>> 0;
    this.counts[node] += nslots;
    this.entries++;
    this.covered += span;
    return old;
  }

  /**
   * Order-0 store without the general replace machinery: descends (creating nodes) to the leaf and
   * writes the slot. Returns the old value or -1, or -2 when an order-9 entry is in the way (the
   * caller takes the general path).
   */
  private storeFast(index: number, value: number): number {
    const base = index - (index & 63);
    let leaf: number;
    if (base === this.cacheBase) leaf = this.cacheLeaf;
    else {
      this.ensureHeight(index, 0);
      leaf = this.leafFor(index);
      if (leaf < 0) return -2;
      this.cacheBase = base;
      this.cacheLeaf = leaf;
    }
    const at = leaf * FANOUT + (index & 63);
    const old = this.slots[at]!;
    this.slots[at] = (value | ENTRY) >>> 0;
    if (old === 0) {
      this.counts[leaf]!++;
      this.entries++;
      this.covered++;
      return -1;
    }
    if (this.nodeHasAnyMark(leaf)) {
      // The replaced entry's marks go with it (same as the general path).
      this.eraseMarksOnPath(index);
    }
    return old & VALUE_MASK;
  }

  /** Clears every mark of the order-0 entry at `index` and fixes the summaries above it. */
  private eraseMarksOnPath(index: number): void {
    for (let m = 0; m < PAGE_INDEX_MARKS; m++) this.walkMark(index, m as MarkBit, false);
  }

  /**
   * Fills every *absent* index of `[first, end)` with an order-0 entry whose value `produce(index)`
   * returns. Stops early, without storing, when `produce` returns -1, and returns the index it
   * stopped at (`end` when complete). Present entries are left untouched and `produce` is not
   * called for them. Exceptions from `produce` propagate; entries stored before stay.
   */
  fillAbsent(first: number, end: number, produce: (index: number) => number): number {
    if (first >= end) return end;
    checkIndex(end - 1);
    checkIndex(first);
    this.ensureHeight(end - 1, 0);
    let i = first;
    while (i < end) {
      const leafEnd = Math.min(end, i - (i % 64) + 64);
      const leaf = this.leafFor(i);
      if (leaf < 0) {
        // Covered by an order-9 entry: present, skip this 64-index block.
        i = leafEnd;
        continue;
      }
      const row = leaf * FANOUT;
      let added = 0;
      try {
        for (let j = i; j < leafEnd; j++) {
          const at = row + (j & 63);
          if (this.slots[at] !== 0) continue;
          const v = produce(j);
          if (v < 0) {
            this.account(leaf, added);
            if (this.counts[leaf] === 0) this.pruneIfEmpty(j);
            return j;
          }
          this.slots[at] = (v | ENTRY) >>> 0;
          added++;
        }
      } catch (e) {
        this.account(leaf, added);
        if (this.counts[leaf] === 0) this.pruneIfEmpty(i);
        throw e;
      }
      this.account(leaf, added);
      i = leafEnd;
    }
    return end;
  }

  private account(leaf: number, added: number): void {
    this.counts[leaf] += added;
    this.entries += added;
    this.covered += added;
  }

  /** Stores the same `value` at every index of `[first, end)` (order 0), replacing what was there. */
  storeRange(first: number, end: number, value: number): void {
    if (first >= end) return;
    this.eraseRange(first, end);
    this.fillAbsent(first, end, () => value);
  }

  /** Returns the leaf node for index `i`, creating the path; -1 when an order-9 entry covers it. */
  private leafFor(i: number): number {
    return this.nodeAt(i, 0);
  }

  /**
   * Returns the node at level `minShift` on the path to index `i`, creating missing nodes; -1 when
   * an entry higher up covers `i`.
   */
  private nodeAt(i: number, minShift: number): number {
    let node = this.root;
    let shift = this.rootShift;
    while (shift > minShift) {
      const at = node * FANOUT + slotOf(i, shift);
      let child = this.slots[at]!;
      if (child & ENTRY) return -1;
      if (child === 0) {
        child = this.allocNode();
        this.slots[at] = child;
        this.counts[node]!++;
      }
      node = child;
      shift -= 6;
    }
    return node;
  }

  // ---------------------------------------------------------------- erase

  /** Erases the entry covering `index` (all 512 indices of an order-9 entry). Returns its value or -1. */
  erase(index: number): number {
    const base = index - (index & 63);
    if (base === this.cacheBase) {
      const leaf = this.cacheLeaf;
      const at = leaf * FANOUT + (index & 63);
      const v = this.slots[at]!;
      if (v === 0) return -1;
      if (this.counts[leaf]! > 1 && !this.nodeHasAnyMark(leaf)) {
        // Common case: the leaf stays non-empty and has no marks to propagate.
        this.slots[at] = 0;
        this.counts[leaf]!--;
        this.entries--;
        this.covered--;
        return v & VALUE_MASK;
      }
    }
    const v = this.load(index);
    if (v < 0) return -1;
    const shift = this.locate(index);
    const first = shift === 0 ? index : index - (index % 512);
    this.eraseRange(first, first + (shift === 0 ? 1 : 512));
    return v;
  }

  /**
   * Erases every entry that intersects `[first, end)` — an order-9 entry that sticks out of the range
   * is erased whole. `onErase` sees each erased entry once, in index order: a visitor is called, an
   * {@link ErasedValues} collector gets the values appended (no call per entry). Returns the number
   * of entries erased.
   */
  eraseRange(first: number, end: number, onErase?: EntryVisitor | ErasedValues): number {
    if (this.root === 0 || first >= end) return 0;
    const limit = FANOUT * POW2[this.rootShift]!;
    if (first >= limit) return 0;
    const before = this.entries;
    if (this.eraseIn(this.root, this.rootShift, 0, Math.max(0, first), Math.min(end, limit), onErase)) {
      this.freeNode(this.root);
      this.root = 0;
      this.rootShift = 0;
    }
    return before - this.entries;
  }

  /** Returns true when `node` became empty (the caller frees it and clears the parent slot). */
  private eraseIn(
    node: number,
    shift: number,
    nodeBase: number,
    first: number,
    end: number,
    onErase: EntryVisitor | ErasedValues | undefined,
  ): boolean {
    const span = POW2[shift]!;
    const s0 = Math.floor((first - nodeBase) / span);
    const s1 = Math.min(FANOUT - 1, Math.floor((end - 1 - nodeBase) / span));
    const row = node * FANOUT;
    const marked = this.nodeHasAnyMark(node);
    if (shift === 0) return this.eraseLeaf(node, nodeBase, s0, s1, marked, onErase);
    for (let s = s0; s <= s1; s++) {
      const v = this.slots[row + s]!;
      if (v === 0) continue;
      if (v & ENTRY) {
        {
          // An order-9 entry spans the 8 aligned slots containing s.
          const g = s - (s % 8);
          if (typeof onErase === 'function') onErase(nodeBase + g * span, v & VALUE_MASK, 9);
          else if (onErase !== undefined) collect(onErase, v & VALUE_MASK);
          for (let k = g; k < g + 8; k++) {
            this.slots[row + k] = 0;
            this.clearMarksAt(node, k);
          }
          this.counts[node] -= 8;
          this.entries--;
          this.covered -= 512;
          s = g + 7;
        }
        continue;
      }
      const childBase = nodeBase + s * span;
      const cf = Math.max(first, childBase);
      const ce = Math.min(end, childBase + span);
      if (this.eraseIn(v, shift - 6, childBase, cf, ce, onErase)) {
        this.freeNode(v);
        this.slots[row + s] = 0;
        this.counts[node]!--;
        this.clearMarksAt(node, s);
      } else {
        this.refreshMarksFromChild(node, s, v);
      }
    }
    return this.counts[node] === 0;
  }

  /**
   * The leaf level of {@link eraseIn}, where bulk punches spend their time: one tight loop over the
   * slots, counters updated once.
   */
  private eraseLeaf(
    node: number,
    nodeBase: number,
    s0: number,
    s1: number,
    marked: boolean,
    onErase: EntryVisitor | ErasedValues | undefined,
  ): boolean {
    const slots = this.slots;
    const row = node * FANOUT;
    let erased = 0;
    if (typeof onErase === 'function') {
      for (let s = s0; s <= s1; s++) {
        const v = slots[row + s]!;
        if (v === 0) continue;
        onErase(nodeBase + s, v & VALUE_MASK, 0);
        slots[row + s] = 0;
        erased++;
      }
    } else {
      if (onErase !== undefined) reserve(onErase, FANOUT);
      const out = onErase?.values;
      let n = onErase?.count ?? 0;
      for (let s = s0; s <= s1; s++) {
        const v = slots[row + s]!;
        if (v === 0) continue;
        if (out !== undefined) out[n++] = v & VALUE_MASK;
        slots[row + s] = 0;
        erased++;
      }
      if (onErase !== undefined) onErase.count = n;
    }
    if (marked) for (let s = s0; s <= s1; s++) this.clearMarksAt(node, s);
    this.counts[node] -= erased;
    this.entries -= erased;
    this.covered -= erased;
    return this.counts[node] === 0;
  }

  /** Removes the leaf path for `index` if it holds nothing (after an aborted fill). */
  private pruneIfEmpty(index: number): void {
    this.eraseRange(index, index + 1);
    // eraseRange on an absent index still walks the path and frees empty nodes on the way back.
  }

  /** Erases everything. */
  clear(onErase?: EntryVisitor): void {
    this.eraseRange(0, PAGE_INDEX_MAX_INDEX + 1, onErase);
  }

  // ---------------------------------------------------------------- marks

  /** Sets mark `m` on the entry covering `index`. Returns false (and does nothing) if absent. */
  setMark(index: number, m: MarkBit): boolean {
    return this.walkMark(index, m, true);
  }

  /** Clears mark `m` on the entry covering `index`. Returns false if absent. */
  clearMark(index: number, m: MarkBit): boolean {
    return this.walkMark(index, m, false);
  }

  /** True when the entry covering `index` has mark `m`. */
  getMark(index: number, m: MarkBit): boolean {
    let node = this.root;
    let shift = this.rootShift;
    if (node === 0 || !isIndex(index) || index >= FANOUT * POW2[shift]!) return false;
    for (;;) {
      const s = slotOf(index, shift);
      const v = this.slots[node * FANOUT + s]!;
      if (v === 0) return false;
      if (!this.markBit(node, s, m)) return false;
      if (v & ENTRY) return true;
      node = v;
      shift -= 6;
    }
  }

  private walkMark(index: number, m: MarkBit, on: boolean): boolean {
    const pathNodes: number[] = [];
    const pathSlots: number[] = [];
    let node = this.root;
    let shift = this.rootShift;
    if (node === 0 || !isIndex(index) || index >= FANOUT * POW2[shift]!) return false;
    for (;;) {
      const s = slotOf(index, shift);
      const v = this.slots[node * FANOUT + s]!;
      if (v === 0) return false;
      pathNodes.push(node);
      pathSlots.push(s);
      if (v & ENTRY) {
        if (shift === 0) this.setMarkBit(node, s, m, on);
        else {
          const g = s - (s % 8);
          for (let k = g; k < g + 8; k++) this.setMarkBit(node, k, m, on);
        }
        break;
      }
      node = v;
      shift -= 6;
    }
    // Propagate up: a parent slot's mark is set iff the child has any entry with the mark.
    for (let d = pathNodes.length - 2; d >= 0; d--) {
      const child = pathNodes[d + 1]!;
      const any = this.nodeHasMark(child, m);
      this.setMarkBit(pathNodes[d]!, pathSlots[d]!, m, any);
    }
    return true;
  }

  /**
   * First index ≥ `start` and < `end` covered by an entry with mark `m`, or -1. For an order-9 entry
   * that begins before `start`, returns `start`.
   */
  findMarked(start: number, end: number, m: MarkBit): number {
    if (this.root === 0 || start >= end) return -1;
    const r = this.findIn(this.root, this.rootShift, 0, Math.max(0, start), end, m);
    return r;
  }

  private findIn(node: number, shift: number, nodeBase: number, start: number, end: number, m: MarkBit): number {
    const span = POW2[shift]!;
    const s0 = Math.floor((start - nodeBase) / span);
    if (s0 >= FANOUT) return -1;
    const base = node * MARK_WORDS + m * 2;
    for (let w = s0 >> 5; w < 2; w++) {
      let bits = this.marks[base + w]!;
      if (w === s0 >> 5) bits = (bits & ~((1 << (s0 & 31)) - 1)) >>> 0;
      while (bits !== 0) {
        const s = w * 32 + lowestBit(bits);
        bits &= bits - 1;
        const slotBase = nodeBase + s * span;
        if (slotBase >= end) return -1;
        const v = this.slots[node * FANOUT + s]!;
        if (v & ENTRY) return Math.max(slotBase, start);
        const r = this.findIn(v, shift - 6, slotBase, Math.max(start, slotBase), end, m);
        if (r >= 0) return r;
      }
    }
    return -1;
  }

  private markBit(node: number, s: number, m: number): boolean {
    return ((this.marks[node * MARK_WORDS + m * 2 + (s >> 5)]! >>> (s & 31)) & 1) === 1;
  }

  private setMarkBit(node: number, s: number, m: number, on: boolean): void {
    const at = node * MARK_WORDS + m * 2 + (s >> 5);
    const bit = (1 << (s & 31)) >>> 0;
    this.marks[at] = on ? (this.marks[at]! | bit) >>> 0 : (this.marks[at]! & ~bit) >>> 0;
  }

  private clearMarksAt(node: number, s: number): void {
    for (let m = 0; m < PAGE_INDEX_MARKS; m++) this.setMarkBit(node, s, m, false);
  }

  private nodeHasAnyMark(node: number): boolean {
    const at = node * MARK_WORDS;
    const k = this.marks;
    return (k[at]! | k[at + 1]! | k[at + 2]! | k[at + 3]! | k[at + 4]! | k[at + 5]!) !== 0;
  }

  private nodeHasMark(node: number, m: number): boolean {
    const at = node * MARK_WORDS + m * 2;
    return (this.marks[at]! | this.marks[at + 1]!) !== 0;
  }

  private refreshMarksFromChild(node: number, s: number, child: number): void {
    for (let m = 0; m < PAGE_INDEX_MARKS; m++) this.setMarkBit(node, s, m, this.nodeHasMark(child, m));
  }

  // ---------------------------------------------------------------- iteration

  /** Visits every entry intersecting `[first, end)` in index order. */
  forEach(first: number, end: number, visit: EntryVisitor): void {
    if (this.root === 0 || first >= end) return;
    const limit = FANOUT * POW2[this.rootShift]!;
    this.walk(this.root, this.rootShift, 0, Math.max(0, first), Math.min(end, limit), visit);
  }

  /** Visits entries in order; stops (and returns true) as soon as `visit` returns true. */
  private walk(
    node: number,
    shift: number,
    nodeBase: number,
    first: number,
    end: number,
    visit: (index: number, value: number, order: EntryOrder) => boolean | void,
  ): boolean {
    if (first >= end) return false;
    const span = POW2[shift]!;
    const s0 = Math.floor((first - nodeBase) / span);
    const s1 = Math.min(FANOUT - 1, Math.floor((end - 1 - nodeBase) / span));
    const row = node * FANOUT;
    for (let s = s0; s <= s1; s++) {
      const v = this.slots[row + s]!;
      if (v === 0) continue;
      const slotBase = nodeBase + s * span;
      if (v & ENTRY) {
        if (shift === 0) {
          if (visit(slotBase, v & VALUE_MASK, 0) === true) return true;
        } else {
          const g = s - (s % 8);
          if (visit(nodeBase + g * span, v & VALUE_MASK, 9) === true) return true;
          s = g + 7;
        }
        continue;
      }
      if (this.walk(v, shift - 6, slotBase, Math.max(first, slotBase), Math.min(end, slotBase + span), visit)) return true;
    }
    return false;
  }

  /** First index ≥ `start` and < `end` covered by an entry, or -1. */
  nextPresent(start: number, end: number): number {
    if (this.root === 0 || start >= end) return -1;
    let found = -1;
    const limit = FANOUT * POW2[this.rootShift]!;
    this.walk(this.root, this.rootShift, 0, Math.max(0, start), Math.min(end, limit), (i) => {
      // An order-9 entry may begin before `start`: the first covered index is then `start`.
      found = Math.max(i, start);
      return true;
    });
    return found;
  }

  /** Entries intersecting `[first, end)` as `[index, value, order]` triples (convenience; allocates). */
  entriesIn(first: number, end: number): Array<[number, number, EntryOrder]> {
    const out: Array<[number, number, EntryOrder]> = [];
    this.forEach(first, end, (i, v, o) => out.push([i, v, o]));
    return out;
  }

  // ---------------------------------------------------------------- nodes

  private ensureHeight(maxIndex: number, minShift: number): void {
    if (this.root === 0) {
      this.root = this.allocNode();
      this.rootShift = minShift;
    }
    while (this.rootShift < minShift || maxIndex >= FANOUT * POW2[this.rootShift]!) {
      const n = this.allocNode();
      this.slots[n * FANOUT] = this.root;
      this.counts[n] = 1;
      this.refreshMarksFromChild(n, 0, this.root);
      this.root = n;
      this.rootShift += 6;
    }
  }

  private allocNode(): number {
    let id = this.freeList.pop();
    if (id === undefined) {
      if (this.nodesUsed === this.capacity) this.grow();
      id = this.nodesUsed++;
    }
    // A freed node is already zeroed (see freeNode), a fresh one is zero from allocation.
    return id;
  }

  private freeNode(id: number): void {
    this.slots.fill(0, id * FANOUT, id * FANOUT + FANOUT);
    this.marks.fill(0, id * MARK_WORDS, id * MARK_WORDS + MARK_WORDS);
    this.counts[id] = 0;
    this.freeList.push(id);
    if (id === this.cacheLeaf) this.cacheBase = -1;
  }

  private grow(): void {
    const cap = this.capacity * 2;
    const slots = new Uint32Array(cap * FANOUT);
    slots.set(this.slots);
    const marks = new Uint32Array(cap * MARK_WORDS);
    marks.set(this.marks);
    const counts = new Uint8Array(cap);
    counts.set(this.counts);
    this.slots = slots;
    this.marks = marks;
    this.counts = counts;
    this.capacity = cap;
  }
}

function isIndex(index: number): boolean {
  return Number.isInteger(index) && index >= 0;
}

function checkIndex(index: number): void {
  if (!(Number.isInteger(index) && index >= 0 && index <= PAGE_INDEX_MAX_INDEX)) {
    throw new RangeError(`page index out of range 0..2^52-1: ${index}`);
  }
}
