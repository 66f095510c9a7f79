// The bench's scenarios: what each one publishes, how, and the target it is measured against.
import type { StoreKind } from '../tools/harness/cluster.js';
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
  /** The store this scenario runs on whatever `--store` says (the PostgreSQL scenarios of a full run). */
  store?: StoreKind;
  /** Paced publishing, events per second (set by the run from a scenario measured before it). */
  rate?: number;
  /** Recovery: one worker is killed (SIGKILL) a third of the way through, and not restarted. */
  killWorker?: boolean;
  target: string;
};

const batched = { events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 0 } as const;
const single = { events: 200_000, batch: 1, concurrency: 64, dupRatio: 0.2, workers: 2, topics: 8, ids: 'random', prefill: 0 } as const;
/** One topic, so that a subscriber of it gets every event: 100 followers, 100 deliveries each. */
const fanout = { events: 200_000, batch: 100, concurrency: 8, dupRatio: 0.2, workers: 2, topics: 1, ids: 'random', prefill: 0 } as const;

export const PRESETS: Record<string, Scenario> = {
  'batched-random': { ...batched, name: 'batched-random', prefill: 10_000_000, target: 'service CPU <= 20 µs per event; >= 3.5x JetStream' },
  'batched-ordered': { ...batched, name: 'batched-ordered', ids: 'ordered', prefill: 10_000_000, target: '>= 1.5x batched-random (both at 10 M stored)' },
  single: { ...single, name: 'single', target: '>= 0.4x JetStream; p99 < 25 ms; service CPU <= 110 µs per event' },
  wait: { ...single, name: 'wait', events: 20_000, concurrency: 16, wait: 5, target: 'latency of ?wait for one event, publish to verdict (p50/p99)' },
  recovery: { ...batched, name: 'recovery', events: 200_000, batch: 100, killWorker: true, target: "a killed worker's jobs committed by another within 10 s" },
  'empty-batched': { ...batched, name: 'empty-batched', target: 'the SQLite rate pg-batched is read against' },
  'pg-batched': { ...batched, name: 'pg-batched', store: 'postgres', target: '>= 80% of empty-batched (SQLite, same shape)' },
  'pg-single': { ...single, name: 'pg-single', store: 'postgres', target: 'p99 < 25 ms' },
  fanout: { ...fanout, name: 'fanout', target: 'API CPU per delivered message <= 0.5 µs (100 subscribers against none)' },
  'fanout-paced': { ...fanout, name: 'fanout-paced', target: 'at half the rate of fanout without subscribers: delivery p99 < 250 ms, every event delivered, the pace met' },
};
