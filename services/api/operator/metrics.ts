// GET /metrics: Prometheus text format through prom-client.
//
// Three sources, one registry per app (never prom-client's global one, so two apps in one
// process, as in tests, do not collide):
// - the durable counts are read, at scrape time, through the very function /stats uses
//   (readStats: the store's counters plus what Redis still holds), so the two cannot drift;
// - publish requests are counted and timed in this process, by middleware on the publish
//   routes: per-process counters, as Prometheus expects them (a restart is a counter reset);
// - workers' batch sizes, commit times and process figures arrive in their heartbeats in
//   Redis (see shared/heartbeat.ts) and are rendered here with a `worker` label: workers
//   need no port of their own, and one scrape of the API sees the whole deployment.
import type { Middleware } from 'koa';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Event } from '../../../shared/schema.js';
import type { Store } from '../../../shared/store/port.js';
import type { HistogramData } from '../../../shared/histogram.js';
import { liveWorkers, type WorkerMetrics, type WorkerState } from '../../../shared/heartbeat.js';
import { readStats } from '../read/stats.js';

/** Topics that get a label of their own; the rest are summed in the OVERFLOW series. */
export const MAX_TOPIC_LABELS = 50;

export type TopicLabels = { topic?: string; overflow?: 'true' };

/**
 * The series of the topics past the cap: `overflow="true"` and no `topic` label. A topic
 * name as the bucket (`_other`) merged with a producer's topic of that name; no topic can
 * be absent (names are 1 to 255 characters), so this series is no topic's.
 */
export const OVERFLOW: TopicLabels = { overflow: 'true' };

export const PUBLISH_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type MetricsDeps = {
  store: Store;
  queue: Queue;
  redis: Redis;
  queueName: string;
  startedAt: number;
  /**
   * No series names a topic (every count is in the overflow series): set when READ_API_KEY
   * guards event data, since /metrics stays open and topic names are data.
   */
  hideTopics?: boolean;
};

export type Metrics = {
  contentType: string;
  /** The exposition text, from one snapshot of the store and Redis. */
  render(): Promise<string>;
  /** For the publish routes, outermost: counts and times every answer, 401s and 503s included. */
  observePublish: Middleware<{ accepted?: readonly Event[] }>;
  /** Counts and times one publish answer; `accepted` (its events) count only for a 202. */
  recordPublish: (status: number, seconds: number, accepted: readonly Event[] | undefined) => void;
};

/**
 * The `limit` topics with the most events (of those /stats lists) keep their name; the rest
 * of `total` is the OVERFLOW series, so a producer inventing topics cannot blow up the
 * number of series, and the sum over the series is the total even past the topics /stats
 * lists. A topic entering the top moves its count out of the overflow, which then drops:
 * sum the series for totals (the sum never drops).
 */
export function capTopics(entries: readonly (readonly [string, number])[], total: number, limit = MAX_TOPIC_LABELS): [TopicLabels, number][] {
  const sorted = [...entries].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept: [TopicLabels, number][] = sorted.slice(0, limit).map(([topic, n]) => [{ topic }, n]);
  const rest = total - kept.reduce((sum, [, n]) => sum + n, 0);
  if (sorted.length > limit || rest > 0) kept.push([OVERFLOW, rest]);
  return kept;
}

type Stats = Awaited<ReturnType<typeof readStats>>;
type Snapshot = { stats: Stats | null; workers: WorkerState[] | null; storeError: boolean };

export function statusOf(err: unknown): number {
  const status = (err as { status?: unknown }).status;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

/**
 * Forgets every sample. reset() alone leaves an unlabelled metric at 0, and a 0 is a
 * claim; with nothing to say, the metric must have no sample at all.
 */
function clear(metric: Counter | Gauge, labelNames: readonly string[]): void {
  metric.reset();
  if (labelNames.length === 0) metric.remove();
}

export function createMetrics(deps: MetricsDeps): Metrics {
  const topicLabels = deps.hideTopics === true ? 0 : MAX_TOPIC_LABELS;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let snap: Snapshot = { stats: null, workers: null, storeError: false };

  /** A counter whose value is read from the snapshot at scrape time, not counted here. */
  const mirroredCounter = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: (s: Snapshot) => [Partial<Record<L, string>>, number][] | undefined,
  ) =>
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        clear(this, labelNames);
        for (const [labels, value] of read(snap) ?? []) this.inc(labels, value);
      },
    });

  const mirroredGauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: (s: Snapshot) => [Partial<Record<L, string>>, number][] | undefined,
  ) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        clear(this, labelNames);
        for (const [labels, value] of read(snap) ?? []) this.set(labels, value);
      },
    });

  const one = (value: number | null | undefined): [Record<never, string>, number][] | undefined =>
    value === null || value === undefined ? undefined : [[{}, value]];
  // With Redis away, received and pending are unknown: no sample beats a wrong one (a
  // received count that drops would read as a counter reset).
  const redisOk = (s: Snapshot) => s.stats !== null && s.stats.redis === 'ok';

  mirroredCounter('aggregator_events_received_total', 'Events taken into the queue, ever (GET /stats received).', [], (s) =>
    redisOk(s) ? one(s.stats?.received) : undefined,
  );
  mirroredCounter(
    'aggregator_events_stored_total',
    `Events stored, first copies only (GET /stats unique_processed, per_topic); the ${MAX_TOPIC_LABELS} largest topics labelled by name, the rest summed in the series labelled overflow="true" (and no topic).`,
    ['topic', 'overflow'],
    (s) => (s.stats ? capTopics(Object.entries(s.stats.per_topic), s.stats.unique_processed, topicLabels) : undefined),
  );
  mirroredCounter(
    'aggregator_events_duplicate_dropped_total',
    `Copies of already stored events dropped (GET /stats duplicate_dropped, duplicates_per_topic); the ${MAX_TOPIC_LABELS} topics with most copies labelled by name, the rest summed in the series labelled overflow="true" (and no topic).`,
    ['topic', 'overflow'],
    (s) => (s.stats ? capTopics(Object.entries(s.stats.duplicates_per_topic), s.stats.duplicate_dropped, topicLabels) : undefined),
  );
  mirroredCounter(
    'aggregator_events_conflicts_total',
    `Dropped copies whose content differed from the stored copy (GET /stats conflicts, conflicts_per_topic); the ${MAX_TOPIC_LABELS} topics with most conflicts labelled by name, the rest summed in the series labelled overflow="true" (and no topic).`,
    ['topic', 'overflow'],
    (s) => (s.stats ? capTopics(Object.entries(s.stats.conflicts_per_topic), s.stats.conflicts, topicLabels) : undefined),
  );
  mirroredCounter(
    'aggregator_jobs_redelivered_total',
    'Jobs processed again after their commit (a worker died before acknowledging them): the system\'s own retries, not copies sent by producers (GET /stats redeliveries).',
    [],
    (s) => one(s.stats?.redeliveries),
  );
  mirroredGauge('aggregator_events_pending', 'Events accepted and not yet processed (GET /stats pending).', [], (s) =>
    redisOk(s) ? one(s.stats?.pending) : undefined,
  );
  mirroredGauge('aggregator_topics', 'Topics with at least one stored event.', [], (s) => one(s.stats?.topics_count));
  mirroredGauge('aggregator_queue_jobs', 'Jobs in the queue by state; one job carries one or more events.', ['state'], (s) => {
    const q = s.stats?.queue;
    if (!q) return undefined;
    return (['waiting', 'active', 'delayed', 'failed'] as const).map((state) => [{ state }, q[state]]);
  });
  mirroredCounter('aggregator_store_committed_jobs_total', 'Jobs committed to the store, ever.', [], (s) =>
    one(s.stats?.store.committed_jobs),
  );
  mirroredGauge('aggregator_store_size_bytes', 'Size of the store on disk (SQLite: the file and its write-ahead log; PostgreSQL: the database).', [], (s) =>
    one(s.stats?.store.bytes),
  );
  mirroredGauge('aggregator_store_up', '1 when the store answered this scrape.', [], (s) => one(s.storeError ? 0 : 1));
  mirroredGauge('aggregator_redis_up', '1 when Redis answered this scrape.', [], (s) => one(redisOk(s) ? 1 : 0));
  mirroredGauge('aggregator_workers_live', 'Workers whose heartbeat is recent.', [], (s) => one(s.workers?.length));

  // From the workers' heartbeats.
  const perWorker = (pick: (w: WorkerState) => number | undefined) => (s: Snapshot) =>
    s.workers?.flatMap((w): [{ worker: string }, number][] => {
      const value = pick(w);
      return value === undefined ? [] : [[{ worker: w.id }, value]];
    });
  mirroredCounter('aggregator_worker_committed_jobs_total', 'Jobs this worker committed since it started.', ['worker'], perWorker((w) => w.committed_jobs));
  mirroredCounter('aggregator_worker_committed_events_total', 'Events this worker committed (stored or dropped) since it started.', ['worker'], perWorker((w) => w.committed_events));
  mirroredCounter('aggregator_worker_commits_total', 'Group commits (store transactions) of this worker.', ['worker'], perWorker((w) => w.metrics?.commits));
  mirroredGauge('aggregator_worker_healthy', '1 while the worker reports ok, 0 on a failing store or while stopping.', ['worker'], perWorker((w) => (w.status === 'ok' ? 1 : 0)));
  mirroredGauge('aggregator_worker_heartbeat_age_seconds', 'Age of the worker heartbeat its metrics come from.', ['worker'], perWorker((w) => Math.max(0, (Date.now() - w.at) / 1000)));
  mirroredCounter('aggregator_worker_cpu_seconds_total', 'CPU time of the worker process, user and system.', ['worker'], perWorker((w) => w.metrics?.process.cpu_seconds));
  mirroredGauge('aggregator_worker_resident_memory_bytes', 'Resident memory of the worker process.', ['worker'], perWorker((w) => w.metrics?.process.resident_memory_bytes));
  mirroredGauge('aggregator_worker_heap_used_bytes', 'V8 heap in use in the worker process.', ['worker'], perWorker((w) => w.metrics?.process.heap_used_bytes));

  // prom-client's Histogram can only observe; a worker's histogram arrives already
  // bucketed, so it is rendered by a metric object of our own, which the registry accepts.
  const heartbeatHistogram = (name: string, help: string, pick: (m: WorkerMetrics) => HistogramData) => {
    const type = 'histogram';
    const get = () => {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const w of snap.workers ?? []) {
        if (w.metrics === undefined) continue;
        const h = pick(w.metrics);
        let cumulative = 0;
        h.bounds.forEach((le, i) => {
          cumulative += h.counts[i] ?? 0;
          values.push({ metricName: `${name}_bucket`, labels: { worker: w.id, le }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { worker: w.id, le: '+Inf' }, value: h.count });
        values.push({ metricName: `${name}_sum`, labels: { worker: w.id }, value: h.sum });
        values.push({ metricName: `${name}_count`, labels: { worker: w.id }, value: h.count });
      }
      return Promise.resolve({ name, help, type, values, aggregator: 'sum' });
    };
    registry.registerMetric({ name, help, type, get, reset: () => undefined } as unknown as Metric<string>);
  };
  heartbeatHistogram('aggregator_worker_batch_events', 'Events per group commit.', (m) => m.batch_events);
  heartbeatHistogram('aggregator_worker_commit_seconds', 'Duration of one group commit, fsync included.', (m) => m.commit_seconds);

  // Counted here, per API process.
  const requests = new Counter({
    name: 'aggregator_publish_requests_total',
    help: 'Publish requests answered by this API process, by HTTP status.',
    labelNames: ['status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'aggregator_publish_duration_seconds',
    help: 'Time to answer a publish request (for a 202: until the events are durably queued), by HTTP status.',
    labelNames: ['status'],
    buckets: PUBLISH_SECONDS_BUCKETS,
    registers: [registry],
  });
  const acceptedEvents = new Counter({
    name: 'aggregator_publish_events_total',
    help: `Events accepted (202) by this API process, by topic; the first ${MAX_TOPIC_LABELS} topics seen keep their name, later ones count in the series labelled overflow="true" (and no topic).`,
    labelNames: ['topic', 'overflow'],
    registers: [registry],
  });
  // First come, first labelled: a label never moves, so each series stays monotonic.
  const labelledTopics = new Set<string>();
  const topicLabel = (topic: string): string | undefined => {
    if (labelledTopics.has(topic)) return topic;
    if (labelledTopics.size < topicLabels) {
      labelledTopics.add(topic);
      return topic;
    }
    return undefined;
  };

  // One labels object per status, made once: every publish is counted with one of a few.
  const statusLabels = new Map<number, { status: string }>();
  const recordPublish: Metrics['recordPublish'] = (status, seconds, accepted) => {
    let labels = statusLabels.get(status);
    if (labels === undefined) statusLabels.set(status, (labels = { status: String(status) }));
    requests.inc(labels);
    latency.observe(labels, seconds);
    if (status !== 202 || accepted === undefined) return;
    if (accepted.length === 1) {
      const label = topicLabel(accepted[0]!.topic);
      acceptedEvents.inc(label === undefined ? OVERFLOW : { topic: label }, 1);
      return;
    }
    const perTopic = new Map<string | undefined, number>();
    for (const e of accepted) {
      const label = topicLabel(e.topic);
      perTopic.set(label, (perTopic.get(label) ?? 0) + 1);
    }
    for (const [topic, n] of perTopic) acceptedEvents.inc(topic === undefined ? OVERFLOW : { topic }, n);
  };

  const observePublish: Metrics['observePublish'] = async (ctx, next) => {
    const started = performance.now();
    let status = 500;
    try {
      await next();
      status = ctx.status;
    } catch (err) {
      status = statusOf(err);
      throw err;
    } finally {
      recordPublish(status, (performance.now() - started) / 1000, ctx.state.accepted);
    }
  };

  async function takeSnapshot(): Promise<Snapshot> {
    const [stats, workers] = await Promise.all([
      // readStats reports Redis trouble in its answer; it throws only when the store fails.
      readStats(deps).catch(() => null),
      liveWorkers(deps.redis, deps.queueName).catch(() => null),
    ]);
    return { stats, workers, storeError: stats === null };
  }

  // One scrape at a time: the collect callbacks read the snapshot taken for their scrape.
  let scraping: Promise<unknown> = Promise.resolve();
  function render(): Promise<string> {
    const run = scraping.then(async () => {
      snap = await takeSnapshot();
      return registry.metrics();
    });
    scraping = run.catch(() => undefined);
    return run;
  }

  return { contentType: registry.contentType, render, observePublish, recordPublish };
}
