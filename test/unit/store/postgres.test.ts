// The PostgreSQL store on a real server: everything every store guarantees (behaviour.ts,
// the same tests the SQLite store passes), more of the same from this adapter's angle, and
// the guarantee that is hard with concurrent writers: a cursor never skips.
import { expect } from 'chai';
import pg from 'pg';
import type { Event } from '../../../shared/schema.js';
import type { JobOutcome, JobToCommit, Store, StoredEvent } from '../../../shared/store/port.js';
import { openPostgresStore } from '../../../shared/store/postgres/store.js';
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
  storeBehaviour({ open: () => open() });

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

  it('gives each event its verdict: stored, duplicate or conflict, within a job too', async () => {
    const store = await open();
    const base = ev('t', 'a', { x: 1, y: [1, 2] }, { timestamp: '2025-10-24T07:00:00+07:00' });
    const [first] = await store.commitJobs([
      {
        id: 'j1',
        events: [
          base,
          ev('t', 'a', { y: [1, 2], x: 1 }, { timestamp: '2025-10-24T00:00:00Z' }), // key order, offset: same content
          ev('t', 'a', { x: 2, y: [1, 2] }, { timestamp: '2025-10-24T07:00:00+07:00' }), // payload differs
          ev('t', 'b'),
          ev('u', 'a'), // the same id under another topic is another event
        ],
      },
    ]);
    expect(statuses(first!)).to.deep.equal(['stored', 'duplicate', 'conflict', 'stored', 'stored']);
    expect(first).to.include({ stored: 3, dropped: 2, conflicts: 1, redelivered: false });
    const seqA = first!.results[0]!.seq;
    expect(first!.results.slice(1, 3).map((r) => r.seq)).to.deep.equal([seqA, seqA]);
    const seqs = [first!.results[0]!.seq, first!.results[3]!.seq, first!.results[4]!.seq];
    expect(seqs).to.deep.equal((await all(store)).map((e) => e.seq));

    const [second] = await store.commitJobs([
      {
        id: 'j2',
        events: [
          ev('t', 'a', { x: 1, y: [1, 2] }, { timestamp: '2025-10-24T00:00:00.000Z' }),
          { ...base, source: 'elsewhere' },
          { ...base, timestamp: '2025-10-24T00:00:01Z' },
          ev('t', 'b', {}, { timestamp: '2025-10-24T02:00:00+02:00' }),
          ev('t', 'c'),
          ev('t', 'c', { other: true }),
        ],
      },
    ]);
    expect(statuses(second!)).to.deep.equal(['duplicate', 'conflict', 'conflict', 'duplicate', 'stored', 'conflict']);
    expect(second!.results.map((r) => r.seq).slice(0, 4)).to.deep.equal([seqA, seqA, seqA, seqs[1]]);
    expect(second!.results[5]!.seq).to.equal(second!.results[4]!.seq);
    expect(second).to.include({ stored: 1, dropped: 5, conflicts: 3 });

    const [only] = (await all(store)).filter((e) => e.event_id === 'a' && e.topic === 't');
    expect(only).to.deep.include({ payload: { x: 1, y: [1, 2] }, timestamp: '2025-10-24T07:00:00+07:00', source: 'unit' });
  });

  it('lets a later job of one group commit see the earlier ones', async () => {
    const store = await open();
    const outcomes = await store.commitJobs([
      { id: 'j1', events: [ev('t', 'e1')] },
      { id: 'j2', events: [ev('t', 'e1'), ev('t', 'e2', { v: 1 })] },
      { id: 'j3', events: [ev('t', 'e2', { v: 2 })] },
    ]);
    expect(outcomes.map(statuses)).to.deep.equal([['stored'], ['duplicate', 'stored'], ['conflict']]);
    expect(outcomes[1]!.results[0]!.seq).to.equal(outcomes[0]!.results[0]!.seq);
    expect(outcomes[2]!.results[0]!.seq).to.equal(outcomes[1]!.results[1]!.seq);
    expect(await identities(store)).to.deep.equal(['t/e1', 't/e2']);
    expect(await counts(store)).to.deep.include({ received: 4, uniqueProcessed: 2, duplicateDropped: 2, conflicts: 1, jobs: 3 });
  });

  it('changes nothing when a committed job comes again, and answers as the first time', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j0', events: [ev('t', 'old', { v: 0 })] }]);
    const j1: JobToCommit = {
      id: 'j1',
      events: [ev('t', 'e1'), ev('t', 'old', { v: 1 }), ev('t', 'e1', { v: 9 }), ev('t', 'old', { v: 0 }), ev('t', 'e2')],
    };
    const j2: JobToCommit = { id: 'j2', events: [ev('t', 'e2'), ev('t', 'e3')] };
    const first = await store.commitJobs([j1, j2]);
    expect(first.map(statuses)).to.deep.equal([
      ['stored', 'conflict', 'conflict', 'duplicate', 'stored'],
      ['duplicate', 'stored'],
    ]);
    const before = await counts(store, ['j0', 'j1', 'j2']);
    const events = await all(store);
    const history = await store.getEvent('t', 'old');

    // Redelivered alone, in another order, together with a new job, and twice in one call.
    const again = await store.commitJobs([j2, j1]);
    const mixed = await store.commitJobs([{ id: 'j3', events: [ev('t', 'e3'), ev('t', 'e4')] }, j1, j1]);
    for (const [o, f] of [
      [again[0]!, first[1]!],
      [again[1]!, first[0]!],
      [mixed[1]!, first[0]!],
      [mixed[2]!, first[0]!],
    ] as const) {
      expect(o).to.deep.equal({ id: f.id, stored: 0, dropped: 0, conflicts: 0, redelivered: true, results: f.results });
    }
    expect(mixed[0]).to.include({ stored: 1, dropped: 1, redelivered: false });

    const after = await counts(store, ['j0', 'j1', 'j2', 'j3']);
    expect(after).to.deep.include({
      received: before.received + 2,
      uniqueProcessed: before.uniqueProcessed + 1,
      duplicateDropped: before.duplicateDropped + 1,
      conflicts: before.conflicts,
      jobs: before.jobs + 1,
      redeliveries: before.redeliveries + 4,
    });
    expect((await all(store)).slice(0, events.length)).to.deep.equal(events);
    expect(await store.getEvent('t', 'old')).to.deep.equal(history);
    expect(before).to.deep.include({ received: 8, uniqueProcessed: 4, duplicateDropped: 4, conflicts: 2, jobs: 3 });
  });

  it('recognises a job id given twice in one commit', async () => {
    const store = await open();
    const job = { id: 'j1', events: [ev('t', 'e1'), ev('t', 'e1')] };
    const [a, b] = await store.commitJobs([job, job]);
    expect(a).to.include({ stored: 1, dropped: 1, redelivered: false });
    expect(b).to.deep.equal({ ...a, stored: 0, dropped: 0, conflicts: 0, redelivered: true });
    expect(await counts(store)).to.deep.include({ received: 2, uniqueProcessed: 1, duplicateDropped: 1, jobs: 1, redeliveries: 1 });
  });

  it('counts received as unique plus dropped, with sorted topics, and committed job ids from the same read', async () => {
    const store = await open();
    const empty = await counts(store, ['j1']);
    expect(empty).to.deep.equal({
      received: 0,
      uniqueProcessed: 0,
      duplicateDropped: 0,
      conflicts: 0,
      redeliveries: 0,
      jobs: 0,
      topicsCount: 0,
      topics: [],
      committed: new Set(),
    });
    await store.commitJobs([{ id: 'j1', events: [ev('zeta', '1'), ev('alpha', '1'), ev('Mid', '1'), ev('zeta', '1')] }]);
    await store.commitJobs([{ id: 'j2', events: [ev('alpha', '2'), ev('alpha', '1', { x: 1 }), ev('zeta', '2')] }]);
    const c = await counts(store, ['j1', 'j2', 'nope']);
    expect(c).to.deep.include({ received: 7, uniqueProcessed: 5, duplicateDropped: 2, conflicts: 1, jobs: 2, topicsCount: 3 });
    expect(c.received).to.equal(c.uniqueProcessed + c.duplicateDropped);
    expect(c.committed).to.deep.equal(new Set(['j1', 'j2']));
    expect(c.topics).to.deep.equal([
      { topic: 'Mid', events: 1, dropped: 0, conflicts: 0 },
      { topic: 'alpha', events: 2, dropped: 1, conflicts: 1 },
      { topic: 'zeta', events: 2, dropped: 1, conflicts: 0 },
    ]);
    expect((await store.counts({ jobIds: [], topicsLimit: 2 })).topics.map((t) => t.topic)).to.deep.equal(['Mid', 'alpha']);
    expect(c.uniqueProcessed).to.equal((await all(store)).length);
    expect(await store.committedJobIds([])).to.deep.equal(new Set());
    expect(await store.committedJobIds(['j1', 'x', 'j2', 'j1'])).to.deep.equal(new Set(['j1', 'j2']));
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

  it('explains an identity: its stored copy, copies and conflicts, first and last seen', async () => {
    const store = await open();
    expect(await store.getEvent('t', 'nope')).to.equal(undefined);
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'a/b', { v: 1 }), ev('t', 'a/b', { v: 1 })] }]);
    const once = await store.getEvent('t', 'a/b');
    expect(once).to.deep.include({ copies: 2, conflicts: 0 });
    expect(once!.first_seen_at).to.equal(once!.event.processed_at);
    expect(once!.last_seen_at).to.equal(once!.event.processed_at);
    await new Promise((r) => setTimeout(r, 5));
    await store.commitJobs([{ id: 'j2', events: [ev('t', 'a/b', { v: 2 }), ev('t', 'a/b', { v: 1 }), ev('t', 'other')] }]);
    const h = await store.getEvent('t', 'a/b');
    expect(h).to.deep.include({ copies: 4, conflicts: 1, first_seen_at: once!.first_seen_at });
    expect(h!.event).to.deep.equal(once!.event);
    expect(h!.event.payload).to.deep.equal({ v: 1 });
    expect(Date.parse(h!.last_seen_at)).to.be.above(Date.parse(h!.first_seen_at));
    expect(await store.getEvent('t', 'other')).to.deep.include({ copies: 1, conflicts: 0 });
    expect(await store.getEvent('u', 'a/b')).to.equal(undefined);
  });

  it('lists events by topic after a cursor, and topics page by page', async () => {
    const store = await open();
    const events: Event[] = [];
    for (let i = 0; i < 10; i++) events.push(ev(i % 2 === 0 ? 'even' : 'odd', `e${i}`));
    for (const t of ['b', 'a', 'Z', 'c', 'é', 'd']) events.push(ev(t, 'x'));
    await store.commitJobs([{ id: 'j1', events }]);
    const page1 = await store.listEvents({ topic: 'even', after: 0, limit: 2 });
    expect(page1.map((e) => e.event_id)).to.deep.equal(['e0', 'e2']);
    const page2 = await store.listEvents({ topic: 'even', after: page1[1]!.seq, limit: 10 });
    expect(page2.map((e) => e.event_id)).to.deep.equal(['e4', 'e6', 'e8']);
    expect(await store.listEvents({ topic: 'none', after: 0, limit: 10 })).to.deep.equal([]);
    const head = await store.listEvents({ after: 0, limit: 3 });
    expect(head.map((e) => e.event_id)).to.deep.equal(['e0', 'e1', 'e2']);
    expect(await store.listEvents({ after: head[2]!.seq, limit: 100 })).to.have.length(13);

    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.listTopics({ after, limit: 3 });
      if (page.length === 0) break;
      expect(page.length).to.be.at.most(3);
      names.push(...page.map((t) => t.topic));
      after = page.at(-1)!.topic;
    }
    expect(names).to.deep.equal(['Z', 'a', 'b', 'c', 'd', 'even', 'odd', 'é']);
    expect(await store.listTopics({ after: 'c', limit: 2 })).to.deep.equal([
      { topic: 'd', events: 1, dropped: 0, conflicts: 0 },
      { topic: 'even', events: 5, dropped: 0, conflicts: 0 },
    ]);
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

  it('leaves nothing behind when a commit fails', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j0', events: [ev('t', 'e0')] }]);
    const before = await counts(store, ['j1', 'j2']);
    const events = await all(store);
    const broken = { ...ev('t', 'e3'), payload: { n: 1n } as Record<string, unknown> };
    let failed = false;
    try {
      await store.commitJobs([
        { id: 'j1', events: [ev('t', 'e1')] },
        { id: 'j2', events: [ev('t', 'e2'), ev('t', 'e0'), broken] },
      ]);
    } catch {
      failed = true;
    }
    expect(failed).to.equal(true);
    expect(await counts(store, ['j1', 'j2'])).to.deep.equal(before);
    expect(await all(store)).to.deep.equal(events);
    expect(await store.getEvent('t', 'e0')).to.deep.include({ copies: 1 });
    const [outcome] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e2'), ev('t', 'e3')] }]);
    expect(outcome).to.include({ stored: 3, dropped: 0, redelivered: false });
    expect(await store.integrityCheck()).to.deep.equal([]);
  });

  it('keeps events, counts, job ids and dedup across close and reopen', async () => {
    const first = await open();
    await first.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { n: 1 }), ev('u', 'e2'), ev('t', 'e1', { n: 3 })] }]);
    const events = await all(first);
    const c = await counts(first, ['j1']);
    const history = await first.getEvent('t', 'e1');
    await first.close();

    const reopened = await open();
    expect(await all(reopened)).to.deep.equal(events);
    expect(await counts(reopened, ['j1'])).to.deep.equal(c);
    expect(await reopened.getEvent('t', 'e1')).to.deep.equal(history);
    const [late] = await reopened.commitJobs([{ id: 'j2', events: [ev('t', 'e1', { n: 1 })] }]);
    expect(late).to.include({ stored: 0, dropped: 1 });
    const [redelivered] = await reopened.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { n: 1 }), ev('u', 'e2'), ev('t', 'e1', { n: 3 })] }]);
    expect(redelivered).to.include({ redelivered: true });
    expect(statuses(redelivered!)).to.deep.equal(['stored', 'stored', 'conflict']);
    await reopened.commitJobs([{ id: 'j3', events: [ev('t', 'e3')] }]);
    const after = await all(reopened);
    expect(after.at(-1)!.seq).to.be.above(events.at(-1)!.seq);
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
});
