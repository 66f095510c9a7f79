// The bench's scenarios: what each one publishes, how, and the target it is measured against.
import type { IdOrder } from './workload.js';

export type Scenario = {
  name: string;
  /** Only for ?wait: seconds the producer waits for the verdicts. */
  wait?: number;
  events: number;
  batch: number;
  concurrency: number;
  dupRatio: number;
  workers: number;
  topics: number;
  ids: IdOrder;
  prefill: number;
  /** Recovery: one worker is killed (SIGKILL) a third of the way through, and not restarted. */
  killWorker?: boolean;
  target: string;
};

export const PRESETS: Record<string, Scenario> = {
  'batched-random': { name: 'batched-random', events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 10_000_000, target: '>= 60,000 events/s end to end; >= 75% of empty-batched' },
  'batched-ordered': { name: 'batched-ordered', events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'ordered', prefill: 10_000_000, target: '>= 1.5x batched-random (both at 10 M stored)' },
  single: { name: 'single', events: 200_000, batch: 1, concurrency: 64, dupRatio: 0.2, workers: 2, topics: 8, ids: 'random', prefill: 0, target: 'service CPU <= 160 µs per event, p99 < 25 ms; >= 10,000 events/s, lag not growing' },
  wait: { name: 'wait', events: 20_000, batch: 1, concurrency: 16, dupRatio: 0.2, workers: 2, topics: 8, ids: 'random', prefill: 0, wait: 5, target: 'latency of ?wait for one event, publish to verdict (p50/p99)' },
  recovery: { name: 'recovery', events: 200_000, batch: 100, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 0, killWorker: true, target: "a killed worker's jobs committed by another within 10 s" },
  'empty-batched': { name: 'empty-batched', events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 0, target: 'growth: batched-random >= 75% of this' },
};
