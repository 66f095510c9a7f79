// The series GET /metrics mirrors from one snapshot of the store and Redis, as a table:
// a name, a help text, labels, and how to read the values from the snapshot. metrics.ts
// registers them and takes the snapshot at scrape time.
import type { HistogramData } from '../../../shared/histogram.js';
import type { WorkerMetrics, WorkerState } from '../../../shared/heartbeat.js';
import type { StatsAnswer } from '../read/stats.js';

/** Topics that get a label of their own; the rest are summed in the OVERFLOW series. */
export const MAX_TOPIC_LABELS = 50;

type TopicLabels = { topic?: string; overflow?: 'true' };

/**
 * The series of the topics past the cap: `overflow="true"` and no `topic` label. A topic
 * name as the bucket (`_other`) merged with a producer's topic of that name; no topic can
 * be absent (names are 1 to 255 characters), so this series is no topic's.
 */
export const OVERFLOW: TopicLabels = { overflow: 'true' };

/**
 * The `limit` topics with the most events (of those /stats lists) keep their name; the rest
 * of `total` is the OVERFLOW series, so a producer inventing topics cannot blow up the
 * number of series, and the sum over the series is the total even past the topics /stats
 * lists. A topic entering the top moves its count out of the overflow, which then drops:
 * sum the series for totals (the sum never drops).
 */
function capTopics(entries: readonly (readonly [string, number])[], total: number, limit = MAX_TOPIC_LABELS): [TopicLabels, number][] {
  const sorted = [...entries].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept: [TopicLabels, number][] = sorted.slice(0, limit).map(([topic, n]) => [{ topic }, n]);
  const rest = total - kept.reduce((sum, [, n]) => sum + n, 0);
  if (sorted.length > limit || rest > 0) kept.push([OVERFLOW, rest]);
  return kept;
}

export type Snapshot = {
  stats: StatsAnswer | null;
  workers: WorkerState[] | null;
  storeError: boolean;
  /** Topics that keep their name: MAX_TOPIC_LABELS, or 0 when topic names must not show. */
  topicLabels: number;
};

type Samples = [Partial<Record<string, string>>, number][] | undefined;

/** A counter or gauge whose values are read from the snapshot at scrape time, not counted here. */
export type MirroredSeries = {
  kind: 'counter' | 'gauge';
  name: string;
  help: string;
  labels: readonly string[];
  /** Undefined: nothing to say this scrape (no sample at all, rather than a 0 that is a claim). */
  read: (s: Snapshot) => Samples;
};

/** A histogram a worker sends already bucketed in its heartbeat. */
export type HeartbeatHistogram = { name: string; help: string; pick: (m: WorkerMetrics) => HistogramData };

const one = (value: number | null | undefined): Samples => (value === null || value === undefined ? undefined : [[{}, value]]);
// With Redis away, received and pending are unknown: no sample beats a wrong one (a
// received count that drops would read as a counter reset).
const redisOk = (s: Snapshot) => s.stats !== null && s.stats.redis === 'ok';
const perTopic = (help: string) =>
  `${help}; the ${MAX_TOPIC_LABELS} largest topics labelled by name, the rest summed in the series labelled overflow="true" (and no topic).`;
/** One sample per live worker, labelled with its id. */
const perWorker = (pick: (w: WorkerState) => number | undefined) => (s: Snapshot) =>
  s.workers?.flatMap((w): [Partial<Record<string, string>>, number][] => {
    const value = pick(w);
    return value === undefined ? [] : [[{ worker: w.id }, value]];
  });
const counter = (name: string, help: string, labels: readonly string[], read: MirroredSeries['read']): MirroredSeries => ({ kind: 'counter', name, help, labels, read });
const gauge = (name: string, help: string, labels: readonly string[], read: MirroredSeries['read']): MirroredSeries => ({ kind: 'gauge', name, help, labels, read });
const TOPIC = ['topic', 'overflow'] as const;
const WORKER = ['worker'] as const;

export const MIRRORED: readonly MirroredSeries[] = [
  counter('aggregator_events_received_total', 'Events taken into the queue, ever (GET /stats received).', [], (s) => (redisOk(s) ? one(s.stats?.received) : undefined)),
  counter(
    'aggregator_events_stored_total',
    perTopic('Events stored, first copies only (GET /stats unique_processed, per_topic)'),
    TOPIC,
    (s) => (s.stats ? capTopics(Object.entries(s.stats.per_topic), s.stats.unique_processed, s.topicLabels) : undefined),
  ),
  counter(
    'aggregator_events_duplicate_dropped_total',
    `Copies of already stored events dropped (GET /stats duplicate_dropped, duplicates_per_topic); the ${MAX_TOPIC_LABELS} topics with most copies labelled by name, the rest summed in the series labelled overflow="true" (and no topic).`,
    TOPIC,
    (s) => (s.stats ? capTopics(Object.entries(s.stats.duplicates_per_topic), s.stats.duplicate_dropped, s.topicLabels) : undefined),
  ),
  counter(
    'aggregator_events_conflicts_total',
    `Dropped copies whose content differed from the stored copy (GET /stats conflicts, conflicts_per_topic); the ${MAX_TOPIC_LABELS} topics with most conflicts labelled by name, the rest summed in the series labelled overflow="true" (and no topic).`,
    TOPIC,
    (s) => (s.stats ? capTopics(Object.entries(s.stats.conflicts_per_topic), s.stats.conflicts, s.topicLabels) : undefined),
  ),
  counter(
    'aggregator_jobs_redelivered_total',
    "Jobs processed again after their commit (a worker died before acknowledging them): the system's own retries, not copies sent by producers (GET /stats redeliveries).",
    [],
    (s) => one(s.stats?.redeliveries),
  ),
  gauge('aggregator_events_pending', 'Events accepted and not yet processed (GET /stats pending).', [], (s) => (redisOk(s) ? one(s.stats?.pending) : undefined)),
  gauge('aggregator_topics', 'Topics with at least one stored event.', [], (s) => one(s.stats?.topics_count)),
  gauge('aggregator_queue_jobs', 'Jobs in the queue by state; one job carries one or more events.', ['state'], (s) => {
    const q = s.stats?.queue;
    return q ? (['waiting', 'active', 'delayed', 'failed'] as const).map((state) => [{ state }, q[state]]) : undefined;
  }),
  counter('aggregator_store_committed_jobs_total', 'Jobs committed to the store, ever.', [], (s) => one(s.stats?.store.committed_jobs)),
  gauge('aggregator_store_size_bytes', 'Size of the store on disk (SQLite: the file and its write-ahead log; PostgreSQL: the database).', [], (s) => one(s.stats?.store.bytes)),
  gauge('aggregator_store_up', '1 when the store answered this scrape.', [], (s) => one(s.storeError ? 0 : 1)),
  gauge('aggregator_redis_up', '1 when Redis answered this scrape.', [], (s) => one(redisOk(s) ? 1 : 0)),
  gauge('aggregator_workers_live', 'Workers whose heartbeat is recent.', [], (s) => one(s.workers?.length)),
  // From the workers' heartbeats.
  counter('aggregator_worker_committed_jobs_total', 'Jobs this worker committed since it started.', WORKER, perWorker((w) => w.committed_jobs)),
  counter('aggregator_worker_committed_events_total', 'Events this worker committed (stored or dropped) since it started.', WORKER, perWorker((w) => w.committed_events)),
  counter('aggregator_worker_commits_total', 'Group commits (store transactions) of this worker.', WORKER, perWorker((w) => w.metrics?.commits)),
  gauge('aggregator_worker_healthy', '1 while the worker reports ok, 0 on a failing store or while stopping.', WORKER, perWorker((w) => (w.status === 'ok' ? 1 : 0))),
  gauge('aggregator_worker_heartbeat_age_seconds', 'Age of the worker heartbeat its metrics come from.', WORKER, perWorker((w) => Math.max(0, (Date.now() - w.at) / 1000))),
  counter('aggregator_worker_cpu_seconds_total', 'CPU time of the worker process, user and system.', WORKER, perWorker((w) => w.metrics?.process.cpu_seconds)),
  gauge('aggregator_worker_resident_memory_bytes', 'Resident memory of the worker process.', WORKER, perWorker((w) => w.metrics?.process.resident_memory_bytes)),
  gauge('aggregator_worker_heap_used_bytes', 'V8 heap in use in the worker process.', WORKER, perWorker((w) => w.metrics?.process.heap_used_bytes)),
];

export const HEARTBEAT_HISTOGRAMS: readonly HeartbeatHistogram[] = [
  { name: 'aggregator_worker_batch_events', help: 'Events per group commit.', pick: (m) => m.batch_events },
  { name: 'aggregator_worker_commit_seconds', help: 'Duration of one group commit, fsync included.', pick: (m) => m.commit_seconds },
];
