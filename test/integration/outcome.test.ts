// A 503 tells the producer what happened to its events: `unavailable` when nothing was
// queued, `outcome_unknown` when the add may have reached Redis (a slow Redis runs it after
// the API gave up waiting). Either way a retry is safe; only the second may leave copies.
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, publish, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const REDIS_TIMEOUT_MS = 500;

describe('what a 503 says about the events', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  let cluster: Cluster;
  before(async () => {
    redis = await startTestRedis();
    cluster = await startCluster({ redisUrl: redis.url, workers: 1, env: { REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS), LOG_LEVEL: 'error' } });
  });
  after(async () => {
    await cluster?.destroy();
    await redis?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(cluster?.logTail());
  });

  it('answers outcome_unknown, never unavailable, when Redis runs the add after the API gave up', async () => {
    const admin = new Redis(redis.url);
    try {
      // Redis holds every write for three timeouts, then runs them: a slow Redis, not a dead one.
      await admin.call('CLIENT', 'PAUSE', String(3 * REDIS_TIMEOUT_MS), 'WRITE');
      const sent = Array.from({ length: 40 }, () => [event({ topic: 'slow-redis' }), event({ topic: 'slow-redis' })]);
      const answers = await Promise.all(sent.map((events) => publish(cluster.baseUrl, events)));
      const codes = answers.map((a) => `${a.status} ${a.body.error ?? ''}`.trim());
      expect(new Set(codes), codes.join(', ')).to.deep.equal(new Set(['503 outcome_unknown']));
      for (const a of answers) {
        expect(a.headers.get('retry-after')).to.match(/^\d+$/);
        expect(a.body.message).to.match(/retrying is safe/);
      }
      await waitFor(async () => (await stats(cluster.baseUrl)).pending === 0, { what: 'the late adds to be processed' });
      // The adds did land: an `unavailable` for them would have been a lie.
      const stored = new Set((await allEvents(cluster.baseUrl, 'slow-redis')).map((e) => e.event_id as string));
      expect(stored.size).to.be.above(0);
    } finally {
      admin.disconnect();
    }
  });

  it('answers unavailable when the add never left (Redis is down), and queues nothing of it', async function () {
    if (redis.kind !== 'redis-server') this.skip();
    await redis.kill();
    try {
      const events = [event({ topic: 'redis-down' })];
      const a = await waitFor(
        async () => {
          const r = await publish(cluster.baseUrl, events);
          return r.status === 503 && r;
        },
        { what: 'a 503 while Redis is down' },
      );
      expect(a.body.error).to.equal('unavailable');
      expect(a.headers.get('retry-after')).to.match(/^\d+$/);
    } finally {
      await redis.start();
    }
    await waitFor(async () => (await publish(cluster.baseUrl, [event({ topic: 'redis-back' })])).status === 202, { what: 'Redis to be back' });
    await waitFor(async () => (await stats(cluster.baseUrl)).pending === 0, { what: 'the queue to drain' });
    expect(await allEvents(cluster.baseUrl, 'redis-down')).to.deep.equal([]);
  });
});
