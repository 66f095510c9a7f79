// A Bloom filter over dedup keys: "certainly new" without touching the dedup index. At 10
// million stored events a random new key's probe of the large tier reads a page of its own,
// and most events are new, so most probes find nothing. The filter answers those from
// memory, and only keys it may hold are looked up. It never forgets a key, so "no" is
// exact; a "maybe" for a new key (0.24% of random keys, measured with the filter two thirds
// full) only costs the lookup it replaces.
//
// It grows by segments, as a scalable Bloom filter does: once one holds as many keys as it
// was sized for, a new one twice the size of everything so far takes the next keys, and a
// key is looked for in each. 10 bits (1.25 bytes) per key, 7 probes in one cache line.
// Sized at its build for half as many keys again as the store holds: about 1.9 bytes per
// stored identity then; just after it adds a segment, up to 3 times that.

const BITS_PER_KEY = 10;
const PROBES = 7;
// Blocked: a key's bits all lie in one 512-bit block (a cache line), so adding or looking for
// a key misses the CPU cache once, not once per probe.
const BLOCK_WORDS = 16;
const BLOCK_BITS = BLOCK_WORDS * 32;
const MIN_CAPACITY = 1 << 16;
const TWO_32 = 4294967296;

/** murmur3's finaliser: every input bit moves every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// The two hashes of the key at hand: set by hash(), read by the segments (no allocation per
// key). H1 picks the block, H2 the bits in it: its low bits the first, its high bits the step.
let H1 = 0;
let H2 = 0;

/** A key (53-bit integer, see identity.ts) as two 32-bit hashes. */
function hash(k: number): void {
  const lo = k >>> 0;
  const hi = Math.floor(k / TWO_32) >>> 0;
  H1 = fmix32(lo ^ Math.imul(hi, 0x9e3779b1));
  H2 = fmix32((hi + Math.imul(lo, 0x27d4eb2f)) ^ 0x165667b1);
}

class Segment {
  readonly words: Uint32Array;
  private readonly blocks: number;
  count = 0;

  constructor(readonly capacity: number) {
    this.blocks = Math.ceil((capacity * BITS_PER_KEY) / BLOCK_BITS);
    this.words = new Uint32Array(this.blocks * BLOCK_WORDS);
  }

  /** The block of H1, mapped onto [0, blocks) by a multiply rather than a modulo. */
  private base(): number {
    return Math.floor((H1 * this.blocks) / TWO_32) * BLOCK_WORDS;
  }

  has(): boolean {
    const base = this.base();
    const step = (H2 >>> 16) | 1;
    for (let i = 0, bit = H2; i < PROBES; i++, bit += step) {
      const b = bit & (BLOCK_BITS - 1);
      if ((this.words[base + (b >>> 5)]! & (1 << (b & 31))) === 0) return false;
    }
    return true;
  }

  add(): void {
    const base = this.base();
    const step = (H2 >>> 16) | 1;
    for (let i = 0, bit = H2; i < PROBES; i++, bit += step) {
      const b = bit & (BLOCK_BITS - 1);
      const w = base + (b >>> 5);
      this.words[w] = this.words[w]! | (1 << (b & 31));
    }
    this.count++;
  }
}

/** Bytes a segment sized for `capacity` keys holds. */
function segmentBytes(capacity: number): number {
  return Math.ceil((capacity * BITS_PER_KEY) / BLOCK_BITS) * BLOCK_WORDS * 4;
}

/**
 * Bytes a filter holds for `keys` stored keys when it is built: 1.5 times their 1.25 bytes,
 * about 1.9 bytes per key (it then grows by segments as keys come, see add()).
 */
export function filterBytesFor(keys: number): number {
  return segmentBytes(Math.max(MIN_CAPACITY, Math.ceil(keys * 1.5)));
}

export class KeyFilter {
  private readonly segments: Segment[];
  /**
   * Set once a key could not be added without passing `maxBytes`: from then on the filter
   * says "maybe" for every key (a key it failed to hold must never be called new), and its
   * owner should drop it.
   */
  full = false;

  /**
   * Sized for `expected` keys and then half as many again, so that it starts in one segment.
   * `maxBytes`: the most it may ever hold (check filterBytesFor first: the first segment is
   * allocated whatever the bound).
   */
  constructor(
    expected = 0,
    private readonly maxBytes = Infinity,
  ) {
    this.segments = [new Segment(Math.max(MIN_CAPACITY, Math.ceil(expected * 1.5)))];
  }

  /** Adds a key, unless the filter may hold it already; says which (one hash for both). */
  add(k: number): 'added' | 'maybe-held' {
    if (this.full) return 'maybe-held';
    hash(k);
    for (const s of this.segments) if (s.has()) return 'maybe-held';
    let last = this.segments[this.segments.length - 1]!;
    if (last.count >= last.capacity) {
      const capacity = 2 * this.segments.reduce((n, s) => n + s.capacity, 0);
      if (this.size().bytes + segmentBytes(capacity) > this.maxBytes) {
        this.full = true;
        return 'maybe-held';
      }
      last = new Segment(capacity);
      this.segments.push(last);
    }
    last.add();
    return 'added';
  }

  /** False: the key was never added. True: it may have been. */
  mayHave(k: number): boolean {
    if (this.full) return true;
    hash(k);
    for (const s of this.segments) if (s.has()) return true;
    return false;
  }

  /** Keys added, and the memory the filter holds. */
  size(): { keys: number; bytes: number } {
    return this.segments.reduce((t, s) => ({ keys: t.keys + s.count, bytes: t.bytes + s.words.byteLength }), { keys: 0, bytes: 0 });
  }
}
