// GET /stats: the store's durable counters plus what Redis still holds.
//
// `received` = events of committed jobs (counted by the worker, in the commit's own
// transaction) + events of jobs still in the queue (counted from their ids). A job is in
// exactly one of the two places at any instant, so once the queue drains
// received == unique_processed + duplicate_dropped exactly, whatever crashed: a job whose
// 202 was lost is still a job, and a job redelivered after its commit is recognised.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { eventCountOfJobId, unfinishedJobIds } from '../../shared/queue.js';
import type { Store } from '../../shared/store.js';
import { liveWorkers, type WorkerState } from '../../shared/workers.js';
import { errorMessage } from '../../shared/errors.js';

export type StatsDeps = { store: Store; queue: Queue; redis: Redis; queueName: string; startedAt: number };

export async function readStats(deps: StatsDeps) {
  // Redis first, then the store: a job that finishes in between is seen in both and
  // recognised by its id, never missed and never counted twice.
  let ids: string[] = [];
  let jobCounts: Record<string, number> | null = null;
  let workers: WorkerState[] | null = null;
  let redisError: string | null = null;
  try {
    [ids, jobCounts, workers] = await Promise.all([
      unfinishedJobIds(deps.redis, deps.queue),
      deps.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed'),
      liveWorkers(deps.redis, deps.queueName),
    ]);
  } catch (err) {
    redisError = errorMessage(err);
  }
  const counts = deps.store.counts();
  const committed = deps.store.committedJobIds(ids);
  let pending = 0;
  let pendingJobs = 0;
  for (const id of new Set(ids)) {
    if (committed.has(id)) continue;
    pending += eventCountOfJobId(id);
    pendingJobs++;
  }
  return {
    received: counts.received + pending,
    unique_processed: counts.uniqueProcessed,
    duplicate_dropped: counts.duplicateDropped,
    pending: redisError === null ? pending : null,
    topics: counts.topics.map((t) => t.topic),
    uptime_seconds: Math.floor((Date.now() - deps.startedAt) / 1000),
    per_topic: Object.fromEntries(counts.topics.map((t) => [t.topic, t.events])),
    duplicates_per_topic: Object.fromEntries(counts.topics.map((t) => [t.topic, t.dropped])),
    queue:
      jobCounts === null
        ? null
        : {
            pending_jobs: pendingJobs,
            waiting: (jobCounts.waiting ?? 0) + (jobCounts.prioritized ?? 0),
            active: jobCounts.active ?? 0,
            delayed: jobCounts.delayed ?? 0,
            failed: jobCounts.failed ?? 0,
          },
    workers:
      workers === null
        ? null
        : {
            live: workers.length,
            list: workers.map((w) => ({ id: w.id, status: w.status, error: w.error, committed_events: w.committed_events })),
          },
    store: { committed_jobs: counts.jobs, bytes: deps.store.sizeBytes() },
    redis: redisError === null ? 'ok' : `unavailable: ${redisError}`,
  };
}
