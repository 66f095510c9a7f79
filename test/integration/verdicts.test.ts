// What a producer learns: a verdict per event with `?wait`, conflicts counted apart from
// plain copies, one identity explained, and the system's own redeliveries told apart from
// producers' retries. Real API, workers and Redis.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JOB_NAME, newJobId } from '../../shared/queue.js';
import type { Event } from '../../shared/schema.js';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { get, request, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { useCluster } from '../support/suite.js';

const run = randomUUID().slice(0, 8);
let n = 0;
function ev(overrides: Partial<Event> = {}): Event {
  return {
    topic: 'verdicts',
    event_id: `${run}-${++n}`,
    timestamp: '2025-10-24T00:00:00Z',
    source: 'checkout',
    payload: { amount: 12, items: [{ sku: 'A', qty: 1 }] },
    ...overrides,
  };
}

const statuses = (body: any): string[] => body.results.map((r: { status: string }) => r.status);

describe('verdicts', function () {
  describe('with a worker running', () => {
    const shared = useCluster({ workers: 2 });
    const url = () => shared.cluster.baseUrl;

    it('answers 200 with one result per event, in request order, a copy within the batch included', async () => {
      const c = ev();
      const waited = await request(url(), 'POST', '/publish?wait=10', { events: [c, { ...c }, ev()] });
      expect(waited.status, JSON.stringify(waited.body)).to.equal(200);
      expect(waited.body).to.include({ status: 'processed', accepted: 3 });
      expect(statuses(waited.body)).to.deep.equal(['stored', 'duplicate', 'stored']);
      const [first, copy, third] = waited.body.results;
      expect(waited.body.results.map((x: { index: number }) => x.index)).to.deep.equal([0, 1, 2]);
      expect(copy.seq).to.equal(first.seq);
      expect(third.seq).to.be.above(first.seq);
      // The seq is the stored copy's: the event is readable there.
      const page = await get(url(), `/events?after=${first.seq - 1}&limit=1`);
      expect(page.body.events[0]).to.include({ event_id: c.event_id, seq: first.seq });
    });

    it('tells conflicts from duplicates: key order and timestamp offsets are the same content', async () => {
      const base = ev({ payload: { a: 1, b: { c: [1, 2], d: 'x' } }, timestamp: '2025-10-24T00:00:00Z' });
      const stored = await request(url(), 'POST', '/publish?wait=10', base);
      expect(statuses(stored.body)).to.deep.equal(['stored']);
      const before = await stats(url());

      const same = [
        { ...base, payload: { b: { d: 'x', c: [1, 2] }, a: 1 } },
        { ...base, timestamp: '2025-10-24T07:00:00+07:00' },
        { ...base, timestamp: '2025-10-24T00:00:00.000Z' },
      ];
      const differ = [
        { ...base, payload: { a: 2, b: { c: [1, 2], d: 'x' } } },
        { ...base, source: 'elsewhere' },
        { ...base, timestamp: '2025-10-24T00:00:01Z' },
      ];
      // NDJSON with its own whitespace: whitespace is not content either.
      const body = [...same, ...differ].map((e) => JSON.stringify(e, null, e === same[0] ? 2 : 0).replace(/\n/g, ' ')).join('\n');
      const r = await request(url(), 'POST', '/publish?wait=10', body, { raw: true, contentType: 'application/x-ndjson' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(statuses(r.body)).to.deep.equal(['duplicate', 'duplicate', 'duplicate', 'conflict', 'conflict', 'conflict']);
      expect(new Set(r.body.results.map((x: { seq: number }) => x.seq))).to.deep.equal(new Set([stored.body.results[0].seq]));

      const after = await stats(url());
      expect(after.duplicate_dropped - before.duplicate_dropped).to.equal(6);
      expect((after.conflicts as number) - (before.conflicts as number)).to.equal(3);
      expect(after.received).to.equal(after.unique_processed + after.duplicate_dropped);
      expect((after.conflicts_per_topic as Record<string, number>).verdicts).to.be.at.least(3);

      const looked = await get(url(), `/events/verdicts/${encodeURIComponent(base.event_id)}`);
      expect(looked.status).to.equal(200);
      expect(looked.body).to.deep.include({ copies: 7, conflicts: 3 });
      expect(looked.body.event).to.deep.include({ source: 'checkout', payload: base.payload, timestamp: base.timestamp });

      const metrics = await (await fetch(`${url()}/metrics`)).text();
      expect(metrics).to.match(/aggregator_events_conflicts_total\{topic="verdicts"\} [3-9]/);
      // Never the payload: the warning names the identity and the job.
      const logs = shared.cluster.workers.map((w) => w.log()).join('');
      expect(logs).to.contain(base.event_id);
      expect(logs).not.to.contain('"elsewhere"');
    });

    it('gives each of many concurrent coalesced requests exactly its own results', async () => {
      const events = Array.from({ length: 60 }, () => ev());
      const answers = await Promise.all(
        events.map((e, i) => request(url(), 'POST', '/publish?wait=10', i % 3 === 2 ? [e, e] : e)),
      );
      const jobs = new Set(answers.map((a) => a.body.job));
      expect(jobs.size, 'requests shared jobs').to.be.below(answers.length);
      answers.forEach((a, i) => {
        expect(a.status, JSON.stringify(a.body)).to.equal(200);
        expect(statuses(a.body)).to.deep.equal(i % 3 === 2 ? ['stored', 'duplicate'] : ['stored']);
      });
      // Read each result's seq back: it is that request's own event.
      for (const [i, a] of answers.entries()) {
        const own = a.body.results[0];
        const page = await get(url(), `/events?after=${own.seq - 1}&limit=1`);
        expect(page.body.events[0].event_id).to.equal(events[i]!.event_id);
      }
    });

    it('holds a thousand waiting requests at once and answers each', async function () {
      this.timeout(60_000);
      const events = Array.from({ length: 1000 }, () => ev());
      const answers = await Promise.all(events.map((e) => request(url(), 'POST', '/publish?wait=20', e)));
      expect(answers.map((a) => a.status)).to.deep.equal(events.map(() => 200));
      expect(answers.every((a) => a.body.results[0].status === 'stored')).to.equal(true);
    });

    it('explains an id holding "/" and spaces, and answers 404 for one never stored', async () => {
      const odd = ev({ topic: 'paths/and spaces', event_id: `a/b c/${run}` });
      await request(url(), 'POST', '/publish?wait=10', [odd, odd]);
      const r = await get(url(), `/events/${encodeURIComponent(odd.topic)}/${encodeURIComponent(odd.event_id)}`);
      expect(r.status).to.equal(200);
      expect(r.body).to.include({ copies: 2, conflicts: 0 });
      expect(r.body.event).to.include({ topic: odd.topic, event_id: odd.event_id });
      expect(Date.parse(r.body.first_seen_at)).to.be.at.most(Date.parse(r.body.last_seen_at));
      // Unencoded slashes in the id work too; a broken escape is the client's mistake.
      const plain = await get(url(), `/events/${encodeURIComponent(odd.topic)}/a/b%20c/${run}`);
      expect(plain.status).to.equal(200);
      const missing = await get(url(), `/events/verdicts/${run}-never`);
      expect(missing.status).to.equal(404);
      expect(missing.body.error).to.equal('not_found');
      expect((await get(url(), '/events/verdicts/%E0%A4%A')).status).to.equal(400);
    });

    it('refuses a bad wait with 400 invalid_query and queues nothing', async () => {
      const before = await stats(url());
      for (const q of ['0', '-1', '31', 'abc', '1e1', '']) {
        const r = await request(url(), 'POST', `/publish?wait=${q}`, ev());
        expect(r.status, q).to.equal(400);
        expect(r.body.error, q).to.equal('invalid_query');
      }
      expect((await request(url(), 'POST', '/publish?wait=1&wait=2', ev())).status).to.equal(400);
      expect((await stats(url())).received).to.equal(before.received);
    });
  });

  describe('without a worker', () => {
    let redis: TestRedis;
    let cluster: Cluster;
    before(async () => {
      redis = await startTestRedis();
      cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
    });
    after(async () => {
      await cluster?.destroy();
      await redis?.stop();
    });

    it('answers 202 when the wait runs out, and the events are stored once a worker starts', async () => {
      const events = [ev(), ev()];
      const started = Date.now();
      const r = await request(cluster.baseUrl, 'POST', '/publish?wait=1', { events });
      expect(r.status).to.equal(202);
      expect(r.body).to.include({ status: 'accepted', accepted: 2 });
      expect(Date.now() - started).to.be.within(900, 3000);
      await cluster.startWorker();
      const s = await waitFor(async () => {
        const st = await stats(cluster.baseUrl);
        return st.unique_processed === 2 && st.pending === 0 && st;
      });
      expect(s.received).to.equal(2);
    });

    it('counts a job committed before its worker died as a redelivery, not as copies', async () => {
      // The state a worker leaves when it is killed between its commit and its acknowledgement:
      // the job is in the store and still in the queue. Made here directly, with no worker
      // running; the worker started next takes the job from the queue again.
      for (const w of cluster.workers) await w.term();
      const events = [ev(), ev()];
      const id = newJobId(events.length);
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const queue = new Queue(cluster.queueName, { connection });
      try {
        await queue.add(JOB_NAME, { events }, { jobId: id });
        const store = openSqliteStore({ dataDir: cluster.dataDir });
        await store.commitJobs([{ id, events }]);
        await store.close();
        const before = await stats(cluster.baseUrl);
        await cluster.startWorker();
        // Committed already, so /stats counts it as received and not pending all along.
        expect(before).to.include({ pending: 0 });
        const after = await waitFor(async () => {
          const st = await stats(cluster.baseUrl);
          const q = st.queue as { waiting: number; active: number };
          return q.waiting + q.active === 0 && (st.redeliveries as number) > 0 && st;
        });
        expect(after.redeliveries).to.equal((before.redeliveries as number) + 1);
        expect(after.received).to.equal(before.received);
        expect(after.duplicate_dropped).to.equal(before.duplicate_dropped);
        expect(after.unique_processed).to.equal(before.unique_processed);
        const metrics = await (await fetch(`${cluster.baseUrl}/metrics`)).text();
        expect(metrics).to.match(/^aggregator_jobs_redelivered_total [1-9]/m);
      } finally {
        await queue.close();
        connection.disconnect();
      }
    });
  });
});
