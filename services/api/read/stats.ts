// GET /stats: the store's durable counters plus what Redis still holds.
//
// `received` = events of committed jobs (counted by the worker, in the commit's own
// transaction) + events of jobs still in the queue (counted from their ids). A job is in
// exactly one of the two places at any instant, so once the queue drains
// received == unique_processed + duplicate_dropped exactly, whatever crashed: a job whose
// 202 was lost is still a job, and a job redelivered after its commit is recognised.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { eventCountOfJobId, unfinishedJobIds } from '../../../shared/queue.js';
import type { Store } from '../../../shared/store/port.js';
import { liveWorkers, type WorkerState } from '../../../shared/heartbeat.js';
import { errorMessage } from '../../../shared/errors.js';

/** How many topic names one /stats answer lists at most; GET /topics pages through all. */
export const STATS_TOPICS_LIMIT = 1000;

/**
 * The answer of GET /stats, declared once: by the reader below. The OpenAPI schema is
 * checked against live answers (test/integration/openapi.test.ts), the dashboard's and the
 * harness' types against this one (test/unit/stats-shape.test.ts).
 */
export type StatsAnswer = Awaited<ReturnType<typeof readStats>>;

type StatsDeps = { store: Store; queue: Queue; redis: Redis; queueName: string; startedAt: number };

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
  // One consistent read of the counts and of which of those jobs are committed: a job
  // committed between two separate reads would be counted in neither.
  const counts = await deps.store.counts({ jobIds: ids, topicsLimit: STATS_TOPICS_LIMIT });
  const committed = counts.committed;
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
    conflicts: counts.conflicts,
    // Stored events deleted since (EVENT_RETENTION, DELETE): still in unique_processed.
    expired: counts.expired,
    erased: counts.erased,
    redeliveries: counts.redeliveries,
    topics: counts.topics.map((t) => t.topic),
    topics_count: counts.topicsCount,
    topics_truncated: counts.topicsCount > counts.topics.length,
    uptime_seconds: Math.floor((Date.now() - deps.startedAt) / 1000),
    per_topic: Object.fromEntries(counts.topics.map((t) => [t.topic, t.events])),
    duplicates_per_topic: Object.fromEntries(counts.topics.map((t) => [t.topic, t.dropped])),
    conflicts_per_topic: Object.fromEntries(counts.topics.map((t) => [t.topic, t.conflicts])),
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
    store: { kind: deps.store.kind, committed_jobs: counts.jobs, bytes: await deps.store.sizeBytes() },
    redis: redisError === null ? 'ok' : `unavailable: ${redisError}`,
  };
}
