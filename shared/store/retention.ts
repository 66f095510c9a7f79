// When a stored event stops being served: once it is older than the retention by its
// processed_at. Every read filters by it, so an expired event disappears at once, whether
// or not the background deletion has reached its row yet.

export type Retention = {
  /** Unset: events are kept and served forever. */
  ms: number | undefined;
  /** The clock processed_at is compared with (tests move it forward). */
  now: () => number;
};

export function retentionOf(opts: { retentionMs?: number | undefined; clock?: (() => number) | undefined }): Retention {
  return { ms: opts.retentionMs, now: opts.clock ?? Date.now };
}

/** Events processed before this instant (ms since the epoch) are expired; 0 when nothing expires. */
export function cutoffMs(r: Retention): number {
  return r.ms === undefined ? 0 : Math.max(0, r.now() - r.ms);
}
