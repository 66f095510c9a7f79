// Publish requests counted and timed in this API process, as Prometheus expects per-process
// counters (a restart is a counter reset): by status, and accepted events by topic. A publish
// is POST /publish or one of the ingest routes (OTLP, Segment): they share the counters.
import { Counter, Histogram, type Registry } from 'prom-client';
import { MAX_TOPIC_LABELS, OVERFLOW } from './series.js';

const PUBLISH_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class PublishCounts {
  private readonly requests: Counter<'status'>;
  private readonly latency: Histogram<'status'>;
  private readonly acceptedEvents: Counter<'topic' | 'overflow'>;
  /** First come, first labelled: a label never moves, so each series stays monotonic. */
  private readonly labelledTopics = new Set<string>();
  /** One labels object per status, made once: every publish is counted with one of a few. */
  private readonly statusLabels = new Map<number, { status: string }>();

  /** `topicLabels`: how many topics keep their name (0: none, when topic names must not show). */
  constructor(
    registry: Registry,
    private readonly topicLabels = MAX_TOPIC_LABELS,
  ) {
    this.requests = new Counter({
      name: 'aggregator_publish_requests_total',
      help: 'Publish requests answered by this API process, by HTTP status.',
      labelNames: ['status'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'aggregator_publish_duration_seconds',
      help: 'Time to answer a publish request (for a 202: until the events are durably queued), by HTTP status.',
      labelNames: ['status'],
      buckets: PUBLISH_SECONDS_BUCKETS,
      registers: [registry],
    });
    this.acceptedEvents = new Counter({
      name: 'aggregator_publish_events_total',
      help: `Events accepted by this API process (POST /publish and the ingest routes), by topic; the first ${MAX_TOPIC_LABELS} topics seen keep their name, later ones count in the series labelled overflow="true" (and no topic).`,
      labelNames: ['topic', 'overflow'],
      registers: [registry],
    });
  }

  /**
   * Counts and times one publish answer; `topics` (one per accepted event) count for a success: 202,
   * or 200 (POST /publish?wait with its results, an ingest route; OTLP's partial success
   * gives only the records it took).
   */
  record(status: number, seconds: number, topics: readonly string[] | undefined): void {
    let labels = this.statusLabels.get(status);
    if (labels === undefined) this.statusLabels.set(status, (labels = { status: String(status) }));
    this.requests.inc(labels);
    this.latency.observe(labels, seconds);
    if ((status !== 200 && status !== 202) || topics === undefined) return;
    if (topics.length === 1) {
      const label = this.topicLabel(topics[0]!);
      this.acceptedEvents.inc(label === undefined ? OVERFLOW : { topic: label }, 1);
      return;
    }
    const perTopic = new Map<string | undefined, number>();
    for (const topic of topics) {
      const label = this.topicLabel(topic);
      perTopic.set(label, (perTopic.get(label) ?? 0) + 1);
    }
    for (const [topic, n] of perTopic) this.acceptedEvents.inc(topic === undefined ? OVERFLOW : { topic }, n);
  }

  private topicLabel(topic: string): string | undefined {
    if (this.labelledTopics.has(topic)) return topic;
    if (this.labelledTopics.size < this.topicLabels) {
      this.labelledTopics.add(topic);
      return topic;
    }
    return undefined;
  }
}
