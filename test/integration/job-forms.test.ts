// Jobs in both forms a worker reads: as the API writes them now (each event as its fields,
// the payload as JSON text) and as jobs queued before that change hold them (whole events),
// still in Redis when the workers are upgraded. Both are committed with their payloads as
// published; a job of either form that can never succeed is parked as poison. Real API,
// worker, Redis and SQLite.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JOB_NAME, newJobId } from '../../shared/queue.js';
import type { Event } from '../../shared/schema.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { get, request, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const runId = randomUUID().slice(0, 8);
let n = 0;
function ev(payload: Record<string, unknown>): Event {
  return { topic: 'forms', event_id: `${runId}-${++n}`, timestamp: '2025-10-24T00:00:00Z', source: 'upgrade', payload };
}

describe('job forms', function () {
  let redis: TestRedis;
  let cluster: Cluster;
  let connection: Redis;
  let queue: Queue;
  before(async () => {
    redis = await startTestRedis();
    cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(cluster.queueName, { connection });
  });
  after(async () => {
    await queue?.close();
    connection?.disconnect();
    await cluster?.destroy();
    await redis?.stop();
  });

  it('commits jobs of the earlier form left in Redis, and the current form, with payloads as published', async () => {
    const payloads = [{ b: 1, a: [1, 2.5, null] }, { __proto__: { x: 1 }, 'é😀': 'text "quoted"\n' }, { deep: { deeper: { n: -0.125e-3 } } }];
    const legacy = payloads.map((p) => ev(JSON.parse(JSON.stringify(p)) as Record<string, unknown>));
    const legacyIds = [newJobId(2), newJobId(1)];
    // Queued before the upgrade: whole events, no version.
    await queue.add(JOB_NAME, { events: legacy.slice(0, 2) }, { jobId: legacyIds[0] });
    await queue.add(JOB_NAME, { events: legacy.slice(2) }, { jobId: legacyIds[1] });
    const current = ev({ z: 1, a: { list: ['x'] } });
    expect((await request(cluster.baseUrl, 'POST', '/publish', current)).status).to.equal(202);

    await cluster.startWorker();
    await waitFor(async () => {
      const s = await stats(cluster.baseUrl);
      return s.unique_processed === 4 && s.pending === 0;
    });
    for (const e of [...legacy, current]) {
      const r = await get(cluster.baseUrl, `/events/forms/${e.event_id}`);
      expect(r.status, e.event_id).to.equal(200);
      expect(JSON.stringify(r.body.event.payload)).to.equal(JSON.stringify(e.payload));
    }
    for (const id of legacyIds) expect(await queue.getJobState(id)).to.be.oneOf(['completed', 'unknown']);
  });

  it('parks a job of either form that can never succeed as poison, tried once, and replays what can be', async () => {
    const good = ev({ a: 1 });
    const fields = [good.topic, good.event_id, good.timestamp, good.source];
    const poison: [string, unknown][] = [
      [newJobId(1), { v: 2, events: [[...fields, '{"a":1']] }],
      [newJobId(1), { v: 2, events: [[...fields, '{"a":1}', 'extra']] }],
      [newJobId(2), { v: 2, events: [[...fields, '{"a":1}']] }],
      [newJobId(1), { events: [{ ...good, timestamp: 'yesterday' }] }],
    ];
    for (const [id, data] of poison) await queue.add(JOB_NAME, data, { jobId: id, attempts: 5 });
    for (const [id] of poison) {
      await waitFor(async () => (await queue.getJobState(id)) === 'failed');
      const job = await queue.getJob(id);
      expect(job!.failedReason, id).to.match(/^poison job/);
      expect(job!.attemptsMade, id).to.equal(1);
    }
    const r = await get(cluster.baseUrl, `/events/forms/${good.event_id}`);
    expect(r.status).to.equal(404);

    // The replay tool reads parked jobs of the current form as well: the one whose id
    // miscounted its valid event goes back in under a new id, and that event is stored.
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'dist/tools/replay-failed.js')], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, QUEUE_NAME: cluster.queueName },
      timeout: 30_000,
    });
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, number>;
    expect(summary).to.include({ failed_jobs: 4, replayed_jobs: 1, replayed_events: 1, kept_jobs: 3 });
    await waitFor(async () => (await get(cluster.baseUrl, `/events/forms/${good.event_id}`)).status === 200);
    const stored = await get(cluster.baseUrl, `/events/forms/${good.event_id}`);
    expect(stored.body.event.payload).to.deep.equal({ a: 1 });
  });
});
