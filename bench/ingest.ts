// `npm run bench:ingest`: the same events published three ways against one built service
// (private Redis, the API, workers), one after the other in the same run: POST /publish
// batches, OTLP/HTTP protobuf (the SDK's own serializer, 512 records a request, the
// BatchLogRecordProcessor's default) and Segment's /v1/batch. Every body is built before the
// clock starts; each scenario is timed from its first request to its last answer (accepted)
// and to its last event stored (processed). Prints events/s and the ratios to /publish.
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

const HELP = `npm run bench:ingest -- [--events N] [--size BYTES] [--batch N] [--concurrency N] [--workers N]

  --events N        events per scenario (default 20000)
  --size BYTES      text carried by each event (default 200)
  --batch N         events per request, every scenario (default 512, the OTel SDK's batch)
  --concurrency N   requests in flight (default 4)
  --workers N       worker processes (default 1)`;

type Body = { path: string; contentType: string; headers?: Record<string, string>; bytes: Uint8Array };
type Result = { name: string; events: number; requests: number; bytes: number; acceptedPerSec: number; processedPerSec: number };

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    size: { type: 'string', default: '200' },
    batch: { type: 'string', default: '512' },
    concurrency: { type: 'string', default: '4' },
    workers: { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const EVENTS = Number(args.events);
const SIZE = Number(args.size);
const BATCH = Number(args.batch);
const CONCURRENCY = Number(args.concurrency);
const WORKERS = Number(args.workers);

const text = (i: number) => `event ${i} `.padEnd(SIZE, 'x');
const at = (i: number) => Date.UTC(2025, 0, 1) + i;
const chunks = <T>(xs: T[]): T[][] => Array.from({ length: Math.ceil(xs.length / BATCH) }, (_, k) => xs.slice(k * BATCH, (k + 1) * BATCH));

function publishBodies(indexes: number[], tag: string): Body[] {
  return chunks(indexes).map((ids) => ({
    path: '/publish',
    contentType: 'application/json',
    bytes: Buffer.from(
      JSON.stringify({
        events: ids.map((i) => ({ topic: 'bench-publish', event_id: `${tag}p-${i}`, timestamp: new Date(at(i)).toISOString(), source: 'bench', payload: { message: text(i), i } })),
      }),
    ),
  }));
}

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
  return chunks([...records]).map((batch) => ({ path: '/v1/logs', contentType: 'application/x-protobuf', bytes: ProtobufLogsSerializer.serializeRequest(batch)! }));
}

function segmentBodies(indexes: number[], tag: string): Body[] {
  return chunks(indexes).map((ids) => ({
    path: '/v1/batch',
    contentType: 'application/json',
    bytes: Buffer.from(
      JSON.stringify({
        batch: ids.map((i) => ({
          type: 'track',
          event: 'bench-segment',
          messageId: `${tag}s-${i}`,
          userId: `u-${i % 100}`,
          timestamp: new Date(at(i)).toISOString(),
          properties: { message: text(i), i },
          context: { library: { name: 'bench', version: '1' } },
        })),
        sentAt: new Date().toISOString(),
      }),
    ),
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

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-bench-ingest-'));
  const redis = await startRedisServer({ dir: path.join(dir, 'redis') });
  const cluster = await startCluster({ redisUrl: redis.url, workers: WORKERS, dataDir: path.join(dir, 'data'), logDir: path.join(dir, 'logs'), env: { LOG_LEVEL: 'warn' } });
  try {
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    // A warm-up of every path first (a tenth of the events, other ids), so that no scenario
    // pays for the JIT and the first connections alone; it is not timed.
    const warm = Math.max(BATCH, Math.round(EVENTS / 10));
    const warmUp = [...publishBodies(range(warm), 'w'), ...(await otlpBodies(range(warm), 'w')), ...segmentBodies(range(warm), 'w')];
    await send(cluster.baseUrl, warmUp);
    let stored = 3 * warm;
    await waitFor(async () => (await stats(cluster.baseUrl)).unique_processed >= stored, { timeoutMs: 600_000, what: 'the warm-up stored' });
    const scenarios: [string, Body[]][] = [
      ['POST /publish (JSON batches)', publishBodies(range(EVENTS), '')],
      ['OTLP/HTTP protobuf /v1/logs', await otlpBodies(range(EVENTS), '')],
      ['Segment /v1/batch', segmentBodies(range(EVENTS), '')],
    ];
    const results: Result[] = [];
    for (const [name, bodies] of scenarios) {
      const started = performance.now();
      await send(cluster.baseUrl, bodies);
      const accepted = performance.now();
      stored += EVENTS;
      await waitFor(async () => (await stats(cluster.baseUrl)).unique_processed >= stored, { timeoutMs: 600_000, intervalMs: 20, what: `${name}: every event stored` });
      const processed = performance.now();
      results.push({
        name,
        events: EVENTS,
        requests: bodies.length,
        bytes: bodies.reduce((n, b) => n + b.bytes.length, 0),
        acceptedPerSec: EVENTS / ((accepted - started) / 1000),
        processedPerSec: EVENTS / ((processed - started) / 1000),
      });
    }
    const s = await stats(cluster.baseUrl);
    if (s.unique_processed !== 3 * (EVENTS + warm) || s.duplicate_dropped !== 0) throw new Error(`unexpected counts: ${JSON.stringify(s)}`);
    const base = results[0]!;
    const commit = execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim();
    console.log(`\n${new Date().toISOString()} commit ${commit}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg()[0]!.toFixed(2)}`);
    console.log(`${EVENTS} events per scenario (after a warm-up of ${warm} each), ${SIZE} bytes of text each, ${BATCH} per request, ${CONCURRENCY} in flight, ${WORKERS} worker(s), SQLite\n`);
    console.log('| scenario | requests | body MB | accepted events/s | vs /publish | stored events/s | vs /publish |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of results) {
      console.log(
        `| ${r.name} | ${r.requests} | ${(r.bytes / 2 ** 20).toFixed(1)} | ${Math.round(r.acceptedPerSec)} | ${(r.acceptedPerSec / base.acceptedPerSec).toFixed(2)} | ${Math.round(r.processedPerSec)} | ${(r.processedPerSec / base.processedPerSec).toFixed(2)} |`,
      );
    }
  } finally {
    await cluster.destroy();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
