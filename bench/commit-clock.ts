// The clocks of the live-stream measure: when each commit ended (from the workers' commit
// notices), so that a delivery's latency can be read from its seq, and a millisecond histogram.

/** The longest latency the histogram holds, in ms. */
export const MAX_MS = 600_000;

/**
 * When each commit ended, by the highest seq it made visible. The commit that stored seq s
 * is the first one whose seq reaches s: commits hand out seqs in order. A delivery can
 * arrive before its notice reaches this process (the API may hear first): it waits here.
 */
export function commitClock() {
  const seqs: number[] = [];
  const times: number[] = [];
  let waiting: { seq: number; at: number }[] = [];
  let hit = { above: 0, upTo: 0, time: 0 };
  const firstAtLeast = (s: number) => {
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[mid]! >= s) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  return {
    commit(seq: number, at: number, record: (ms: number) => void) {
      const i = firstAtLeast(seq);
      if (seqs[i] === seq) return;
      seqs.splice(i, 0, seq);
      times.splice(i, 0, at);
      if (seq < hit.upTo) hit = { above: 0, upTo: 0, time: 0 };
      if (waiting.length === 0) return;
      const still: typeof waiting = [];
      for (const w of waiting) {
        const j = firstAtLeast(w.seq);
        if (j < seqs.length) record(w.at - times[j]!);
        else still.push(w);
      }
      waiting = still;
    },
    /** The latency of seq received at `at`, or undefined until its commit is known. */
    latency(seq: number, at: number): number | undefined {
      // Most deliveries fall in the same commit as the one before.
      if (seq > hit.above && seq <= hit.upTo) return at - hit.time;
      const i = firstAtLeast(seq);
      if (i < seqs.length) {
        hit = { above: i > 0 ? seqs[i - 1]! : 0, upTo: seqs[i]!, time: times[i]! };
        return at - times[i]!;
      }
      waiting.push({ seq, at });
      return undefined;
    },
    unresolved: () => waiting.length,
  };
}

export function percentile(hist: Uint32Array, total: number, p: number): number {
  const want = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms]!;
    if (seen >= want) return ms;
  }
  return MAX_MS;
}
