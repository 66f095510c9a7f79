// Network faults between hosts, made by a TCP proxy the test owns (tools/harness/tcp-proxy.ts)
// on the links of one process: a worker's link to PostgreSQL or to Redis slowed by 200 ms and
// cut for a few seconds mid-load, the API's link to Redis cut; and 200 ms on every link at
// once. Each case: the processes survive, every identity is stored once, every `?wait`
// verdict is right, the books balance.
import { expect } from 'chai';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { createTestDatabase, type TestDatabase } from '../../tools/harness/postgres.js';
import { checkBooks, produce } from '../support/books.js';
import { requirePostgres } from '../support/postgres.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { mixedChunks, workload, type Ev } from '../support/workload.js';

const LATENCY_MS = 200;

const CUT_MS = 3000;

type Produced = Awaited<ReturnType<typeof produce>>;

/**
 * Publishes the first half of `chunks`, then cuts `link` (its open connections reset, new ones
 * refused) and publishes the second half while the link stays cut for CUT_MS and after it
 * heals. The cut lands mid-load by construction, however fast the machine: the second half's
 * requests start as it begins (a cut timed from the start of the load missed it once the whole
 * load took under the wait).
 */
async function publishAcrossCut(link: TcpProxy, baseUrl: string, chunks: Ev[][]): Promise<Produced> {
  const half = Math.ceil(chunks.length / 2);
  const before = await produce(baseUrl, chunks.slice(0, half));
  const open = link.sockets.size;
  link.cut();
  expect(open, 'connections cut').to.be.greaterThan(0);
  const during = produce(baseUrl, chunks.slice(half));
  await new Promise((r) => setTimeout(r, CUT_MS));
  link.heal();
  const after = await during;
  return { accepted: before.accepted + after.accepted, answered: [...before.answered, ...after.answered] };
}

describe('network faults (a TCP proxy on one link)', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let db: TestDatabase;
  let cluster: Cluster | undefined;
  const proxies: TcpProxy[] = [];

  async function proxy(url: string, delayMs = 0): Promise<TcpProxy> {
    const p = TcpProxy.forUrl(url);
    p.delayMs = delayMs;
    await p.start();
    proxies.push(p);
    return p;
  }

  before(async function () {
    await requirePostgres(this);
    redis = await startTestRedis();
  });
  after(async () => {
    await redis?.stop();
  });
  beforeEach(async () => {
    db = await createTestDatabase({ prefix: 'agg_net' });
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.logTail(30));
    await cluster?.destroy();
    cluster = undefined;
    for (const p of proxies.splice(0)) await p.close();
    await db?.drop();
  });

  it("survives its worker's link to PostgreSQL slowed by 200 ms and cut for 3 s mid-load", async () => {
    cluster = await startCluster({ redisUrl: redis.url, workers: 0, store: 'postgres', databaseUrl: db.url });
    const link = await proxy(db.url, 200);
    const worker = await cluster.startWorker({ DATABASE_URL: link.url(db.url) });
    const { events } = workload(1500, 0.2, { source: 'pg-cut' });
    const result = await publishAcrossCut(link, cluster.baseUrl, mixedChunks(events));
    await checkBooks(cluster.baseUrl, events, result.answered, result.accepted);
    expect(worker.alive(), 'the worker is alive').to.equal(true);
  });

  it("survives its worker's link to Redis slowed by 200 ms and cut for 3 s mid-load", async () => {
    cluster = await startCluster({ redisUrl: redis.url, workers: 0, store: 'postgres', databaseUrl: db.url });
    const link = await proxy(redis.url, 200);
    const worker = await cluster.startWorker({ REDIS_URL: link.url(redis.url) });
    const { events } = workload(1500, 0.2, { source: 'redis-cut' });
    const result = await publishAcrossCut(link, cluster.baseUrl, mixedChunks(events));
    await checkBooks(cluster.baseUrl, events, result.answered, result.accepted);
    expect(worker.alive(), 'the worker is alive').to.equal(true);
  });

  it('survives the API cut from Redis for 3 s mid-load: producers retry, nothing is lost or doubled', async () => {
    const link = await proxy(redis.url);
    cluster = await startCluster({ redisUrl: link.url(redis.url), workers: 0, store: 'postgres', databaseUrl: db.url });
    await cluster.startWorker({ REDIS_URL: redis.url });
    const { events } = workload(1500, 0.2, { source: 'api-cut' });
    const result = await publishAcrossCut(link, cluster.baseUrl, mixedChunks(events));
    await checkBooks(cluster.baseUrl, events, result.answered, result.accepted, { lostAnswers: true });
    expect(cluster.api.alive(), 'the API is alive').to.equal(true);
  });

  it(`keeps exact books with ${LATENCY_MS} ms on every link: producers to the API, the API and the worker to Redis and to PostgreSQL`, async () => {
    const apiRedis = await proxy(redis.url, LATENCY_MS);
    const apiDb = await proxy(db.url, LATENCY_MS);
    cluster = await startCluster({ redisUrl: apiRedis.url(redis.url), workers: 0, store: 'postgres', databaseUrl: apiDb.url(db.url) });
    const workerRedis = await proxy(redis.url, LATENCY_MS);
    const workerDb = await proxy(db.url, LATENCY_MS);
    const worker = await cluster.startWorker({ REDIS_URL: workerRedis.url(redis.url), DATABASE_URL: workerDb.url(db.url) });
    const front = await proxy(cluster.baseUrl, LATENCY_MS);
    const { events } = workload(300, 0.2, { source: 'latency' });
    // Small requests, so that many cross every link (every third with ?wait).
    const chunks: Ev[][] = [];
    for (let i = 0; i < events.length; ) {
      const size = [1, 1, 7, 20][chunks.length % 4]!;
      chunks.push(events.slice(i, (i += size)));
    }
    const result = await produce(front.url(cluster.baseUrl), chunks, 8);
    expect(result.answered.length, '?wait requests answered 200 processed').to.be.greaterThan(0);
    await checkBooks(cluster.baseUrl, events, result.answered, result.accepted);
    const used = { front: front.accepted, apiRedis: apiRedis.accepted, apiDb: apiDb.accepted, workerRedis: workerRedis.accepted, workerDb: workerDb.accepted };
    for (const [link, n] of Object.entries(used)) expect(n, `connections through ${link}`).to.be.greaterThan(0);
    expect(worker.alive() && cluster.api.alive(), 'the API and the worker are alive').to.equal(true);
  });
});
