// A worker on a store with history takes jobs without first reading every stored key: its
// verdicts are exact from its first job (while its filter of stored keys may still be
// building), and SIGTERM stops it cleanly whenever it comes.
import { expect } from 'chai';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { request } from '../../tools/harness/http.js';

const STORED = 100_000;
const at = (i: number) => ({ topic: 'hist', event_id: `h-${i}`, timestamp: '2026-01-01T00:00:00Z', source: 'prefill', payload: { i } });

describe('worker start on a store with history', () => {
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

  it('answers exactly from its first job, and stops on SIGTERM within seconds', async function () {
    this.timeout(120_000);
    cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
    // History written through the store's own commit path, one identity of it erased.
    const store = openSqliteStore({ dataDir: cluster.dataDir, synchronous: 'NORMAL' });
    try {
      for (let j = 0; j < STORED / 10_000; j++) {
        await store.commitJobs([{ id: `prefill-${j}`, events: Array.from({ length: 10_000 }, (_, i) => at(j * 10_000 + i)) }]);
      }
      expect(await store.eraseEvent('hist', 'h-7')).to.include({ status: 'erased' });
    } finally {
      await store.close();
    }

    const worker = await cluster.startWorker();
    const events = [
      at(3),
      { ...at(5), payload: { i: 'changed' } },
      at(7),
      { ...at(0), event_id: 'brand-new' },
      at(STORED - 1),
      { ...at(0), event_id: 'brand-new' },
    ];
    const r = await request(cluster.baseUrl, 'POST', '/publish?wait=30', events);
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    expect(r.body.results.map((x: { status: string }) => x.status)).to.deep.equal(['duplicate', 'conflict', 'duplicate', 'stored', 'duplicate', 'duplicate']);
    expect(r.body.results[0].seq).to.equal(4);
    expect(r.body.results[2].seq).to.equal(8);

    const asked = Date.now();
    const exit = await worker.term();
    expect(exit.code, worker.log().slice(-2000)).to.equal(0);
    expect((Date.now() - asked) / 1000).to.be.below(10);

    // A second worker, stopped as soon as it is up (its filter most likely still building):
    // it exits 0 all the same, having taken no job.
    const second = await cluster.startWorker();
    const asked2 = Date.now();
    const exit2 = await second.term();
    expect(exit2.code, second.log().slice(-2000)).to.equal(0);
    expect((Date.now() - asked2) / 1000).to.be.below(10);
    expect(second.log()).to.not.match(/"level":50/);
  });
});
