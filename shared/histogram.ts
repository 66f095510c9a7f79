// A histogram with fixed bucket bounds, small enough to travel in every worker heartbeat.

/**
 * `counts[i]` counts observations in (bounds[i-1], bounds[i]] (not cumulative); those
 * above the last bound are only in `count`, as Prometheus' `+Inf` bucket holds them.
 */
export type HistogramData = { bounds: number[]; counts: number[]; sum: number; count: number };

/** Events per group commit. */
export const BATCH_EVENTS_BOUNDS = [1, 10, 50, 100, 500, 1000, 5000, 20_000];
/** Seconds one group commit takes, fsync included. */
export const COMMIT_SECONDS_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function emptyHistogram(bounds: readonly number[]): HistogramData {
  return { bounds: [...bounds], counts: bounds.map(() => 0), sum: 0, count: 0 };
}

export function observe(h: HistogramData, value: number): void {
  const i = h.bounds.findIndex((bound) => value <= bound);
  if (i >= 0) h.counts[i]!++;
  h.sum += value;
  h.count++;
}
