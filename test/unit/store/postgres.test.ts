// The PostgreSQL store on a real server: everything every store guarantees (behaviour.ts,
// the same tests the SQLite store passes), then what is this adapter's own: its location
// without the password, sources kept as bytes, DATABASE_URL errors, migrations racing, and
// the guarantees that are hard with concurrent writers (each identity once, consistent
// counts, serializable defaults, a cursor that never skips).
import { expect } from 'chai';
import pg from 'pg';
import type { Event } from '../../../shared/schema.js';
import type { JobOutcome, JobToCommit, Store, StoredEvent } from '../../../shared/store/port.js';
import { openPostgresStore } from '../../../shared/store/postgres/store.js';
import { STORED_COPIES_SQL } from '../../../shared/store/postgres/write.js';
import { createTestDatabase, type TestDatabase } from '../../../tools/harness/postgres.js';
import { requirePostgres } from '../../support/postgres.js';
import { storeBehaviour } from './behaviour.js';

function ev(topic: string, eventId: string, payload: Record<string, unknown> = {}, more: Partial<Event> = {}): Event {
  return { topic, event_id: eventId, timestamp: '2025-10-24T00:00:00Z', source: 'unit', payload, ...more };
}

const statuses = (o: JobOutcome) => o.results.map((r) => r.status);

function rethrow(err: unknown): void {
  if (err !== undefined) throw err instanceof Error ? err : new Error(JSON.stringify(err));
}

describe('store (PostgreSQL)', function () {
  let db: TestDatabase;
  let opened: Store[];

  before(async function () {
    await requirePostgres(this);
  });

  beforeEach(async () => {
    db = await createTestDatabase();
    opened = [];
  });

  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await db?.drop();
  });

  const open = async (poolSize?: number): Promise<Store> => {
    const store = await openPostgresStore({ url: db.url, poolSize });
    opened.push(store);
    return store;
  };
  storeBehaviour({
    open: () => open(),
    openRetaining: async (opts) => {
      const store = await openPostgresStore({ url: db.url, ...opts });
      opened.push(store);
      return store;
    },
  });

  const all = (store: Store, topic?: string) => store.listEvents({ topic, after: 0, limit: 1_000_000 });
  const identities = async (store: Store, topic?: string) =>
    (await all(store, topic)).map((e) => `${e.topic}/${e.event_id}`);
  const counts = (store: Store, jobIds: string[] = []) => store.counts({ jobIds, topicsLimit: 1000 });

  it('stores an event with its five fields, a seq and processed_at; says where it is, without the password', async () => {
    const store = await open();
    expect(store.kind).to.equal('postgres');
    expect(store.location).to.equal(db.url);
    const before = Date.now();
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('orders', 'e1', { amount: 12 })] }]);
    const [stored, ...rest] = await all(store);
    expect(rest).to.deep.equal([]);
    expect(outcome).to.deep.equal({
      id: 'j1',
      stored: 1,
      dropped: 0,
      conflicts: 0,
      redelivered: false,
      results: [{ status: 'stored', seq: stored!.seq }],
    });
    expect(stored).to.deep.include({
      topic: 'orders',
      event_id: 'e1',
      timestamp: '2025-10-24T00:00:00Z',
      source: 'unit',
      payload: { amount: 12 },
    });
    expect(stored!.seq).to.be.a('number').and.at.least(1);
    expect(new Date(stored!.processed_at).toISOString()).to.equal(stored!.processed_at);
    expect(Date.parse(stored!.processed_at)).to.be.within(before - 1000, Date.now() + 1000);
    expect(await store.lastSeq()).to.equal(stored!.seq);
    expect(await store.integrityCheck()).to.deep.equal([]);
    expect(await store.sizeBytes()).to.be.above(0);
    await store.ping();

    const withPassword = new URL(db.url);
    withPassword.password = 's3cret';
    // trust auth ignores the password: the store opens, and never says it.
    const other = await openPostgresStore({ url: withPassword.toString() });
    opened.push(other);
    expect(other.location).to.equal(db.url);
    expect(other.location).not.to.include('s3cret');
  });

  it('reads counts and committed job ids from one snapshot while writers commit', async function () {
    this.timeout(60_000);
    const writers = [await open(2), await open(2)];
    const reader = await open(2);
    const size = 7;
    const ids = Array.from({ length: 120 }, (_, i) => `c${i}`);
    const job = (i: number): JobToCommit => ({
      id: ids[i]!,
      events: Array.from({ length: size }, (_, k) => ev(`t${k % 3}`, `e${(i * 5 + k) % 400}`)),
    });
    let done = false;
    const writing = Promise.all(
      writers.map(async (w, n) => {
        for (let i = n; i < ids.length; i += writers.length) await w.commitJobs([job(i)]);
      }),
    )
      // Held, not thrown, until the reads are done: then the writers' error fails the test.
      .then(() => undefined, (err: unknown) => err)
      .finally(() => (done = true));
    let reads = 0;
    while (!done) {
      const c = await reader.counts({ jobIds: ids, topicsLimit: 10 });
      expect(c.received, 'received matches the committed jobs').to.equal(c.committed.size * size);
      expect(c.jobs).to.equal(c.committed.size);
      expect(c.received).to.equal(c.uniqueProcessed + c.duplicateDropped);
      expect(c.topics.reduce((n, t) => n + t.events, 0)).to.equal(c.uniqueProcessed);
      reads++;
    }
    rethrow(await writing);
    expect(reads).to.be.above(2);
    expect((await counts(reader, ids)).committed.size).to.equal(ids.length);
  });

  it('stores payloads and sources exactly: "__proto__", NUL, emoji', async () => {
    const store = await open();
    const payload = JSON.parse('{"__proto__": {"admin": true}, "n": 1.5, "s": "é😀\\u0000", "a": [null]}') as Record<string, unknown>;
    const source = 'src\u0000\u0007é😀';
    const [o] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1', payload, { source, timestamp: '2025-10-24T00:00:00.123456789+05:30' })] }]);
    const [got] = await all(store);
    expect(Object.keys(got!.payload as object)).to.deep.equal(['__proto__', 'n', 's', 'a']);
    expect(JSON.stringify(got!.payload)).to.equal(JSON.stringify(payload));
    expect(Object.getPrototypeOf(got!.payload)).to.equal(Object.prototype);
    expect(got).to.deep.include({ source, timestamp: '2025-10-24T00:00:00.123456789+05:30' });
    const [again] = await store.commitJobs([{ id: 'j2', events: [ev('t', 'e1', payload, { source, timestamp: '2025-10-24T00:00:00.123456789+05:30' })] }]);
    expect(statuses(again!)).to.deep.equal(['duplicate']);
    expect(again!.results[0]!.seq).to.equal(o!.results[0]!.seq);
  });

  it('says DATABASE_URL, and never the password, when the URL is bad or the database does not answer', async () => {
    const fail = async (url: string): Promise<Error> => {
      try {
        const s = await openPostgresStore({ url });
        await s.close();
      } catch (err) {
        return err as Error;
      }
      throw new Error(`opened ${url}`);
    };
    for (const url of ['not a url', 'mysql://u:hunter2@127.0.0.1/x']) {
      const err = await fail(url);
      expect(err.name).to.equal('StoreConfigError');
      expect(err.message).to.include('DATABASE_URL').and.not.include('hunter2');
    }
    const refused = await fail('postgres://u:hunter2@127.0.0.1:1/x');
    expect(refused.name).to.equal('StoreConfigError');
    expect(refused.message).to.include('DATABASE_URL').and.include('127.0.0.1:1').and.not.include('hunter2');
    const missing = new URL(db.url);
    missing.pathname = `/${db.name}_missing`;
    missing.password = 'hunter2';
    const noDb = await fail(missing.toString());
    expect(noDb.message).to.include('DATABASE_URL').and.include(`${db.name}_missing`).and.not.include('hunter2');
  });

  it('creates its tables once when several processes start together, and opens without migrating after', async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open(1)));
    await stores[0]!.commitJobs([{ id: 'j1', events: [ev('t', 'e1')] }]);
    const plain = await openPostgresStore({ url: db.url, migrate: false });
    opened.push(plain);
    expect(await identities(plain)).to.deep.equal(['t/e1']);
  });

  it('stores each identity once when two stores commit the same identities at once', async function () {
    this.timeout(60_000);
    const a = await open(4);
    const b = await open(4);
    const jobsPerWriter = 60;
    const job = (w: string, i: number): JobToCommit =>
      // Every third job both writers hold (a job redelivered to another worker); the rest
      // are their own jobs over the same identities.
      i % 3 === 0
        ? { id: `both-${i}`, events: [ev('shared', `s${i}`), ev('shared', `s${i + 1}`)] }
        : { id: `${w}-${i}`, events: [ev('shared', `s${i}`), ev('shared', `s${(i * 7) % jobsPerWriter}`), ev(w, `own${i}`)] };
    const run = async (store: Store, w: string) => {
      const outs: JobOutcome[] = [];
      // Group commits of a few jobs, as the committer makes them.
      for (let i = 0; i < jobsPerWriter; i += 4) {
        const group = Array.from({ length: Math.min(4, jobsPerWriter - i) }, (_, k) => job(w, i + k));
        outs.push(...(await store.commitJobs(group)));
      }
      return outs;
    };
    const outcomes = (await Promise.all([run(a, 'w1'), run(b, 'w2')])).flat();
    const redelivered = outcomes.filter((o) => o.redelivered);
    expect(redelivered).to.have.length(jobsPerWriter / 3);
    // A redelivery answers as the commit that won.
    for (const r of redelivered) {
      const won = outcomes.find((o) => o.id === r.id && !o.redelivered)!;
      expect(r.results).to.deep.equal(won.results);
    }
    const keys = await identities(a);
    expect(new Set(keys).size).to.equal(keys.length);
    const expected = new Set<string>();
    for (const o of outcomes) for (const r of o.results) expect(r.seq).to.be.above(0);
    for (let i = 0; i < jobsPerWriter; i++) {
      for (const w of ['w1', 'w2']) for (const e of job(w, i).events) expected.add(`${e.topic}/${e.event_id}`);
    }
    expect(new Set(keys)).to.deep.equal(expected);
    const stored = outcomes.reduce((n, o) => n + o.stored, 0);
    const dropped = outcomes.reduce((n, o) => n + o.dropped, 0);
    const c = await counts(a);
    expect(c).to.deep.include({ uniqueProcessed: expected.size, duplicateDropped: dropped, redeliveries: jobsPerWriter / 3 });
    expect(stored).to.equal(expected.size);
    expect(c.received).to.equal(c.uniqueProcessed + c.duplicateDropped);
    expect(c.jobs).to.equal(outcomes.length - redelivered.length);
    // Every 'stored' verdict names its own event, each seq once.
    const seqOf = new Map((await all(a)).map((e) => [e.seq, `${e.topic}/${e.event_id}`]));
    const storedSeqs = outcomes.flatMap((o) => (o.redelivered ? [] : o.results.filter((r) => r.status === 'stored').map((r) => r.seq)));
    expect(new Set(storedSeqs).size).to.equal(storedSeqs.length);
    expect(storedSeqs.every((s) => seqOf.has(s))).to.equal(true);
    expect(await b.integrityCheck()).to.deep.equal([]);
  });

  it('commits concurrently as well when the database defaults to serializable transactions', async function () {
    this.timeout(60_000);
    await (await open(1)).close(); // the tables exist
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query(`ALTER DATABASE ${db.name} SET default_transaction_isolation = 'serializable'`);
    await client.end();
    const [a, b] = [await open(2), await open(2)];
    const job = (w: string, i: number): JobToCommit => ({ id: `${w}-${i}`, events: [ev('t', `e${i}`), ev('t', `e${i + 1}`), ev(w, `${i}`)] });
    await Promise.all(
      [a, b].map(async (s, n) => {
        for (let i = 0; i < 40; i++) await s.commitJobs([job(`w${n}`, i)]);
      }),
    );
    const c = await counts(a);
    expect(c).to.deep.include({ received: 240, uniqueProcessed: 41 + 80, jobs: 80 });
    expect(await identities(b)).to.have.length(121);
  });

  it('never lets a cursor skip an event while four writers commit', async function () {
    this.timeout(120_000);
    const writers = await Promise.all(Array.from({ length: 4 }, () => open(2)));
    const reader = await open(2);
    const jobsPerWriter = 150;
    const sizeOf = (n: number, i: number) => 1 + ((i * 7 + n) % 12);
    let unique = jobsPerWriter;
    for (let n = 0; n < writers.length; n++) for (let i = 0; i < jobsPerWriter; i++) unique += sizeOf(n, i) - 1;
    let writing = true;
    const written = Promise.all(
      writers.map(async (w, n) => {
        for (let i = 0; i < jobsPerWriter; i++) {
          // Sizes vary so that commits take different times; some identities are shared.
          const events = Array.from({ length: sizeOf(n, i) }, (_, k) => ev(`t${k % 3}`, k === 0 ? `shared-${i}` : `w${n}-${i}-${k}`));
          await w.commitJobs([{ id: `w${n}-${i}`, events }]);
        }
      }),
    )
      .then(() => undefined, (err: unknown) => err)
      .finally(() => (writing = false));

    const seen: StoredEvent[] = [];
    let cursor = 0;
    let pages = 0;
    const tops: { top: number; visible: number }[] = [];
    let rounds = 0;
    // Pages on while writers commit, and once more after, as a subscriber would.
    for (let last = false; ; ) {
      const done = !writing;
      for (;;) {
        const page = await reader.listEvents({ after: cursor, limit: 5 });
        pages++;
        for (const e of page) {
          expect(e.seq, 'seqs come in increasing order').to.be.above(cursor);
          cursor = e.seq;
          seen.push(e);
        }
        if (page.length < 5) break;
      }
      const top = await reader.lastSeq();
      expect(top).to.be.at.least(cursor);
      // lastSeq is a start point too ("from now on"): everything up to it is visible already.
      if (rounds++ % 3 === 0) tops.push({ top, visible: (await all(reader)).filter((e) => e.seq <= top).length });
      if (last) break;
      last = done;
    }
    rethrow(await written);

    const everything = await all(reader);
    expect(everything).to.have.length(unique);
    expect(pages).to.be.above(20);
    const seenSeqs = new Set(seen.map((e) => e.seq));
    const missing = everything.filter((e) => !seenSeqs.has(e.seq));
    expect(missing.map((e) => e.seq), 'events the cursor skipped').to.deep.equal([]);
    expect(seen.map((e) => e.seq)).to.deep.equal(everything.map((e) => e.seq));
    expect(tops.length).to.be.above(2);
    for (const { top, visible } of tops) {
      expect(visible, `events up to lastSeq ${top} when it was read`).to.equal(everything.filter((e) => e.seq <= top).length);
    }
    const c = await counts(reader);
    expect(c.uniqueProcessed).to.equal(everything.length);
    expect(c.received).to.equal(c.uniqueProcessed + c.duplicateDropped);
  });
  it('looks up the stored copies key by key while its tables are young and never analyzed', async function () {
    this.timeout(60_000);
    const store = await open();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      // As in a store's first minutes: autovacuum has not analyzed the tables yet.
      for (const t of ['identities', 'events', 'gone']) await admin.query(`ALTER TABLE ${t} SET (autovacuum_enabled = false)`);
      for (let j = 0; j < 20; j++) {
        await store.commitJobs([{ id: `young-${j}`, events: Array.from({ length: 1000 }, (_, k) => ev(`t${k % 8}`, `e-${j}-${k}`)) }]);
      }
      // A commit's lookup: 45 identities, some stored, some new.
      const rows = Array.from({ length: 45 }, (_, k) => ({ t: `t${k % 8}`, i: k % 2 === 0 ? `e-3-${k}` : `new-${k}`, k }));
      const plan = await admin.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${STORED_COPIES_SQL}`, [JSON.stringify(rows), new Date(0)]);
      const scans: string[] = [];
      const walk = (node: Record<string, unknown>): void => {
        if (typeof node['Relation Name'] === 'string') scans.push(`${String(node['Node Type'])} on ${node['Relation Name']}`);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk((plan.rows[0]!['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
      expect(scans.filter((s) => !s.startsWith('Index')), JSON.stringify(scans)).to.deep.equal([]);
      expect(scans.map((s) => s.split(' on ')[1]).sort()).to.deep.equal(['events', 'gone', 'identities']);
      // And the store's own commit of such a mix finds the stored copies.
      const [outcome] = await store.commitJobs([{ id: 'mix', events: rows.map((r) => ev(r.t, r.i)) }]);
      expect(outcome!.stored).to.equal(22);
      expect(outcome!.dropped).to.equal(23);
    } finally {
      await admin.end();
    }
  });
});
