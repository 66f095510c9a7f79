// The ingest protocols, driven by the real clients: the OpenTelemetry JS SDK with its
// OTLP/HTTP JSON and protobuf exporters, pino through pino-opentelemetry-transport, and
// Segment's analytics-node, each publishing to a live API and worker. Every record or
// message is stored once under the mapped topic and identity; when the backlog is full the
// API answers 503 and the clients' own retries bring everything in, with exact counts.
import { expect } from 'chai';
import { gzipSync } from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordExporter } from '@opentelemetry/sdk-logs';
import { pino } from 'pino';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, drained, publish, request, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { requirePostgres } from '../support/postgres.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const KEY = 'ingest-test-key';
const BEARER = { Authorization: `Bearer ${KEY}` };

function otelProvider(exporter: LogRecordExporter, service: string, extra: Record<string, string> = {}): LoggerProvider {
  return new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': service, ...extra }),
    // The SDK's default batch (512 records), sent as soon as it is full or 50 ms have passed.
    processors: [new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 512, scheduledDelayMillis: 50, maxQueueSize: 10_000 })],
  });
}

/** How many answers of a status the API gave to publishing routes, from /metrics. */
async function answered(baseUrl: string, status: number): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = new RegExp(`^aggregator_publish_requests_total\\{status="${status}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

type Counts = { received: number; unique_processed: number; duplicate_dropped: number; conflicts: number };
const counts = async (baseUrl: string): Promise<Counts> => {
  const { received, unique_processed, duplicate_dropped, conflicts } = await stats(baseUrl);
  return { received, unique_processed, duplicate_dropped, conflicts: conflicts as number };
};
const minus = (a: Counts, b: Counts): Counts => ({
  received: a.received - b.received,
  unique_processed: a.unique_processed - b.unique_processed,
  duplicate_dropped: a.duplicate_dropped - b.duplicate_dropped,
  conflicts: a.conflicts - b.conflicts,
});

describe('ingest with real clients', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let cluster: Cluster;
  let expected = 0;

  before(async () => {
    redis = await startTestRedis();
    cluster = await startCluster({ redisUrl: redis.url, workers: 1, env: { API_KEY: KEY } });
  });
  after(async () => {
    await cluster?.destroy();
    await redis?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(cluster.logTail());
  });

  for (const [name, Exporter, compression] of [
    ['OTLP/HTTP JSON', JsonExporter, 'none'],
    ['OTLP/HTTP protobuf, gzip', ProtoExporter, 'gzip'],
  ] as const) {
    it(`stores each record of the OpenTelemetry SDK (${name}) once, mapped as the contract says`, async () => {
      const start = await counts(cluster.baseUrl);
      const service = `otel-${compression}-${Exporter === JsonExporter ? 'json' : 'proto'}`;
      const exporter = new Exporter({ url: `${cluster.baseUrl}/v1/logs`, headers: BEARER, compression: compression as never });
      const provider = otelProvider(exporter, service, { 'service.instance.id': 'instance-1' });
      const logger = provider.getLogger('checkout', '1.2.3');
      const n = 1200;
      for (let i = 0; i < n; i++) {
        logger.emit({
          body: i % 2 === 0 ? `line ${i}` : { line: i, nested: { ok: true } },
          severityNumber: SeverityNumber.INFO,
          severityText: 'INFO',
          // A third of them carry their own identity; the rest are digested.
          attributes: { i, big: '1152921504606846976', ratio: i / 3, tags: ['a', 'b'], ...(i % 3 === 0 && { 'log.record.uid': `uid-${i}` }) },
        });
      }
      // The same identities again: copies, to be dropped.
      for (let i = 0; i < n; i += 3) logger.emit({ body: `line ${i}`, attributes: { 'log.record.uid': `uid-${i}` } });
      await provider.shutdown();
      expected += n + n / 3;
      const s = await drained(cluster.baseUrl, expected);
      const events = await allEvents(cluster.baseUrl, service);
      expect(events).to.have.length(n);
      expect(new Set(events.map((e) => e.event_id)).size).to.equal(n);
      const byI = new Map(events.map((e) => [e.payload.attributes.i, e]));
      const first = byI.get(0);
      expect(first.event_id).to.equal('uid-0');
      expect(first.source).to.equal('instance-1');
      expect(first.payload).to.include({ body: 'line 0', severity_text: 'INFO', severity_number: 9 });
      expect(first.payload.resource['service.name']).to.equal(service);
      expect(first.payload.scope).to.deep.include({ name: 'checkout', version: '1.2.3' });
      expect(first.payload.attributes).to.deep.include({ tags: ['a', 'b'], big: '1152921504606846976' });
      expect(first.timestamp).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      expect(byI.get(1).payload.body).to.deep.equal({ line: 1, nested: { ok: true } });
      expect(byI.get(1).event_id).to.match(/^otlp-[0-9a-f]{64}$/);
      expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
      // The copies differ from the first records (body, time): dropped, and counted as conflicts.
      expect(minus(await counts(cluster.baseUrl), start)).to.deep.equal({ received: n + n / 3, unique_processed: n, duplicate_dropped: n / 3, conflicts: n / 3 });
    });
  }

  it('stores each line of a pino logger (pino-opentelemetry-transport) once', async () => {
    const transport = pino.transport({
      target: 'pino-opentelemetry-transport',
      options: {
        loggerName: 'pino-test',
        resourceAttributes: { 'service.name': 'pino-app' },
        logRecordProcessorOptions: {
          recordProcessorType: 'batch',
          exporterOptions: { protocol: 'http/protobuf', protobufExporterOptions: { url: `${cluster.baseUrl}/v1/logs`, headers: BEARER } },
        },
      },
    });
    const logger = pino(transport);
    const n = 300;
    for (let i = 0; i < n; i++) logger.info({ n: i }, `pino line ${i}`);
    await new Promise<void>((resolve) => {
      transport.once('close', () => resolve());
      transport.end();
    });
    expected += n;
    await drained(cluster.baseUrl, expected);
    const events = await allEvents(cluster.baseUrl, 'pino-app');
    expect(events).to.have.length(n);
    expect(new Set(events.map((e) => e.payload.attributes.n))).to.have.property('size', n);
    expect(events[0].payload.body).to.match(/^pino line \d+$/);
    expect(events[0].payload.severity_text).to.equal('info');
  });

  it('stores each message of analytics-node once, under its event name or type', async () => {
    const start = await counts(cluster.baseUrl);
    const analytics = new Analytics({ writeKey: KEY, host: cluster.baseUrl, flushAt: 50, flushInterval: 50 });
    const n = 200;
    const at = Date.parse('2025-03-01T00:00:00Z');
    const order = (i: number) => ({ userId: `u-${i % 7}`, event: 'Order Completed', properties: { i }, messageId: `seg-${i}`, timestamp: new Date(at + i) });
    for (let i = 0; i < n; i++) analytics.track(order(i));
    analytics.identify({ userId: 'u-1', traits: { plan: 'pro' }, messageId: 'seg-identify-1' });
    analytics.page({ userId: 'u-1', name: 'Home', messageId: 'seg-page-1' });
    // Copies of the first 20, as a producer retrying on its own would send them.
    for (let i = 0; i < 20; i++) analytics.track(order(i));
    await analytics.closeAndFlush({ timeout: 30_000 });
    expected += n + 2 + 20;
    const s = await drained(cluster.baseUrl, expected);
    const orders = await allEvents(cluster.baseUrl, 'Order Completed');
    expect(orders.map((e) => e.event_id).sort()).to.deep.equal(Array.from({ length: n }, (_, i) => `seg-${i}`).sort());
    expect(orders[0].source).to.equal('@segment/analytics-node');
    expect(orders[0].payload).to.include({ type: 'track', event: 'Order Completed' });
    expect(orders[0].timestamp).to.equal(orders[0].payload.timestamp);
    expect((await allEvents(cluster.baseUrl, 'identify')).map((e) => e.event_id)).to.deep.equal(['seg-identify-1']);
    expect((await allEvents(cluster.baseUrl, 'page')).map((e) => e.event_id)).to.deep.equal(['seg-page-1']);
    expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
    expect(minus(await counts(cluster.baseUrl), start)).to.deep.equal({ received: n + 22, unique_processed: n + 2, duplicate_dropped: 20, conflicts: 0 });
  });

  it('answers OTLP errors and partial success as OTLP/HTTP says', async () => {
    const url = `${cluster.baseUrl}/v1/logs`;
    const record = (over: Record<string, unknown> = {}) => ({ timeUnixNano: '1700000000000000001', body: { stringValue: 'x' }, ...over });
    const body = (service: string, records: unknown[]) => ({
      resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeLogs: [{ logRecords: records }] }],
    });
    const post = (payload: unknown, headers: Record<string, string> = BEARER) =>
      request(cluster.baseUrl, 'POST', '/v1/logs', payload, { headers });

    expect((await post(body('x', [record()]), {})).status).to.equal(401);
    const bad = await request(cluster.baseUrl, 'POST', '/v1/logs', 'x', { raw: true, contentType: 'text/plain', headers: BEARER });
    expect(bad.status).to.equal(415);
    const garbage = await fetch(url, { method: 'POST', headers: { ...BEARER, 'content-type': 'application/x-protobuf' }, body: Buffer.from([0xff, 0xff, 0xff]) });
    expect(garbage.status).to.equal(400);
    expect((await post('{"resourceLogs": 3}')).status).to.equal(400);
    const gz = await fetch(url, {
      method: 'POST',
      headers: { ...BEARER, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(body('gz-service', [record()]))),
    });
    expect(gz.status).to.equal(200);
    expect(await gz.json()).to.deep.equal({});
    // A topic past 255 characters fails the event schema: that record alone is rejected.
    const partial = await post({
      resourceLogs: [...body('ok-service', [record(), record({ timeUnixNano: '0', observedTimeUnixNano: '0' })]).resourceLogs, ...body('t'.repeat(300), [record()]).resourceLogs],
    });
    expect(partial.status).to.equal(200);
    expect(partial.body.partialSuccess.rejectedLogRecords).to.equal(1);
    expect(partial.body.partialSuccess.errorMessage).to.match(/record 2: topic .*255/);
    expected += 3;
    await drained(cluster.baseUrl, expected);
    const ok = await allEvents(cluster.baseUrl, 'ok-service');
    expect(ok).to.have.length(2);
    expect(ok.map((e) => e.timestamp)).to.include('2023-11-14T22:13:20.000000001Z');
    expect(ok.every((e) => e.source === 'ok-service')).to.equal(true);
  });

  it('answers Segment errors with 400 naming the message, and 401 for a wrong write key', async () => {
    const basic = (user: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` });
    const msg = (over: Record<string, unknown> = {}) => ({ type: 'track', event: 'E', userId: 'u', messageId: 'm-1', timestamp: '2025-01-01T00:00:00Z', ...over });
    expect((await request(cluster.baseUrl, 'POST', '/v1/batch', { batch: [msg()] }, { headers: basic('wrong') })).status).to.equal(401);
    expect((await request(cluster.baseUrl, 'POST', '/v1/batch', { batch: [msg()] })).status).to.equal(401);
    const missing = await request(cluster.baseUrl, 'POST', '/v1/batch', { batch: [msg(), msg({ messageId: undefined })] }, { headers: basic(KEY) });
    expect(missing.status).to.equal(400);
    expect(missing.body.details).to.deep.include({ index: 1, path: 'messageId', message: 'is required: it is the identity copies are dropped by' });
    const badTime = await request(cluster.baseUrl, 'POST', '/v1/batch', { batch: [msg({ timestamp: '2025-02-30T00:00:00Z' })] }, { headers: basic(KEY) });
    expect(badTime.status).to.equal(400);
    expect(badTime.body.details[0]).to.include({ index: 0, path: 'timestamp' });
    const one = await request(cluster.baseUrl, 'POST', '/v1/identify', { userId: 'u-9', messageId: 'single-1', traits: {} }, { headers: basic(KEY) });
    expect(one.status).to.equal(200);
    expect(one.body).to.deep.equal({ success: true });
    expected += 1;
    await drained(cluster.baseUrl, expected);
    const stored = (await allEvents(cluster.baseUrl, 'identify')).find((e) => e.event_id === 'single-1');
    expect(stored.source).to.equal('segment');
  });
});

describe('ingest clients under backpressure (PostgreSQL)', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let cluster: Cluster;

  before(async function () {
    await requirePostgres(this);
    redis = await startTestRedis();
    // No worker yet, and a backlog limit of one job: the API refuses with 503 at once.
    cluster = await startCluster({ redisUrl: redis.url, workers: 0, store: 'postgres', env: { MAX_BACKLOG_JOBS: '1', COALESCE_MS: '0' } });
  });
  after(async () => {
    await cluster?.destroy();
    await redis?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(cluster.logTail());
  });

  it('brings every record and message in through the clients own retries after 503s', async () => {
    // Two jobs in the queue: over the limit of one.
    for (let i = 0; i < 2; i++) expect((await publish(cluster.baseUrl, { topic: 'filler', event_id: `f-${i}`, timestamp: '2025-01-01T00:00:00Z', source: 't', payload: {} })).status).to.equal(202);
    // The API samples the backlog a few times a second: probes may be accepted until it sees it full.
    let probes = 0;
    await waitFor(
      async () => {
        const r = await publish(cluster.baseUrl, { topic: 'probe', event_id: `p-${probes}`, timestamp: '2025-01-01T00:00:00Z', source: 't', payload: {} });
        if (r.status === 202) probes++;
        return r.status === 503;
      },
      { what: 'the backlog to be seen full' },
    );

    const provider = otelProvider(new ProtoExporter({ url: `${cluster.baseUrl}/v1/logs`, timeoutMillis: 60_000 }), 'retrying-otel');
    const logger = provider.getLogger('retry');
    for (let i = 0; i < 100; i++) logger.emit({ body: `r ${i}`, attributes: { i } });
    // A copy of record 0 by identity, in the same export.
    const at = Date.parse('2025-06-01T00:00:00Z');
    logger.emit({ body: 'again', timestamp: at, attributes: { 'log.record.uid': 'dup-uid' } });
    logger.emit({ body: 'again', timestamp: at, attributes: { 'log.record.uid': 'dup-uid' } });
    const flushed = provider.forceFlush();

    const analytics = new Analytics({ writeKey: 'any', host: cluster.baseUrl, flushAt: 30, flushInterval: 20, maxRetries: 20 });
    const statuses: number[] = [];
    analytics.on('http_response', (r) => statuses.push(r.status));
    // Ten messages sent twice, exactly as a producer's own resend would (same id, same time).
    for (let i = 0; i < 60; i++) {
      analytics.track({ userId: 'u', event: 'Retried', messageId: `r-${i % 50}`, properties: { i: i % 50 }, timestamp: new Date(at + (i % 50)) });
    }
    const closed = analytics.closeAndFlush({ timeout: 60_000 });

    const before = await answered(cluster.baseUrl, 503);
    await waitFor(async () => (await answered(cluster.baseUrl, 503)) >= before + 2 && statuses.includes(503), { what: 'both clients refused with 503' });
    await cluster.startWorker();
    await Promise.all([flushed, closed]);
    await provider.shutdown();
    expect(statuses.at(-1)).to.equal(200);

    // 2 fillers and the probes taken, 102 records (one copy), 60 messages (ten copies).
    const s = await drained(cluster.baseUrl, 2 + probes + 102 + 60, 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await stats(cluster.baseUrl))}`);
    });
    expect(s).to.include({ received: 2 + probes + 102 + 60, unique_processed: 2 + probes + 101 + 50, duplicate_dropped: 11, conflicts: 0 });
    expect(await allEvents(cluster.baseUrl, 'retrying-otel')).to.have.length(101);
    expect(await allEvents(cluster.baseUrl, 'Retried')).to.have.length(50);
    expect(await stats(cluster.baseUrl)).to.include({ pending: 0 });
  });
});
