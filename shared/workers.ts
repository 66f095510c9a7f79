// Worker heartbeats in Redis: each worker writes its state every few seconds, so the API
// can show live workers and what is wrong with them without sharing any memory.
//
// The heartbeat also carries the worker's metrics (batch sizes, commit times, CPU and
// memory), which the API renders on its own /metrics with a `worker` label. Workers then
// need no port of their own, nothing to discover and nothing extra to expose in compose;
// the price is that worker metrics are up to one heartbeat old, and that a worker's series
// end when it stops beating.
import type { Redis } from 'ioredis';

export const HEARTBEAT_MS = 3000;
/** A worker not heard from for this long is no longer counted as live. */
export const WORKER_STALE_MS = 4 * HEARTBEAT_MS;

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
  /** Absent in heartbeats of workers that predate worker metrics. */
  metrics?: WorkerMetrics;
};

/**
 * A histogram with fixed bucket bounds, small enough to travel in every heartbeat.
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

export type WorkerMetrics = {
  /** Group commits, each one SQLite transaction. */
  commits: number;
  batch_events: HistogramData;
  commit_seconds: HistogramData;
  process: { cpu_seconds: number; resident_memory_bytes: number; heap_used_bytes: number };
};

export function workersKey(queueName: string): string {
  return `bull:${queueName}:aggregator:workers`;
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
