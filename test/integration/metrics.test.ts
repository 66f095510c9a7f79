// GET /metrics against real processes: its counts are /stats' counts, workers' figures
// arrive through their heartbeats, and publish requests are counted and timed.
import { expect } from 'chai';
import { startCluster } from '../../tools/harness/cluster.js';
import { useCluster } from '../support/suite.js';
import { drained, get, publish, request } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { waitFor } from '../../tools/harness/wait.js';

type Sample = { name: string; labels: Record<string, string>; value: number };

/** Prometheus text format, strictly: a line that is neither a comment nor a sample fails. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a metrics line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(baseUrl: string, headers?: Record<string, string>): Promise<Sample[]> {
  const res = await fetch(`${baseUrl}/metrics`, { headers });
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

const pick = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = pick(samples, name, labels);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

describe('metrics', function () {
  const shared = useCluster({ workers: 1 });
  let received = 0;


  it('counts and times publish requests by status, and accepted events by topic', async () => {
    const before = await scrape(shared.cluster.baseUrl);
    const count = (m: Sample[], name: string, status: string) => value(m, name, { status }) ?? 0;

    expect((await publish(shared.cluster.baseUrl, [event({ topic: 'm-acc' }), event({ topic: 'm-acc' }), event({ topic: 'm-acc2' })])).status).to.equal(202);
    received += 3;
    expect((await publish(shared.cluster.baseUrl, { topic: 'm-acc' })).status).to.equal(422);
    expect((await publish(shared.cluster.baseUrl, '{"broken', { raw: true })).status).to.equal(400);
    expect((await publish(shared.cluster.baseUrl, 'x', { raw: true, contentType: 'text/plain' })).status).to.equal(415);
    expect((await request(shared.cluster.baseUrl, 'POST', '/publish/batch', [event({ topic: 'm-acc' })])).status).to.equal(202);
    received += 1;

    const after = await scrape(shared.cluster.baseUrl);
    const deltas: Record<string, number> = {};
    for (const status of ['202', '400', '415', '422']) {
      deltas[status] = count(after, 'aggregator_publish_requests_total', status) - count(before, 'aggregator_publish_requests_total', status);
      const timed =
        count(after, 'aggregator_publish_duration_seconds_count', status) -
        count(before, 'aggregator_publish_duration_seconds_count', status);
      expect(timed, `timed ${status}`).to.equal(deltas[status]);
    }
    expect(deltas).to.deep.equal({ 202: 2, 400: 1, 415: 1, 422: 1 });
    // Every answer falls in some bucket: +Inf holds them all, and buckets only grow.
    const buckets = pick(after, 'aggregator_publish_duration_seconds_bucket', { status: '202' });
    expect(buckets.at(-1)!.labels.le).to.equal('+Inf');
    expect(buckets.at(-1)!.value).to.equal(value(after, 'aggregator_publish_duration_seconds_count', { status: '202' }));
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).to.be.at.least(buckets[i - 1]!.value);
    expect(value(after, 'aggregator_publish_duration_seconds_sum', { status: '202' })).to.be.greaterThan(0);

    expect(value(after, 'aggregator_publish_events_total', { topic: 'm-acc' })).to.equal(3);
    expect(value(after, 'aggregator_publish_events_total', { topic: 'm-acc2' })).to.equal(1);
    await drained(shared.cluster.baseUrl, received);
  });

  it('mirrors /stats exactly once the queue is drained, topic by topic', async () => {
    const originals = Array.from({ length: 150 }, (_, i) => event({ topic: ['m-a', 'm-b', 'm-c'][i % 3] }));
    const copies = originals.slice(0, 40);
    for (const batch of [originals.slice(0, 100), [...originals.slice(100), ...copies]]) {
      const r = await publish(shared.cluster.baseUrl, { events: batch });
      expect(r.status).to.equal(202);
      received += batch.length;
    }
    // A job's events count as processed once committed; its acknowledgement (the job leaving
    // `active`) follows a moment later, and the queue figures compared below must be at rest.
    const s = await waitFor(
      async () => {
        const d = await drained(shared.cluster.baseUrl, received);
        return (d.queue as Record<string, number>).active === 0 && d;
      },
      { what: 'no job active', timeoutMs: 10_000 },
    );
    expect(s.duplicate_dropped).to.equal(40);
    const m = await scrape(shared.cluster.baseUrl);

    expect(value(m, 'aggregator_events_received_total')).to.equal(s.received);
    const dropped = pick(m, 'aggregator_events_duplicate_dropped_total');
    expect(dropped.reduce((sum, x) => sum + x.value, 0)).to.equal(s.duplicate_dropped);
    const droppedByTopic = Object.fromEntries(dropped.map((x) => [x.labels.topic, x.value]));
    expect(droppedByTopic).to.deep.equal(s.duplicates_per_topic);
    // The 40 copies are of the first 40 originals, spread over three topics in turn.
    expect(droppedByTopic).to.deep.include({ 'm-a': 14, 'm-b': 13, 'm-c': 13 });
    expect(value(m, 'aggregator_events_pending')).to.equal(0);
    expect(value(m, 'aggregator_topics')).to.equal(s.topics.length);
    const stored = pick(m, 'aggregator_events_stored_total');
    expect(Object.fromEntries(stored.map((x) => [x.labels.topic, x.value]))).to.deep.equal(s.per_topic);
    expect(stored.reduce((sum, x) => sum + x.value, 0)).to.equal(s.unique_processed);
    const queue = s.queue as Record<string, number>;
    for (const state of ['waiting', 'active', 'delayed', 'failed']) {
      expect(value(m, 'aggregator_queue_jobs', { state }), state).to.equal(queue[state]);
    }
    const store = s.store as { committed_jobs: number; bytes: number };
    expect(value(m, 'aggregator_store_committed_jobs_total')).to.equal(store.committed_jobs);
    expect(value(m, 'aggregator_store_size_bytes')).to.be.greaterThan(0);
    expect(value(m, 'aggregator_redis_up')).to.equal(1);
    expect(value(m, 'aggregator_store_up')).to.equal(1);
    expect(value(m, 'aggregator_workers_live')).to.equal(1);
    // prom-client's process metrics for the API itself.
    expect(value(m, 'process_cpu_seconds_total')).to.be.greaterThan(0);
    expect(value(m, 'process_resident_memory_bytes')).to.be.greaterThan(0);
  });

  it('labels the 50 largest topics and sums the rest in one overflow series', async () => {
    // Topic cap-i gets i + 1 events. With the 5 topics above (m-a, m-b, m-c with 50 each,
    // m-acc with 3, m-acc2 with 1), 65 topics: the 15 smallest fold into the overflow.
    const batch = Array.from({ length: 60 }, (_, i) => Array.from({ length: i + 1 }, () => event({ topic: `cap-${i}` }))).flat();
    const r = await publish(shared.cluster.baseUrl, { events: batch });
    expect(r.status).to.equal(202);
    received += batch.length;
    const s = await drained(shared.cluster.baseUrl, received);
    const perTopic = s.per_topic as Record<string, number>;
    expect(Object.keys(perTopic)).to.have.length(65);

    const stored = pick(await scrape(shared.cluster.baseUrl), 'aggregator_events_stored_total');
    expect(stored).to.have.length(51);
    const labelled = stored.filter((x) => x.labels.overflow !== 'true');
    for (const x of labelled) expect(x.labels.topic).to.be.a('string');
    const folded = Object.keys(perTopic).filter((t) => !labelled.some((x) => x.labels.topic === t));
    expect(folded).to.have.length(15);
    expect(folded).to.include.members(['m-acc', 'm-acc2', 'cap-0', 'cap-12']);
    for (const x of labelled) expect(x.value, x.labels.topic).to.equal(perTopic[x.labels.topic!]);
    const smallestLabelled = Math.min(...labelled.map((x) => x.value));
    for (const t of folded) expect(perTopic[t]!, t).to.be.at.most(smallestLabelled);
    expect(pick(stored, 'aggregator_events_stored_total', { overflow: 'true' })[0]!.labels).to.deep.equal({ overflow: 'true' });
    expect(value(stored, 'aggregator_events_stored_total', { overflow: 'true' })).to.equal(
      folded.reduce((sum, t) => sum + perTopic[t]!, 0),
    );
    expect(stored.reduce((sum, x) => sum + x.value, 0)).to.equal(s.unique_processed);
    // The largest topics are certainly among the labelled ones.
    expect(labelled.map((x) => x.labels.topic)).to.include.members(['cap-59', 'cap-50', 'm-a']);

    // The API's own per-topic count labels the first 50 topics it saw, whatever their size.
    const accepted = pick(await scrape(shared.cluster.baseUrl), 'aggregator_publish_events_total');
    expect(accepted).to.have.length(51);
    expect(accepted.reduce((sum, x) => sum + x.value, 0)).to.equal(received);
    expect(value(accepted, 'aggregator_publish_events_total', { topic: 'cap-44' })).to.equal(45);
    expect(value(accepted, 'aggregator_publish_events_total', { topic: 'cap-45' })).to.equal(undefined);
    expect(value(accepted, 'aggregator_publish_events_total', { overflow: 'true' })).to.equal(
      Array.from({ length: 15 }, (_, i) => 46 + i).reduce((a, b) => a + b, 0),
    );
  });

  it('keeps a topic named like the old overflow label apart from the overflow', async () => {
    // A producer's own "_other": the largest topic, so it is labelled by name in the stored
    // count; the 66th topic the API saw, so its accepted events go to the overflow there.
    const batch = Array.from({ length: 100 }, () => event({ topic: '_other' }));
    expect((await publish(shared.cluster.baseUrl, { events: batch })).status).to.equal(202);
    received += batch.length;
    const s = await drained(shared.cluster.baseUrl, received);
    const m = await scrape(shared.cluster.baseUrl);
    expect(value(m, 'aggregator_events_stored_total', { topic: '_other' })).to.equal(100);
    const overflow = value(m, 'aggregator_events_stored_total', { overflow: 'true' })!;
    expect(overflow).to.be.greaterThan(0);
    const stored = pick(m, 'aggregator_events_stored_total');
    expect(stored.reduce((sum, x) => sum + x.value, 0)).to.equal(s.unique_processed);
    expect(value(m, 'aggregator_publish_events_total', { topic: '_other' })).to.equal(undefined);
    const accepted = pick(m, 'aggregator_publish_events_total');
    expect(accepted.reduce((sum, x) => sum + x.value, 0)).to.equal(received);
  });

  it("renders each worker's commits, batch sizes and commit times from its heartbeat, labelled worker", async () => {
    const s = await drained(shared.cluster.baseUrl, received);
    const workerId = (s.workers as { list: { id: string }[] }).list[0]!.id;
    // The heartbeat is written every 3 s: wait until it has seen every commit.
    const m = await waitFor(
      async () => {
        const m = await scrape(shared.cluster.baseUrl);
        return value(m, 'aggregator_worker_committed_events_total', { worker: workerId }) === received && m;
      },
      { what: 'a heartbeat that has seen every commit', timeoutMs: 15_000 },
    );
    const w = { worker: workerId };
    const commits = value(m, 'aggregator_worker_commits_total', w)!;
    expect(commits).to.be.at.least(1);
    expect(value(m, 'aggregator_worker_committed_jobs_total', w)).to.equal((s.store as { committed_jobs: number }).committed_jobs);
    expect(value(m, 'aggregator_worker_batch_events_count', w)).to.equal(commits);
    expect(value(m, 'aggregator_worker_batch_events_sum', w)).to.equal(received);
    expect(value(m, 'aggregator_worker_commit_seconds_count', w)).to.equal(commits);
    expect(value(m, 'aggregator_worker_commit_seconds_sum', w)).to.be.greaterThan(0);
    for (const name of ['aggregator_worker_batch_events_bucket', 'aggregator_worker_commit_seconds_bucket']) {
      const buckets = pick(m, name, w);
      expect(buckets.length, name).to.be.greaterThan(2);
      for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).to.be.at.least(buckets[i - 1]!.value);
      expect(buckets.at(-1)!.labels.le).to.equal('+Inf');
      expect(buckets.at(-1)!.value).to.equal(commits);
    }
    // The largest batch was the 1,830-event request: it fits the 5000 bucket, not the 1000 one.
    expect(value(m, 'aggregator_worker_batch_events_bucket', { ...w, le: '5000' })).to.equal(commits);
    expect(value(m, 'aggregator_worker_batch_events_bucket', { ...w, le: '1000' })).to.be.below(commits);
    expect(value(m, 'aggregator_worker_healthy', w)).to.equal(1);
    expect(value(m, 'aggregator_worker_cpu_seconds_total', w)).to.be.greaterThan(0);
    expect(value(m, 'aggregator_worker_resident_memory_bytes', w)).to.be.greaterThan(1024 * 1024);
    expect(value(m, 'aggregator_worker_heartbeat_age_seconds', w)).to.be.within(0, 12);
  });

  it('leaves out what Redis must answer while Redis is down, and says so', async function () {
    await shared.redis.kill();
    try {
      const m = await scrape(shared.cluster.baseUrl);
      expect(value(m, 'aggregator_redis_up')).to.equal(0);
      expect(value(m, 'aggregator_store_up')).to.equal(1);
      // No received or pending sample rather than a wrong one.
      expect(pick(m, 'aggregator_events_received_total')).to.deep.equal([]);
      expect(pick(m, 'aggregator_events_pending')).to.deep.equal([]);
      expect(pick(m, 'aggregator_queue_jobs')).to.deep.equal([]);
      // What the store knows is still there.
      expect(pick(m, 'aggregator_events_duplicate_dropped_total').reduce((sum, x) => sum + x.value, 0)).to.equal(40);
    } finally {
      await shared.redis.start();
    }
    await waitFor(async () => value(await scrape(shared.cluster.baseUrl), 'aggregator_redis_up') === 1, {
      what: 'Redis back in the metrics',
      timeoutMs: 20_000,
    });
  });

  it('stays open when reads are protected: counts only, no event data, no topic names', async () => {
    const guarded = await startCluster({ redisUrl: shared.redis.url, workers: 1, env: { API_KEY: 'k-metrics', READ_API_KEY: 'k-reads' } });
    try {
      expect((await get(guarded.baseUrl, '/stats')).status).to.equal(401);
      // A new API answers /health before its Redis connection is up, and a scrape meanwhile
      // rightly leaves out the received count; /ready waits for Redis too.
      await waitFor(async () => (await get(guarded.baseUrl, '/ready')).status === 200, {
        what: 'the guarded API to be ready',
        timeoutMs: 10_000,
      });
      const m = await scrape(guarded.baseUrl);
      expect(value(m, 'aggregator_events_received_total')).to.equal(0);

      // Topic names are event data: with READ_API_KEY set, every count is in the overflow series.
      const secret = 'hidden-topic-name';
      const auth = { authorization: 'Bearer k-metrics' };
      const events = [event({ topic: secret }), event({ topic: `${secret}-2` })];
      expect((await request(guarded.baseUrl, 'POST', '/publish', events, { headers: auth })).status).to.equal(202);
      await waitFor(async () => (await get(guarded.baseUrl, '/stats', { authorization: 'Bearer k-reads' })).body.unique_processed === 2, {
        what: 'the events counted',
      });
      const text = await (await fetch(`${guarded.baseUrl}/metrics`)).text();
      expect(text).not.to.include(secret);
      const after = parseMetrics(text);
      expect(pick(after, 'aggregator_events_stored_total').filter((x) => x.labels.topic !== undefined)).to.deep.equal([]);
      expect(value(after, 'aggregator_events_stored_total', { overflow: 'true' })).to.equal(2);
      expect(value(after, 'aggregator_publish_events_total', { overflow: 'true' })).to.equal(2);
    } finally {
      await guarded.destroy();
    }
  });

  it('counts the events the ingest routes and POST /publish?wait accept (answered 200) beside the 202s', async () => {
    const own = await startCluster({ redisUrl: shared.redis.url, workers: 1 });
    try {
      const attrs = (name: string) => [{ key: 'service.name', value: { stringValue: name } }];
      const record = (i: number) => ({ timeUnixNano: String(1_700_000_000_000_000_000 + i), body: { stringValue: `line ${i}` } });
      const otlp = {
        resourceLogs: [
          { resource: { attributes: attrs('m-otlp') }, scopeLogs: [{ logRecords: [record(1), record(2), record(3)] }] },
          // A topic with a control character: rejected, and not counted (partial success).
          { resource: { attributes: attrs('bad\u0001topic') }, scopeLogs: [{ logRecords: [record(4)] }] },
        ],
      };
      const logs = await request(own.baseUrl, 'POST', '/v1/logs', otlp);
      expect(logs.status).to.equal(200);
      expect(logs.body.partialSuccess.rejectedLogRecords).to.equal(1);
      const message = (type: string, extra: Record<string, unknown>) => ({ type, messageId: `m-${type}-${Math.random()}`, userId: 'u', ...extra });
      const batch = { batch: [message('track', { event: 'm-signed-up' }), message('track', { event: 'm-signed-up' }), message('identify', {})] };
      expect((await request(own.baseUrl, 'POST', '/v1/batch', batch)).status).to.equal(200);
      const waited = await request(own.baseUrl, 'POST', '/publish?wait=10', [event({ topic: 'm-wait' })]);
      expect(waited.status, JSON.stringify(waited.body)).to.equal(200);
      expect((await publish(own.baseUrl, [event({ topic: 'm-202' })])).status).to.equal(202);

      const m = await scrape(own.baseUrl);
      expect(value(m, 'aggregator_publish_requests_total', { status: '200' })).to.equal(3);
      expect(value(m, 'aggregator_publish_requests_total', { status: '202' })).to.equal(1);
      const accepted = Object.fromEntries(pick(m, 'aggregator_publish_events_total').map((x) => [x.labels.topic, x.value]));
      expect(accepted).to.deep.equal({ 'm-otlp': 3, 'm-signed-up': 2, identify: 1, 'm-wait': 1, 'm-202': 1 });
    } finally {
      await own.destroy();
    }
  });
});
