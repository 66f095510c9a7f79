// One writer at a time on SQLite (services/worker/writer-lease.ts): the lease itself against a
// real Redis, then real workers taking it, handing it over on SIGTERM and losing it to a
// standby on SIGKILL, with exact books throughout.
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createLogger } from '../../shared/log.js';
import { leaseConnectionName, WriterLease, writerLeaseKey, type LeaseRole } from '../../services/worker/writer-lease.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { drained, publish, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { workload, type Ev } from '../support/workload.js';

const log = createLogger({ name: 'lease-test', level: 'silent' });

type Listed = { id: string; status: string; role?: LeaseRole; committed_events: number };
const workersOf = async (baseUrl: string) => ((await stats(baseUrl)).workers as { list: Listed[] }).list;
/** The pid in a worker's id (`<host>-<pid>-<suffix>`). */
const pidOf = (w: Listed) => Number(/-(\d+)-[0-9a-f]{8}$/.exec(w.id)![1]);

async function sendAll(baseUrl: string, events: Ev[], onAccepted?: (n: number) => void): Promise<void> {
  for (let i = 0; i < events.length; i += 100) {
    const chunk = events.slice(i, i + 100);
    for (;;) {
      const r = await publish(baseUrl, { events: chunk }).catch(() => undefined);
      if (r?.status === 202) break;
      if (r !== undefined && r.status !== 503) throw new Error(`publish answered ${r.status}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    onAccepted?.(i + chunk.length);
  }
}

describe('the SQLite writer lease', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let client: Redis;
  let leases: WriterLease[];
  /** Connections standing for live holders, closed after each test. */
  let holders: Redis[];
  const queueName = 'lease-test';
  const key = writerLeaseKey(queueName);

  before(async () => {
    redis = await startTestRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
  });
  after(async () => {
    client.disconnect();
    await redis.stop();
  });
  beforeEach(async () => {
    leases = [];
    holders = [];
    await client.del(key);
  });
  afterEach(async () => {
    for (const l of leases) await l.close();
    for (const h of holders) h.disconnect();
  });

  /**
   * A lease with its own connection named after it, as each worker has, and the roles it was
   * told of. Its connection is ready once the test starts it (a lease tries nothing while
   * Redis is away).
   */
  async function lease(id: string, ttlMs: number) {
    const roles: LeaseRole[] = [];
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null, connectionName: leaseConnectionName(id) });
    const l = new WriterLease({
      redis: connection,
      queueName,
      id,
      ttlMs,
      log,
      onWriter: () => void roles.push('writer'),
      onStandby: () => (roles.push('standby'), Promise.resolve()),
    });
    const close = l.close.bind(l);
    l.close = () => close().finally(() => connection.disconnect());
    leases.push(l);
    await connection.ping();
    return { l, roles };
  }

  /** What a live holder that is not a lease of this test shows a standby: its lease connection, open. */
  async function liveHolder(id: string): Promise<Redis> {
    const c = new Redis(redis.url, { maxRetriesPerRequest: null, connectionName: leaseConnectionName(id) });
    await c.ping();
    return c;
  }

  describe('between lease holders', () => {
    it('gives the lease to one of three; the others stand by', async () => {
      const all = await Promise.all(['a', 'b', 'c'].map((id) => lease(id, 3000)));
      for (const { l } of all) l.start();
      await Promise.all(all.map(({ l }) => l.tick()));
      expect(all.map(({ l }) => l.role).filter((r) => r === 'writer')).to.have.length(1);
      const writer = all.find(({ l }) => l.role === 'writer')!;
      expect(writer.roles).to.deep.equal(['writer']);
      expect(await client.get(key)).to.equal(['a', 'b', 'c'][all.indexOf(writer)]);
      expect(all.filter((x) => x !== writer).every(({ roles }) => roles.length === 0)).to.equal(true);
      // Renewed, not lapsed: after twice its length the same holder keeps it.
      await new Promise((r) => setTimeout(r, 6000));
      expect(all.map(({ l }) => l.role)).to.deep.equal(all.map((x) => (x === writer ? 'writer' : 'standby')));
      expect(writer.roles).to.deep.equal(['writer']);
    });

    it('hands the lease over when its writer stops, without waiting for it to lapse', async () => {
      const a = await lease('a', 30_000);
      a.l.start();
      await a.l.tick();
      const b = await lease('b', 30_000);
      b.l.start();
      await b.l.tick();
      expect([a.l.role, b.l.role]).to.deep.equal(['writer', 'standby']);
      await a.l.close();
      expect(await client.get(key)).to.equal(null);
      // b tries every 10 s (a third of 30 s): its next try takes it, well before 30 s.
      const started = Date.now();
      await waitFor(() => b.l.role === 'writer', { timeoutMs: 15_000, what: 'b to take the lease' });
      expect(Date.now() - started).to.be.below(15_000);
      expect(b.roles).to.deep.equal(['writer']);
    });

    it("takes at once the lease of a writer whose connection has closed (it died), long before the lease would lapse", async () => {
      // What a SIGKILLed writer leaves: its id under the key for 30 s more, and no connection.
      await client.set(key, 'dead-worker', 'PX', 30_000);
      const b = await lease('b', 30_000);
      const started = Date.now();
      b.l.start();
      await waitFor(() => b.l.role === 'writer', { timeoutMs: 5000, what: 'the dead writer\'s lease to be taken' });
      expect(Date.now() - started).to.be.below(5000);
      expect(await client.get(key)).to.equal('b');
    });

    it('waits out the lease of a writer that hangs with its connection open, then takes it', async () => {
      const hung = await liveHolder('hung');
      try {
        await client.set(key, 'hung', 'PX', 2000);
        const b = await lease('b', 2000);
        b.l.start();
        await new Promise((r) => setTimeout(r, 1200));
        expect(b.l.role, 'the holder is alive and its lease has not lapsed').to.equal('standby');
        await waitFor(() => b.l.role === 'writer', { timeoutMs: 5000, what: 'the lapsed lease to be taken' });
        expect(await client.get(key)).to.equal('b');
        expect(await client.pttl(key)).to.be.within(1, 2000);
      } finally {
        hung.disconnect();
      }
    });

    it('makes a writer that finds the lease in other hands stand by; a lost key is taken again', async () => {
      const a = await lease('a', 3000);
      a.l.start();
      await a.l.tick();
      expect(a.l.role).to.equal('writer');
      // Redis restarted without the key: the writer takes it again at its next renewal, and
      // is not told to stand by.
      await client.del(key);
      await a.l.tick();
      expect(await client.get(key)).to.equal('a');
      expect(a.roles).to.deep.equal(['writer']);
      // Another worker, alive, holds it now (a took too long to renew): a stands by.
      const other = await liveHolder('other');
      try {
        await client.set(key, 'other', 'PX', 3000);
        await a.l.tick();
        expect(a.l.role).to.equal('standby');
        expect(a.roles).to.deep.equal(['writer', 'standby']);
        await a.l.tick();
        expect(a.l.role, 'a live holder\'s lease is not taken').to.equal('standby');
        // Closing a standby leaves the other's lease alone.
        await a.l.close();
        expect(await client.get(key)).to.equal('other');
      } finally {
        other.disconnect();
      }
    });
  });

  describe('between worker processes', () => {
    let cluster: Cluster | undefined;
    afterEach(async function () {
      if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.logTail(40));
      await cluster?.destroy();
      cluster = undefined;
    });

    it('has one worker take every job while the others stand by, and a SIGKILLed writer replaced by a standby', async () => {
      // The default lease (10 s): a dead writer is found by its closed connection, not waited out.
      cluster = await startCluster({ redisUrl: redis.url, workers: 3 });
      const c = cluster;
      const roles = await waitFor(
        async () => {
          const list = await workersOf(c.baseUrl);
          return list.length === 3 && list.every((w) => w.role !== undefined) && list.filter((w) => w.role === 'writer').length === 1 && list;
        },
        { what: 'one writer and two standbys in the heartbeats' },
      );
      const writer = roles.find((w) => w.role === 'writer')!;
      const victim = c.workers.find((w) => w.child.pid === pidOf(writer))!;
      expect(victim, 'the writer is one of the cluster\'s workers').to.not.equal(undefined);

      const { events, unique } = workload(6000, 0.3, { source: 'lease-test' });
      await sendAll(c.baseUrl, events.slice(0, 2000));
      await drained(c.baseUrl, 2000);
      // Every job so far went to the writer alone (heartbeats every few seconds: wait for them).
      const before = await waitFor(
        async () => {
          const list = await workersOf(c.baseUrl);
          return list.find((w) => w.id === writer.id)?.committed_events === 2000 && list;
        },
        { what: 'the writer\'s heartbeat counting 2,000 events', timeoutMs: 15_000 },
      );
      expect(before.filter((w) => w.id !== writer.id).map((w) => w.committed_events)).to.deep.equal([0, 0]);

      // The writer dies mid-stream: a standby takes the lease once it lapses, then the jobs.
      let killed: Promise<unknown> | undefined;
      let killedAt = 0;
      await sendAll(c.baseUrl, events.slice(2000), (n) => {
        if (killed === undefined && n >= 1000) {
          killedAt = Date.now();
          killed = victim.kill();
        }
      });
      await killed;
      const leaseKey = writerLeaseKey(c.queueName);
      await waitFor(async () => { const h = await client.get(leaseKey); return h !== null && h !== writer.id; }, { what: 'a standby to take the lease', timeoutMs: 20_000 });
      expect(Date.now() - killedAt, 'taken over well before the 10 s lease would lapse').to.be.below(5000);
      const s = await drained(c.baseUrl, 6000, 60_000);
      expect(s.received).to.equal(6000);
      expect(s.unique_processed).to.equal(unique);
      expect(s.duplicate_dropped).to.equal(6000 - unique);
      const after = await waitFor(
        async () => {
          const list = await workersOf(c.baseUrl);
          return list.length === 2 && list.filter((w) => w.role === 'writer').length === 1 && list;
        },
        { what: 'a new writer among the two left', timeoutMs: 15_000 },
      );
      expect(after.find((w) => w.role === 'writer')!.id).to.not.equal(writer.id);
    });

    it('hands the lease over on SIGTERM: the standby takes jobs at once, nothing lost', async () => {
      // A lease long enough that only the hand-over, not a lapse, can explain a quick takeover.
      cluster = await startCluster({ redisUrl: redis.url, workers: 2, env: { SQLITE_WRITER_LEASE_MS: '20000' } });
      const c = cluster;
      const list = await waitFor(
        async () => {
          const l = await workersOf(c.baseUrl);
          return l.length === 2 && l.filter((w) => w.role === 'writer').length === 1 && l;
        },
        { what: 'a writer and a standby' },
      );
      const writer = c.workers.find((w) => w.child.pid === pidOf(list.find((x) => x.role === 'writer')!))!;
      const { events, unique } = workload(3000, 0.2, { source: 'lease-test' });
      await sendAll(c.baseUrl, events.slice(0, 1000));
      const exit = await writer.term();
      expect(exit.code).to.equal(0);
      const stopped = Date.now();
      await sendAll(c.baseUrl, events.slice(1000));
      const s = await drained(c.baseUrl, 3000, 30_000);
      // At the standby's next try after the hand-over (every half second), not after the lease's 20 s.
      expect(Date.now() - stopped).to.be.below(15_000);
      expect(s.unique_processed).to.equal(unique);
      expect(s.duplicate_dropped).to.equal(3000 - unique);
      // Its heartbeat says so from the change on.
      await waitFor(async () => (await workersOf(c.baseUrl)).some((w) => w.role === 'writer'), { what: 'the standby\'s heartbeat as writer', timeoutMs: 5000 });
    });

    it('stands a writer by when another takes its lease, and lets it take jobs again once it gets it back', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 1, env: { SQLITE_WRITER_LEASE_MS: '1500' } });
      const c = cluster;
      const leaseKey = writerLeaseKey(c.queueName);
      await waitFor(async () => (await workersOf(c.baseUrl))[0]?.role === 'writer', { what: 'the worker as writer' });
      const { events, unique } = workload(1500, 0.2, { source: 'lease-test' });
      await sendAll(c.baseUrl, events.slice(0, 500));
      await drained(c.baseUrl, 500);
      // Another worker, alive as far as Redis can tell, holds the lease for 4 s: this one
      // stands by, taking nothing.
      holders.push(await liveHolder('someone-else'));
      await client.set(leaseKey, 'someone-else', 'PX', 4000);
      await waitFor(async () => (await workersOf(c.baseUrl))[0]?.role === 'standby', { what: 'the worker standing by', timeoutMs: 5000 });
      await sendAll(c.baseUrl, events.slice(500, 1000));
      await new Promise((r) => setTimeout(r, 1000));
      const waiting = await stats(c.baseUrl);
      expect(waiting.pending, 'nothing taken while standing by').to.equal(500);
      // The other never renews: once the lease lapses this worker takes it and the jobs again.
      const s = await drained(c.baseUrl, 1000, 15_000);
      expect((await workersOf(c.baseUrl))[0]?.role).to.equal('writer');
      await sendAll(c.baseUrl, events.slice(1000));
      const done = await drained(c.baseUrl, 1500, 15_000);
      expect(s.pending).to.equal(0);
      expect(done.unique_processed).to.equal(unique);
      expect(done.duplicate_dropped).to.equal(1500 - unique);
    });

    it('lets every worker take jobs with SQLITE_WRITER_LEASE_MS=0', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 2, env: { SQLITE_WRITER_LEASE_MS: '0' } });
      const c = cluster;
      const { events, unique } = workload(4000, 0.2, { source: 'lease-test' });
      // Requests in parallel, so that both workers have jobs to take.
      await Promise.all([0, 1, 2, 3].map((k) => sendAll(c.baseUrl, events.slice(k * 1000, (k + 1) * 1000))));
      const s = await drained(c.baseUrl, 4000);
      expect(s.unique_processed).to.equal(unique);
      const list = await waitFor(
        async () => {
          const l = await workersOf(c.baseUrl);
          return l.length === 2 && l.reduce((n, w) => n + w.committed_events, 0) === 4000 && l;
        },
        { what: 'heartbeats counting every event', timeoutMs: 15_000 },
      );
      expect(list.every((w) => w.role === undefined)).to.equal(true);
      expect(list.filter((w) => w.committed_events > 0)).to.have.length(2);
    });
  });
});
