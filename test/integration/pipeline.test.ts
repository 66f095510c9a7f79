// The whole pipeline under load, restarts and crashes: real API, real workers, real Redis.
// Each scenario has its own Redis and data directory, so its counts are its own.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { STORE_FILE } from '../../shared/store/sqlite/schema.js';
import { requirePostgres } from '../support/postgres.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, publish, stats, type Stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { mixedChunks, workload, type Ev } from '../support/workload.js';


/** Sends events in a mix of shapes: single events, JSON batches, NDJSON batches; retries until 202. */
async function send(baseUrl: string, events: Ev[], opts: { concurrency?: number; onAccepted?: (n: number) => void } = {}) {
  const chunks = mixedChunks(events);
  let next = 0;
  let retries = 0;
  const one = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++]!;
      for (;;) {
        const ndjson = chunk.length > 1 && chunk.length % 2 === 1;
        const r = await (ndjson
          ? publish(baseUrl, chunk.map((e) => JSON.stringify(e)).join('\n'), {
              contentType: 'application/x-ndjson',
              raw: true,
            })
          : publish(baseUrl, chunk.length === 1 ? chunk[0] : { events: chunk })
        ).catch(() => undefined);
        if (r?.status === 202) {
          opts.onAccepted?.(chunk.length);
          break;
        }
        if (r !== undefined && r.status !== 503) throw new Error(`publish answered ${r.status}: ${JSON.stringify(r.body)}`);
        retries++;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, one));
  return { requests: chunks.length, retries };
}

async function drain(cluster: Cluster, expected: { received: number; unique: number }, timeoutMs = 90_000): Promise<Stats> {
  return waitFor(
    async () => {
      const s = await stats(cluster.baseUrl);
      return s.pending === 0 && s.received >= expected.received && s.unique_processed >= expected.unique && s;
    },
    { what: `a drained queue with ${expected.received} received`, timeoutMs },
  );
}

async function expectEachStoredOnce(cluster: Cluster, events: Ev[]) {
  const stored = await allEvents(cluster.baseUrl);
  const keys = stored.map((e) => `${e.topic}\u0000${e.event_id}`);
  expect(new Set(keys).size, 'no identity stored twice').to.equal(keys.length);
  const want = new Set(events.map((e) => `${e.topic}\u0000${e.event_id}`));
  expect(keys.length).to.equal(want.size);
  for (const k of keys) expect(want.has(k)).to.equal(true);
  const seqs = stored.map((e) => e.seq);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).to.be.greaterThan(seqs[i - 1]);
}

describe('pipeline', function () {
  for (const store of ['sqlite', 'postgres'] as const) {
    describe(`on ${store}`, function () {
      before(async function () {
        if (store === 'postgres') await requirePostgres(this);
      });
    let redis: TestRedis;
    let cluster: Cluster | undefined;

    beforeEach(async () => {
      redis = await startTestRedis();
    });
    afterEach(async function () {
      if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.logTail(40));
      await cluster?.destroy();
      cluster = undefined;
      await redis?.stop();
    });

    it('counts 20,000 events with 30% copies exactly across three workers', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 3, store });
      const { events, unique } = workload(20_000, 0.3, { source: 'pipeline-test' });
      const started = performance.now();
      const sent = await send(cluster.baseUrl, events);
      const s = await drain(cluster, { received: 20_000, unique });
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `      20,000 events (${unique} unique, ${20_000 - unique} copies) in ${sent.requests} requests, 3 workers: ${seconds.toFixed(1)} s end to end, ${Math.round(20_000 / seconds)} events/s`,
      );
      expect(s.received).to.equal(20_000);
      expect(s.unique_processed).to.equal(unique);
      expect(s.duplicate_dropped).to.equal(20_000 - unique);
      expect(s.topics).to.deep.equal(['t0', 't1', 't2', 't3']);
      await expectEachStoredOnce(cluster, events);
      // The database, not DATA_DIR, holds the events of a PostgreSQL deployment.
      expect(fs.existsSync(path.join(cluster.dataDir, STORE_FILE))).to.equal(store === 'sqlite');
      // By their heartbeats, the workers together committed every event: on PostgreSQL more
      // than one of them took part; on SQLite one took every job (the writer lease) and the
      // others stood by.
      const c = cluster;
      const committed = await waitFor(
        async () => {
          const list = ((await stats(c.baseUrl)).workers as { list: { committed_events: number }[] }).list;
          return list.reduce((n, w) => n + w.committed_events, 0) === 20_000 && list.map((w) => w.committed_events);
        },
        { what: 'heartbeats counting every committed event', timeoutMs: 15_000 },
      );
      if (store === 'sqlite') expect(committed.filter((n) => n > 0)).to.deep.equal([20_000]);
      else expect(committed.filter((n) => n > 0).length).to.be.at.least(2);
    });

    it('keeps events and counts across a full restart, and drops old events sent again', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 2, store });
      const { events, unique } = workload(3000, 0.2, { source: 'pipeline-test' });
      await send(cluster.baseUrl, events);
      const before = await drain(cluster, { received: 3000, unique });

      const exits = await cluster.stop();
      expect(exits.map((e) => e.code), 'clean exits on SIGTERM').to.deep.equal([0, 0, 0]);
      await redis.term();
      await redis.start();
      await cluster.startApi();
      await cluster.startWorker();

      const restarted = await stats(cluster.baseUrl);
      expect(restarted).to.include({
        received: before.received,
        unique_processed: before.unique_processed,
        duplicate_dropped: before.duplicate_dropped,
      });
      const again = events.slice(0, 1000);
      await send(cluster.baseUrl, again);
      const after = await drain(cluster, { received: 4000, unique });
      expect(after.received).to.equal(4000);
      expect(after.unique_processed).to.equal(unique);
      expect(after.duplicate_dropped).to.equal(4000 - unique);
      await expectEachStoredOnce(cluster, events);
    });

    it('loses and doubles nothing when a worker is SIGKILLed mid-stream', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 3, store });
      const { events, unique } = workload(12_000, 0.3, { source: 'pipeline-test' });
      let accepted = 0;
      let killed = false;
      const victim = cluster.workers[0]!;
      const sending = send(cluster.baseUrl, events, {
        concurrency: 4,
        onAccepted: (n) => {
          accepted += n;
          if (!killed && accepted >= 4000) {
            killed = true;
            void victim.kill();
          }
        },
      });
      await sending;
      const exit = await victim.exited;
      expect(exit.signal).to.equal('SIGKILL');
      await cluster.startWorker();
      const s = await drain(cluster, { received: 12_000, unique });
      expect(s.received).to.equal(12_000);
      expect(s.unique_processed).to.equal(unique);
      expect(s.duplicate_dropped).to.equal(12_000 - unique);
      await expectEachStoredOnce(cluster, events);
    });

    it('loses and doubles nothing when the API is SIGKILLed among coalesced requests, whatever it had answered', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 2, store });
      const { events, unique } = workload(6000, 0.3, { source: 'pipeline-test' });
      let accepted = 0;
      let killed: Promise<unknown> | undefined;
      const c = cluster;
      // Many requests in flight, so the API gathers several into each job: some are in Redis
      // unanswered when it dies, and their producers send them again to the new API.
      await send(c.baseUrl, events, {
        concurrency: 32,
        onAccepted: (n) => {
          accepted += n;
          if (killed === undefined && accepted >= 2000) killed = c.api.kill().then(() => c.startApi());
        },
      });
      await killed;
      const s = await drain(c, { received: 6000, unique });
      // Copies sent again after the crash are received and dropped, never stored twice.
      expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
      expect(s.unique_processed).to.equal(unique);
      await expectEachStoredOnce(c, events);
    });

    it('answers 503 while Redis is down and loses nothing acknowledged when it comes back', async function () {
      cluster = await startCluster({ redisUrl: redis.url, workers: 2, store });
      const { events, unique } = workload(6000, 0.3, { source: 'pipeline-test' });
      const firstHalf = events.slice(0, 3000);
      await send(cluster.baseUrl, firstHalf);

      await redis.kill();
      const started = performance.now();
      const down = await publish(cluster.baseUrl, events[3000]).catch(() => undefined);
      const ms = performance.now() - started;
      expect(down?.status).to.equal(503);
      expect(down?.headers.get('retry-after')).to.match(/^\d+$/);
      expect(down?.body.error).to.be.a('string');
      expect(ms, 'a publish never hangs while Redis is down').to.be.below(5000);
      const ready = await fetch(`${cluster.baseUrl}/ready`);
      expect(ready.status).to.equal(503);

      await redis.start();
      // The producer keeps retrying until Redis is back; every event ends up accepted.
      await send(cluster.baseUrl, events.slice(3000));
      const s = await drain(cluster, { received: 6000, unique });
      expect(s.received).to.equal(6000);
      expect(s.unique_processed).to.equal(unique);
      expect(s.duplicate_dropped).to.equal(6000 - unique);
      await expectEachStoredOnce(cluster, events);
    });
    });
  }
});
