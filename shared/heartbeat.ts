// Worker heartbeats in Redis: each worker writes its state every few seconds, so the API
// can show live workers and what is wrong with them without sharing any memory.
//
// The heartbeat also carries the worker's metrics (batch sizes, commit times, CPU and
// memory), which the API renders on its own /metrics with a `worker` label. Workers then
// need no port of their own, nothing to discover and nothing extra to expose in compose;
// the price is that worker metrics are up to one heartbeat old, and that a worker's series
// end when it stops beating.
import type { Redis } from 'ioredis';
import type { HistogramData } from './histogram.js';
import { queueKey } from './queue.js';

export const HEARTBEAT_MS = 3000;
/** A worker not heard from for this long is no longer counted as live. */
const WORKER_STALE_MS = 4 * HEARTBEAT_MS;

export type WorkerState = {
  id: string;
  pid: number;
  host: string;
  started_at: string;
  at: number;
  status: 'ok' | 'store_error' | 'stopping';
  error: string | null;
  committed_jobs: number;
  committed_events: number;
  /** On SQLite with the writer lease: whether this worker takes jobs now or stands by. */
  role?: 'writer' | 'standby';
  /** Absent in heartbeats of workers that predate worker metrics. */
  metrics?: WorkerMetrics;
};

export type WorkerMetrics = {
  /** Group commits, each one SQLite transaction. */
  commits: number;
  batch_events: HistogramData;
  commit_seconds: HistogramData;
  process: { cpu_seconds: number; resident_memory_bytes: number; heap_used_bytes: number };
};

export function workersKey(queueName: string): string {
  return queueKey(queueName, 'aggregator:workers');
}

export async function writeHeartbeat(redis: Redis, queueName: string, state: WorkerState): Promise<void> {
  await redis.hset(workersKey(queueName), state.id, JSON.stringify(state));
}

export async function removeHeartbeat(redis: Redis, queueName: string, id: string): Promise<void> {
  await redis.hdel(workersKey(queueName), id);
}

/** Live workers; entries of workers gone for a minute are removed on the way. */
export async function liveWorkers(redis: Redis, queueName: string, now = Date.now()): Promise<WorkerState[]> {
  const all = await redis.hgetall(workersKey(queueName));
  const live: WorkerState[] = [];
  const gone: string[] = [];
  for (const [id, json] of Object.entries(all)) {
    let state: WorkerState | undefined;
    try {
      state = JSON.parse(json) as WorkerState;
    } catch {
      state = undefined;
    }
    if (state === undefined || now - state.at > 60_000) gone.push(id);
    else if (now - state.at <= WORKER_STALE_MS) live.push(state);
  }
  if (gone.length > 0) await redis.hdel(workersKey(queueName), ...gone);
  return live.sort((a, b) => a.id.localeCompare(b.id));
}
