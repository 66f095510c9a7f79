// The integration tests' producer workload: new events over a few topics with a share of
// copies of them mixed in, shuffled, as retrying producers send them.
import { randomUUID } from 'node:crypto';

export type Ev = { topic: string; event_id: string; timestamp: string; source: string; payload: Record<string, unknown> };

/** `total` events over `topics` topics of which a share `dupRatio` are copies of earlier ones, shuffled. */
export function workload(total: number, dupRatio: number, opts: { topics?: number; source: string }): { events: Ev[]; unique: number } {
  const topics = opts.topics ?? 4;
  const unique = Math.round(total * (1 - dupRatio));
  const run = randomUUID().slice(0, 8);
  const originals: Ev[] = Array.from({ length: unique }, (_, i) => ({
    topic: `t${i % topics}`,
    event_id: `${run}-${i}`,
    timestamp: new Date(Date.UTC(2025, 9, 24, 0, 0, i % 60)).toISOString(),
    source: opts.source,
    payload: { i, note: 'x'.repeat(i % 50) },
  }));
  const copies = Array.from({ length: total - unique }, () => originals[Math.floor(Math.random() * unique)]!);
  const events = [...originals, ...copies];
  for (let i = events.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [events[i], events[j]] = [events[j]!, events[i]!];
  }
  return { events, unique };
}

/** Requests of mixed sizes (single events, small and large batches), as producers send them. */
export function mixedChunks(events: Ev[]): Ev[][] {
  const chunks: Ev[][] = [];
  for (let i = 0; i < events.length; ) {
    const size = [1, 1, 7, 50, 250, 500][chunks.length % 6]!;
    chunks.push(events.slice(i, i + size));
    i += size;
  }
  return chunks;
}
