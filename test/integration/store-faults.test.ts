// PostgreSQL faults that a deployment across hosts meets, injected for real on a server the
// test owns: sessions terminated mid-load (what a connection reset does to a client), the
// server SIGKILLed and started again, the database dropped and re-created empty. The
// processes must survive all of it, readers get 503 while the store is away, and the books
// stay exact: every identity stored once, every `?wait` verdict right.
import { expect } from 'chai';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, drained, get, request } from '../../tools/harness/http.js';
import { checkBooks, key, produce, type Verdict } from '../support/books.js';
import { waitFor } from '../../tools/harness/wait.js';
import { requireOwnedPostgres, startOwnedPostgres, type OwnedPostgres } from '../support/owned-postgres.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { mixedChunks, workload, type Ev } from '../support/workload.js';

describe('store faults (PostgreSQL owned by the test)', function () {
  this.timeout(180_000);
  let pg: OwnedPostgres;
  let redis: TestRedis;
  let cluster: Cluster | undefined;
  let database: string;

  before(async function () {
    requireOwnedPostgres(this);
    [pg, redis] = await Promise.all([startOwnedPostgres(), startTestRedis()]);
  });
  after(async () => {
    await redis?.stop();
    await pg?.destroy();
  });
  beforeEach(async () => {
    database = `agg_faults_${Math.random().toString(36).slice(2, 10)}`;
    await pg.admin(`CREATE DATABASE ${database}`);
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.logTail(40));
    await cluster?.destroy();
    cluster = undefined;
  });

  it('survives its sessions being terminated again and again mid-load, and loses and doubles nothing', async () => {
    cluster = await startCluster({ redisUrl: redis.url, workers: 2, store: 'postgres', databaseUrl: pg.url(database) });
    const c = cluster;
    let terminated = 0;
    let load = true;
    const killer = (async () => {
      while (load) {
        await new Promise((r) => setTimeout(r, 200));
        const r = await pg
          .admin<{ t: boolean }>('SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database])
          .catch(() => undefined);
        terminated += r?.rows.filter((x) => x.t).length ?? 0;
      }
    })();
    // Rounds of load until sessions were ended a few times under it, however fast the machine
    // (one fixed load was over before the second round of terminations on a quiet one).
    const events: Ev[] = [];
    let accepted = 0;
    const answered: Awaited<ReturnType<typeof produce>>['answered'] = [];
    try {
      for (let round = 0; round < 30 && (round < 2 || terminated <= 5); round++) {
        const more = workload(1000, 0.2, { source: `resets-${round}` }).events;
        events.push(...more);
        const r = await produce(c.baseUrl, mixedChunks(more));
        accepted += r.accepted;
        answered.push(...r.answered);
      }
    } finally {
      load = false;
    }
    await killer;
    expect(terminated, 'sessions terminated').to.be.greaterThan(5);
    await checkBooks(c.baseUrl, events, answered, accepted);
    expect(c.api.alive(), 'the API is alive').to.equal(true);
    for (const w of c.workers) expect(w.alive(), `${w.name} is alive`).to.equal(true);
  });

  it('answers 503 while PostgreSQL is away, commits what waited once it is back, and re-creates dropped tables', async () => {
    cluster = await startCluster({ redisUrl: redis.url, workers: 1, store: 'postgres', databaseUrl: pg.url(database) });
    const c = cluster;
    const first = workload(400, 0.25, { source: 'before' });
    const before = await produce(c.baseUrl, mixedChunks(first.events));
    await drained(c.baseUrl, before.accepted);
    const one = first.events[0]!;

    await pg.kill();
    const lookups = [
      '/events',
      `/events?topic=${one.topic}`,
      `/events/${encodeURIComponent(one.topic)}/${encodeURIComponent(one.event_id)}`,
      '/stats',
      '/topics',
    ];
    for (const path of lookups) {
      const r = await get(c.baseUrl, path);
      expect(r.status, `${path}: ${JSON.stringify(r.body)}`).to.equal(503);
      expect(r.headers.get('retry-after'), path).to.match(/^\d+$/);
      expect(r.body).to.include({ error: 'store_unavailable' });
      expect(r.body.message).to.be.a('string');
    }
    const stream = await fetch(`${c.baseUrl}/events/stream?after=0`, { signal: AbortSignal.timeout(10_000) });
    expect(stream.status).to.equal(503);
    expect(stream.headers.get('retry-after')).to.match(/^\d+$/);
    expect(await stream.json()).to.include({ error: 'store_unavailable' });
    expect((await get(c.baseUrl, '/ready')).status).to.equal(503);

    // Publishing goes on (Redis answers); the worker keeps the jobs and says why.
    const during = workload(300, 0.25, { source: 'during' });
    const meanwhile = await produce(c.baseUrl, mixedChunks(during.events).map((chunk) => chunk), 2);
    const waited = await request(c.baseUrl, 'POST', '/publish?wait=1', during.events[0]);
    expect(waited.status).to.equal(202);
    await waitFor(async () => (await get(c.baseUrl, '/ready')).body.workers?.[0]?.status === 'store_error', {
      what: "the worker's store_error",
    });

    await pg.start();
    await checkBooks(
      c.baseUrl,
      [...first.events, ...during.events],
      [...before.answered, ...meanwhile.answered],
      before.accepted + meanwhile.accepted + 1,
    );
    expect((await get(c.baseUrl, '/ready')).status).to.equal(200);

    // The database comes back empty: the tables are made again, nothing restarts.
    await pg.admin(`DROP DATABASE ${database} WITH (FORCE)`);
    const gone = await get(c.baseUrl, '/events');
    expect(gone.status, JSON.stringify(gone.body)).to.equal(503);
    await pg.admin(`CREATE DATABASE ${database}`);
    const page = await waitFor(
      async () => {
        const r = await get(c.baseUrl, '/events');
        return r.status === 200 && r.body;
      },
      { what: '/events answering on the re-created database' },
    );
    expect(page.count).to.equal(0);
    const after = workload(50, 0, { source: 'after' });
    const r = await request(c.baseUrl, 'POST', '/publish?wait=15', after.events);
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    expect(r.body.results.map((x: Verdict) => x.status)).to.deep.equal(after.events.map(() => 'stored'));
    expect((await allEvents(c.baseUrl)).map(key).sort()).to.deep.equal(after.events.map(key).sort());
    expect(c.api.alive(), 'the API is alive').to.equal(true);
    expect(c.workers[0]!.alive(), 'the worker is alive').to.equal(true);
  });
});
