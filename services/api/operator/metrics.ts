// GET /metrics: Prometheus text format through prom-client. The series are a table
// (series.ts: what is read from the store and Redis; publish-counts.ts: what this process
// counts); this module registers them and takes the snapshot each scrape reads.
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
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Store } from '../../../shared/store/port.js';
import { liveWorkers } from '../../../shared/heartbeat.js';
import { statusOf } from '../http/errors.js';
import { readStats } from '../read/stats.js';
import { PublishCounts } from './publish-counts.js';
import { HEARTBEAT_HISTOGRAMS, MAX_TOPIC_LABELS, MIRRORED, type HeartbeatHistogram, type MirroredSeries, type Snapshot } from './series.js';

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
  observePublish: Middleware<{ acceptedTopics?: readonly string[] }>;
  /** Counts and times one publish answer; `acceptedTopics` (one per accepted event) count only for a success (202, or 200 with results). */
  recordPublish: (status: number, seconds: number, acceptedTopics: readonly string[] | undefined) => void;
};

/**
 * Forgets every sample. reset() alone leaves an unlabelled metric at 0, and a 0 is a
 * claim; with nothing to say, the metric must have no sample at all.
 */
function clear(metric: Counter | Gauge, labelNames: readonly string[]): void {
  metric.reset();
  if (labelNames.length === 0) metric.remove();
}

/** Registers a series of the table; its values are read from the snapshot of the scrape under way. */
function mirror(registry: Registry, series: MirroredSeries, snapshot: () => Snapshot): void {
  const { name, help, labels: labelNames, read } = series;
  if (series.kind === 'counter') {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        clear(this, labelNames);
        for (const [labels, value] of read(snapshot()) ?? []) this.inc(labels, value);
      },
    });
  } else {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        clear(this, labelNames);
        for (const [labels, value] of read(snapshot()) ?? []) this.set(labels, value);
      },
    });
  }
}

/**
 * prom-client's Histogram can only observe; a worker's histogram arrives already
 * bucketed, so it is rendered by a metric object of our own, which the registry accepts.
 */
function mirrorHistogram(registry: Registry, { name, help, pick }: HeartbeatHistogram, snapshot: () => Snapshot): void {
  const type = 'histogram';
  const get = () => {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const w of snapshot().workers ?? []) {
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
}

export function createMetrics(deps: MetricsDeps): Metrics {
  const topicLabels = deps.hideTopics === true ? 0 : MAX_TOPIC_LABELS;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client names three gauges `_total`, which Prometheus reserves for counters
  // (`promtool check metrics` refuses them); each has a per-type gauge without the suffix.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  let snap: Snapshot = { stats: null, workers: null, storeError: false, topicLabels };
  const snapshot = () => snap;
  for (const series of MIRRORED) mirror(registry, series, snapshot);
  for (const histogram of HEARTBEAT_HISTOGRAMS) mirrorHistogram(registry, histogram, snapshot);
  const publishes = new PublishCounts(registry, topicLabels);
  const recordPublish: Metrics['recordPublish'] = (status, seconds, accepted) => publishes.record(status, seconds, accepted);

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
      recordPublish(status, (performance.now() - started) / 1000, ctx.state.acceptedTopics);
    }
  };

  async function takeSnapshot(): Promise<Snapshot> {
    const [stats, workers] = await Promise.all([
      // readStats reports Redis trouble in its answer; it throws only when the store fails.
      readStats(deps).catch(() => null),
      liveWorkers(deps.redis, deps.queueName).catch(() => null),
    ]);
    return { stats, workers, storeError: stats === null, topicLabels };
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
