// Deterministic event streams for the benchmark: ids random (as from many producers using
// UUIDs) or ordered (one producer's counter), with a share of copies of earlier events.
export type IdOrder = 'random' | 'ordered';

type BenchEvent = { topic: string; event_id: string; timestamp: string; source: string; payload: { n: number; level: string } };

/** sfc32 (Chris Doty-Humphrey's small fast counter): seedable, 2^128 state, passes PractRand. */
export function rng(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}

function hex(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(r() * 16).toString(16);
  return s;
}

type WorkloadOptions = { ids: IdOrder; topics: number; dupRatio: number; seed: number; prefix: string };

/** Makes the n-th original event; ordered ids sort in creation order. */
function makeEvent(o: WorkloadOptions, n: number, r: () => number): BenchEvent {
  const id =
    o.ids === 'ordered'
      ? `${o.prefix}-${String(n).padStart(12, '0')}`
      : `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-${hex(r, 4)}-${hex(r, 12)}`;
  return {
    topic: `topic-${n % o.topics}`,
    event_id: id,
    timestamp: new Date(1_761_264_000_000 + n * 10).toISOString(),
    source: 'bench',
    payload: { n, level: n % 10 === 0 ? 'warn' : 'info' },
  };
}

/**
 * An endless stream: each next() is a new event, or with probability dupRatio a copy of a
 * recent one (producers retry within seconds, so copies are of recent events).
 */
export function stream(o: WorkloadOptions) {
  const r = rng(o.seed);
  const recent: BenchEvent[] = [];
  let originals = 0;
  return {
    next(): BenchEvent {
      if (recent.length > 0 && r() < o.dupRatio) return recent[Math.floor(r() * recent.length)]!;
      const e = makeEvent(o, originals++, r);
      if (recent.length < 10_000) recent.push(e);
      else recent[Math.floor(r() * recent.length)] = e;
      return e;
    },
    originals: () => originals,
  };
}
