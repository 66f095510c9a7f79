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

/** What Redis holds: the unfinished jobs' ids, the queue's job counts and the live workers; or why it could not be read. */
type RedisView = { ids: string[]; jobCounts: Record<string, number> | null; workers: WorkerState[] | null; error: string | null };

async function readRedis(deps: StatsDeps): Promise<RedisView> {
  try {
    const [ids, jobCounts, workers] = await Promise.all([
      unfinishedJobIds(deps.redis, deps.queue),
      deps.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed'),
      liveWorkers(deps.redis, deps.queueName),
    ]);
    return { ids, jobCounts, workers, error: null };
  } catch (err) {
    return { ids: [], jobCounts: null, workers: null, error: errorMessage(err) };
  }
}

/** The events and jobs still in the queue: the unfinished jobs the store has not committed. */
function pendingOf(ids: readonly string[], committed: ReadonlySet<string>): { events: number; jobs: number } {
  let events = 0;
  let jobs = 0;
  for (const id of new Set(ids)) {
    if (committed.has(id)) continue;
    events += eventCountOfJobId(id);
    jobs++;
  }
  return { events, jobs };
}

function queueAnswer(jobCounts: Record<string, number> | null, pendingJobs: number) {
  if (jobCounts === null) return null;
  return {
    pending_jobs: pendingJobs,
    waiting: (jobCounts.waiting ?? 0) + (jobCounts.prioritized ?? 0),
    active: jobCounts.active ?? 0,
    delayed: jobCounts.delayed ?? 0,
    failed: jobCounts.failed ?? 0,
  };
}

function workersAnswer(workers: WorkerState[] | null) {
  if (workers === null) return null;
  return {
    live: workers.length,
    list: workers.map((w) => ({ id: w.id, status: w.status, error: w.error, committed_events: w.committed_events, ...(w.role !== undefined && { role: w.role }) })),
  };
}

export async function readStats(deps: StatsDeps) {
  // Redis first, then the store: a job that finishes in between is seen in both and
  // recognised by its id, never missed and never counted twice.
  const redis = await readRedis(deps);
  // One consistent read of the counts and of which of those jobs are committed: a job
  // committed between two separate reads would be counted in neither.
  const counts = await deps.store.counts({ jobIds: redis.ids, topicsLimit: STATS_TOPICS_LIMIT });
  const pending = pendingOf(redis.ids, counts.committed);
  return {
    received: counts.received + pending.events,
    unique_processed: counts.uniqueProcessed,
    duplicate_dropped: counts.duplicateDropped,
    pending: redis.error === null ? pending.events : null,
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
    queue: queueAnswer(redis.jobCounts, pending.jobs),
    workers: workersAnswer(redis.workers),
    store: { kind: deps.store.kind, committed_jobs: counts.jobs, bytes: await deps.store.sizeBytes() },
    redis: redis.error === null ? 'ok' : `unavailable: ${redis.error}`,
  };
}
