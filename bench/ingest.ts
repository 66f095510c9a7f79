// `npm run bench:ingest`: the same number of events, each with the same text, published
// against one built service (private Redis, the API, workers) in the same run: POST /publish
// batches, OTLP/HTTP protobuf (the SDK's own serializer, 512 records a request, the
// BatchLogRecordProcessor's default) and Segment's /v1/batch; and, for each protocol, the
// very events it makes of its records (payload and all) published through POST /publish,
// which tells the protocol's own cost from that of its larger events. Every body is built
// before the clock starts; each scenario is timed from its first request to its last answer
// (accepted) and to its last event stored (processed). The scenarios take turns, in rounds,
// so that a machine whose load changes during the run weighs on each alike. Prints events/s
// and the ratios, and the API process's CPU time per event (process_cpu_seconds_total from
// /metrics, around each sending): on a loaded machine, the steadier comparison.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { startRedisServer } from '../scripts/redis-server.js';
import { startCluster } from '../tools/harness/cluster.js';
import { stats } from '../tools/harness/http.js';
import { ROOT } from '../tools/harness/root.js';
import { waitFor } from '../tools/harness/wait.js';

const HELP = `npm run bench:ingest -- [--events N] [--rounds N] [--size BYTES] [--batch N] [--concurrency N] [--workers N] [--cpu-prof DIR]

  --events N        events per scenario (default 20000)
  --rounds N        turns each scenario takes, its events split among them (default 4)
  --size BYTES      text carried by each event (default 200)
  --batch N         events per request, every scenario (default 512, the OTel SDK's batch)
  --concurrency N   requests in flight (default 4)
  --workers N       worker processes (default 1)
  --cpu-prof DIR    write the API's CPU profile (node --cpu-prof) to DIR`;

type Body = { path: string; contentType: string; events: number; bytes: Uint8Array };
type Totals = { requests: number; bytes: number; acceptingMs: number; processingMs: number; apiCpuMs: number };

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '4' },
    size: { type: 'string', default: '200' },
    batch: { type: 'string', default: '512' },
    concurrency: { type: 'string', default: '4' },
    workers: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const EVENTS = Number(args.events);
const ROUNDS = Number(args.rounds);
const SIZE = Number(args.size);
const BATCH = Number(args.batch);
const CONCURRENCY = Number(args.concurrency);
const WORKERS = Number(args.workers);

const text = (i: number) => `event ${i} `.padEnd(SIZE, 'x');
const at = (i: number) => Date.UTC(2025, 0, 1) + i;
const chunks = <T>(xs: T[]): T[][] => Array.from({ length: Math.ceil(xs.length / BATCH) }, (_, k) => xs.slice(k * BATCH, (k + 1) * BATCH));

type BenchEvent = { topic: string; event_id: string; timestamp: string; source: string; payload: Record<string, unknown> };

function publishBodies(indexes: number[], eventOf: (i: number) => BenchEvent): Body[] {
  return chunks(indexes).map((ids) => ({
    path: '/publish',
    contentType: 'application/json',
    events: ids.length,
    bytes: Buffer.from(JSON.stringify({ events: ids.map(eventOf) })),
  }));
}

const smallEvent = (tag: string) => (i: number) => ({ topic: 'bench-publish', event_id: `${tag}p-${i}`, timestamp: new Date(at(i)).toISOString(), source: 'bench', payload: { message: text(i), i } });

/** The event /v1/logs makes of the record otlpBodies sends for i (its id as long as the digest), under a topic of its own. */
const otlpEvent = (tag: string) => (i: number) => ({
  topic: 'bench-otlp-as-publish',
  event_id: `otlp-${`${tag}${i}`.padStart(64, '0')}`,
  timestamp: `${new Date(at(i)).toISOString().slice(0, 23)}000000Z`,
  source: 'bench',
  payload: {
    body: text(i),
    severity_text: 'INFO',
    severity_number: 9,
    attributes: { i, tag },
    resource: { 'service.name': 'bench-otlp', 'service.instance.id': 'bench' },
    scope: { name: 'bench', version: '', attributes: {} },
    trace_id: null,
    span_id: null,
  },
});

const segmentMessage = (tag: string, i: number) => ({
  type: 'track',
  event: 'bench-segment',
  messageId: `${tag}s-${i}`,
  userId: `u-${i % 100}`,
  timestamp: new Date(at(i)).toISOString(),
  properties: { message: text(i), i },
  context: { library: { name: 'bench', version: '1' } },
});

/** The event /v1/batch makes of the message segmentBodies sends for i, under a topic of its own. */
const segmentEvent = (tag: string) => (i: number) => {
  const message = segmentMessage(`${tag}as-`, i);
  return { topic: 'bench-segment-as-publish', event_id: message.messageId, timestamp: message.timestamp, source: 'bench', payload: message };
};

async function otlpBodies(indexes: number[], tag: string): Promise<Body[]> {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'bench-otlp', 'service.instance.id': 'bench' }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = provider.getLogger('bench');
  for (const i of indexes) logger.emit({ body: text(i), timestamp: at(i), severityText: 'INFO', severityNumber: 9, attributes: { i, tag } });
  await provider.forceFlush();
  const records = exporter.getFinishedLogRecords();
  await provider.shutdown();
  return chunks([...records]).map((batch) => ({ path: '/v1/logs', contentType: 'application/x-protobuf', events: batch.length, bytes: ProtobufLogsSerializer.serializeRequest(batch)! }));
}

function segmentBodies(indexes: number[], tag: string): Body[] {
  return chunks(indexes).map((ids) => ({
    path: '/v1/batch',
    contentType: 'application/json',
    events: ids.length,
    bytes: Buffer.from(JSON.stringify({ batch: ids.map((i) => segmentMessage(tag, i)), sentAt: new Date().toISOString() })),
  }));
}

/** Sends every body, CONCURRENCY at a time, retrying 503s after their Retry-After. */
async function send(baseUrl: string, bodies: Body[]): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      for (;;) {
        const res = await fetch(baseUrl + body.path, { method: 'POST', headers: { 'content-type': body.contentType }, body: body.bytes });
        await res.arrayBuffer();
        if (res.status === 503 || res.status === 429) {
          await new Promise((r) => setTimeout(r, Number(res.headers.get('retry-after') ?? 1) * 1000));
          continue;
        }
        if (res.status >= 300) throw new Error(`${body.path} answered ${res.status}`);
        break;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
}

/** The API process's CPU time so far, in ms (prom-client's process_cpu_seconds_total). */
async function apiCpuMs(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = /^process_cpu_seconds_total (\S+)$/m.exec(text);
  if (m === null) throw new Error('no process_cpu_seconds_total on /metrics');
  return Number(m[1]) * 1000;
}

/** `same`: the scenario publishing through POST /publish the very events this one makes. */
type Scenario = { name: string; bodies: (indexes: number[], tag: string) => Promise<Body[]>; same?: number };

const SCENARIOS: Scenario[] = [
  { name: 'POST /publish (JSON batches)', bodies: (indexes, tag) => Promise.resolve(publishBodies(indexes, smallEvent(tag))) },
  { name: 'OTLP/HTTP protobuf /v1/logs', bodies: otlpBodies, same: 2 },
  { name: 'POST /publish, the events /v1/logs makes', bodies: (indexes, tag) => Promise.resolve(publishBodies(indexes, otlpEvent(tag))) },
  { name: 'Segment /v1/batch', bodies: (indexes, tag) => Promise.resolve(segmentBodies(indexes, tag)), same: 4 },
  { name: 'POST /publish, the events /v1/batch makes', bodies: (indexes, tag) => Promise.resolve(publishBodies(indexes, segmentEvent(tag))) },
];

function report(totals: Totals[], warm: number): void {
  const commit = execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim();
  console.log(`\n${new Date().toISOString()} commit ${commit}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg()[0]!.toFixed(2)}`);
  console.log(
    `${EVENTS} events per scenario in ${ROUNDS} rounds (after a warm-up of ${warm} each), ${SIZE} bytes of text each, ${BATCH} per request, ${CONCURRENCY} in flight, ${WORKERS} worker(s), SQLite\n`,
  );
  console.log(
    '| scenario | requests | body MB | accepted events/s | vs /publish | vs the same events on /publish | stored events/s | vs /publish | API CPU ms per 1000 events | vs /publish | vs the same events on /publish |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const base = totals[0]!;
  const rate = (ms: number) => EVENTS / (ms / 1000);
  totals.forEach((t, i) => {
    const same = SCENARIOS[i]!.same === undefined ? undefined : totals[SCENARIOS[i]!.same]!;
    console.log(
      `| ${SCENARIOS[i]!.name} | ${t.requests} | ${(t.bytes / 2 ** 20).toFixed(1)} | ${Math.round(rate(t.acceptingMs))} | ${(base.acceptingMs / t.acceptingMs).toFixed(2)} | ` +
        `${same === undefined ? '' : (same.acceptingMs / t.acceptingMs).toFixed(2)} | ${Math.round(rate(t.processingMs))} | ${(base.processingMs / t.processingMs).toFixed(2)} | ` +
        `${((t.apiCpuMs / EVENTS) * 1000).toFixed(1)} | ${(t.apiCpuMs / base.apiCpuMs).toFixed(2)} | ${same === undefined ? '' : (t.apiCpuMs / same.apiCpuMs).toFixed(2)} |`,
    );
  });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-bench-ingest-'));
  const redis = await startRedisServer({ dir: path.join(dir, 'redis') });
  // node refuses --cpu-prof in NODE_OPTIONS: the API is started through a shell that adds it.
  const profileDir = args['cpu-prof'] === undefined ? undefined : path.resolve(args['cpu-prof']);
  const place = (kind: string) => (profileDir === undefined || kind !== 'api' ? {} : { command: ['sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir='${profileDir}' "$@"`] });
  const cluster = await startCluster({ redisUrl: redis.url, workers: WORKERS, dataDir: path.join(dir, 'data'), logDir: path.join(dir, 'logs'), env: { LOG_LEVEL: 'warn' }, place });
  try {
    const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
    // A warm-up of every path first (a tenth of the events, other ids), so that no scenario
    // pays for the JIT and the first connections alone; it is not timed.
    const warm = Math.max(BATCH, Math.round(EVENTS / 10));
    const warmUp = (await Promise.all(SCENARIOS.map((sc) => sc.bodies(range(0, warm), 'w')))).flat();
    await send(cluster.baseUrl, warmUp);
    let stored = SCENARIOS.length * warm;
    await waitFor(async () => (await stats(cluster.baseUrl)).unique_processed >= stored, { timeoutMs: 600_000, what: 'the warm-up stored' });
    const perRound = Math.ceil(EVENTS / ROUNDS);
    const rounds = await Promise.all(
      range(0, ROUNDS).map((k) => Promise.all(SCENARIOS.map((sc) => sc.bodies(range(k * perRound, Math.min(perRound, EVENTS - k * perRound)), '')))),
    );
    const totals: Totals[] = SCENARIOS.map(() => ({ requests: 0, bytes: 0, acceptingMs: 0, processingMs: 0, apiCpuMs: 0 }));
    for (const round of rounds) {
      for (const [i, bodies] of round.entries()) {
        const t = totals[i]!;
        const cpuBefore = await apiCpuMs(cluster.baseUrl);
        const started = performance.now();
        await send(cluster.baseUrl, bodies);
        const accepted = performance.now();
        t.apiCpuMs += (await apiCpuMs(cluster.baseUrl)) - cpuBefore;
        stored += bodies.reduce((n, b) => n + b.events, 0);
        await waitFor(async () => (await stats(cluster.baseUrl)).unique_processed >= stored, { timeoutMs: 600_000, intervalMs: 20, what: `${SCENARIOS[i]!.name}: every event stored` });
        t.processingMs += performance.now() - started;
        t.acceptingMs += accepted - started;
        t.requests += bodies.length;
        t.bytes += bodies.reduce((n, b) => n + b.bytes.length, 0);
      }
    }
    const s = await stats(cluster.baseUrl);
    if (s.unique_processed !== SCENARIOS.length * (EVENTS + warm) || s.duplicate_dropped !== 0) throw new Error(`unexpected counts: ${JSON.stringify(s)}`);
    report(totals, warm);
  } finally {
    // A profile is written when the process exits by itself, not when destroy() kills it.
    if (profileDir !== undefined) await cluster.stop();
    await cluster.destroy();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
