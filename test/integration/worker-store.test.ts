// A worker whose data directory cannot hold the store stays up, says so, takes no job, and
// starts working once the directory is usable.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { workersKey, type WorkerState } from '../../shared/heartbeat.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { get, publish, stats } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { waitFor } from '../../tools/harness/wait.js';

describe('worker with an unusable data directory', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  before(async () => {
    redis = await startTestRedis();
  });
  afterEach(async () => {
    await cluster?.destroy();
  });
  after(async () => {
    await redis?.stop();
  });

  it('waits, reporting store_error, and takes jobs once the store opens', async () => {
    cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
    // A file where the worker's data directory should be: no user, root included, can
    // create a database there.
    const blocked = path.join(cluster.dataDir, 'blocked');
    fs.writeFileSync(blocked, 'not a directory');
    const worker = await cluster.startWorker({ DATA_DIR: blocked });

    const reported = await waitFor(
      async () => {
        const r = await get(cluster.baseUrl, '/ready');
        return r.body.workers?.find((w: any) => w.status === 'store_error');
      },
      { what: 'the worker to report its store problem', timeoutMs: 20_000 },
    );
    expect(reported.error).to.match(/cannot open the store/);

    const r = await publish(cluster.baseUrl, Array.from({ length: 10 }, () => event({ topic: 'held' })));
    expect(r.status).to.equal(202);
    // Two more heartbeats after the publish: the worker kept retrying, and meanwhile it
    // neither took the job nor exited.
    const client = new Redis(redis.url);
    try {
      const heartbeatAt = async () =>
        Object.values(await client.hgetall(workersKey(cluster.queueName))).map((j) => (JSON.parse(j) as WorkerState).at)[0] ?? 0;
      const published = Date.now();
      await waitFor(async () => (await heartbeatAt()) > published, { what: 'a heartbeat after the publish' });
      const next = await heartbeatAt();
      await waitFor(async () => (await heartbeatAt()) > next, { what: 'another heartbeat' });
    } finally {
      client.disconnect();
    }
    const held = await stats(cluster.baseUrl);
    expect(held.pending).to.equal(10);
    expect((held.queue as any).active).to.equal(0);
    expect((held.workers as any).list[0].status).to.equal('store_error');
    expect(worker.alive()).to.equal(true);

    fs.rmSync(blocked);
    await waitFor(
      async () => {
        const s = await stats(cluster.baseUrl);
        const w = (s.workers as any)?.list?.[0];
        return s.pending === 0 && w?.status === 'ok' && w.committed_events === 10;
      },
      { what: 'the worker to open the store and commit the held job', timeoutMs: 30_000 },
    );
    expect(fs.existsSync(path.join(blocked, 'events.db'))).to.equal(true);
    expect(worker.alive()).to.equal(true);
    const exit = await worker.term();
    expect(exit.code).to.equal(0);
  });

  it('stops on SIGTERM while it waits for its store: exits 0 within seconds, its heartbeat removed', async () => {
    cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
    const blocked = path.join(cluster.dataDir, 'blocked');
    fs.writeFileSync(blocked, 'not a directory');
    const worker = await cluster.startWorker({ DATA_DIR: blocked });
    await waitFor(async () => (await get(cluster.baseUrl, '/ready')).body.workers?.some((w: any) => w.status === 'store_error'), {
      what: 'the worker to report its store problem',
      timeoutMs: 20_000,
    });
    const asked = Date.now();
    const exit = await worker.term();
    const seconds = (Date.now() - asked) / 1000;
    console.log(`      SIGTERM while waiting for the store: exit ${exit.code} after ${seconds.toFixed(1)} s`);
    expect(exit.code).to.equal(0);
    // The contract's deadline; its retries sleep at most 3 s between attempts.
    expect(seconds).to.be.below(10);
    const client = new Redis(redis.url);
    try {
      expect(await client.hlen(workersKey(cluster.queueName))).to.equal(0);
    } finally {
      client.disconnect();
    }
  });
});
