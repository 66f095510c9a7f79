// The SQLite store's dedup key and its format: growing ids keep their order, ids that share
// a key stay exact, and a store written before the format was recorded (format 0, a plain
// hash: fixtures/store-format-0.sql, the dump of a store made by the code of that time) is
// rebuilt on open, once, while two workers and a reader open it at the same time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { dedupKey } from '../../../shared/store/identity.js';
import { STORE_FILE, STORE_FORMAT } from '../../../shared/store/sqlite/schema.js';
import { openSqliteStore, type SqliteStore } from '../../../shared/store/sqlite/store.js';
import { ev as fixtureEvent, fixtureEvents, FIXTURE_EVENTS } from '../fixtures/format-0-events.js';
import { ev as format3Event, FORMAT_3_ERASED, FORMAT_3_EVENTS, FORMAT_3_EXPIRED, format3Events } from '../fixtures/format-3-events.js';
import { all, ev, identities } from './behaviour.js';
import { startWriter } from './writer-process.js';

const FORMAT_0 = path.join(import.meta.dirname, '..', 'fixtures', 'store-format-0.sql');
const FORMAT_3 = path.join(import.meta.dirname, '..', 'fixtures', 'store-format-3.sql');

describe('sqlite store format', () => {
  let dir: string;
  let opened: SqliteStore[];
  const open = (): SqliteStore => {
    const store = openSqliteStore({ dataDir: dir });
    opened.push(store);
    return store;
  };
  const raw = <T>(fn: (db: Database.Database) => T): T => {
    const db = new Database(path.join(dir, STORE_FILE));
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  const tiers = () =>
    raw((db) => ({
      main: db.prepare('SELECT count(*) FROM dedup').pluck().get() as number,
      recent: db.prepare('SELECT count(*) FROM dedup_recent').pluck().get() as number,
      overflow: db.prepare('SELECT count(*) FROM dedup_overflow').pluck().get() as number,
      format: db.pragma('user_version', { simple: true }) as number,
    }));
  /** The old store, made again from its dump (kept as text: no database file in the repository). */
  const copyFixture = () => raw((db) => db.exec(fs.readFileSync(FORMAT_0, 'utf8')));
  /** Every fixture event and the forced collision again: each must be a duplicate. */
  const fixtureCopies = () => [...fixtureEvents(0, FIXTURE_EVENTS), fixtureEvent('t0', 'collides', -1)];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-format-'));
    opened = [];
  });
  afterEach(async () => {
    for (const store of opened) await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives growing ids growing keys, next to each other', () => {
    const keys = Array.from({ length: 2000 }, (_, n) => dedupKey('orders', `ord-${String(n).padStart(12, '0')}`));
    // Runs of ids sharing all but their last characters share a hash: sorted, adjacent.
    for (let n = 1; n < 1000; n++) expect(keys[n]).to.be.above(keys[n - 1]!);
    expect(new Set(keys).size).to.equal(keys.length);
    for (const k of keys) expect(Number.isSafeInteger(k) && k >= 0).to.equal(true);
    expect(dedupKey('a', 'x-0001')).to.not.equal(dedupKey('b', 'x-0001'));
  });

  it('stores and finds ids whose keys are the same, without help', async () => {
    // Characters above "z" share the code of "z": ("t", "aaaa{") and ("t", "aaaa|") share a key.
    expect(dedupKey('t', 'aaaa{')).to.equal(dedupKey('t', 'aaaa|'));
    const store = open();
    const [first] = await store.commitJobs([{ id: 'j1', events: [ev('t', 'aaaa{', { v: 1 }), ev('t', 'aaaa|', { v: 2 })] }]);
    expect(first).to.include({ stored: 2, dropped: 0 });
    expect(tiers().overflow).to.equal(1);
    const [again] = await open().commitJobs([{ id: 'j2', events: [ev('t', 'aaaa|', { v: 2 }), ev('t', 'aaaa{', { v: 3 })] }]);
    expect(again).to.include({ stored: 0, dropped: 2, conflicts: 1 });
    expect((await store.getEvent('t', 'aaaa|'))?.event.payload).to.deep.equal({ v: 2 });
  });

  it('rebuilds the dedup keys of a store of format 0 on open, and answers as that store did', async () => {
    copyFixture();
    expect(tiers()).to.deep.include({ format: 0, main: 300, recent: 101, overflow: 1 });
    const store = open();
    const after = tiers();
    expect(after.format).to.equal(STORE_FORMAT);
    expect(after.main + after.overflow).to.equal(FIXTURE_EVENTS + 1);
    expect(after.recent).to.equal(0);

    const [copies] = await store.commitJobs([{ id: 'copies', events: fixtureCopies() }]);
    expect(copies).to.include({ stored: 0, dropped: FIXTURE_EVENTS + 1, conflicts: 0 });
    const [fresh] = await store.commitJobs([{ id: 'fresh', events: [...fixtureEvents(FIXTURE_EVENTS, FIXTURE_EVENTS + 50), ...fixtureEvents(0, 5)] }]);
    expect(fresh).to.include({ stored: 50, dropped: 5 });
    expect((await store.getEvent('t0', 'collides'))?.event.payload).to.deep.equal({ n: -1 });
    const keys = await identities(store);
    expect(new Set(keys).size).to.equal(keys.length);
    expect(keys).to.have.length(FIXTURE_EVENTS + 1 + 50);
    expect(await store.counts({ jobIds: [], topicsLimit: 10 })).to.deep.include({ uniqueProcessed: FIXTURE_EVENTS + 51 });
    expect(await store.integrityCheck()).to.deep.equal([]);
  });

  it('migrates once: a reopened store keeps its recent tier', async () => {
    copyFixture();
    await open().commitJobs([{ id: 'fresh', events: fixtureEvents(FIXTURE_EVENTS, FIXTURE_EVENTS + 20) }]);
    const before = tiers();
    expect(before.recent).to.equal(20);
    open();
    expect(tiers()).to.deep.equal(before);
  });

  it('is migrated once when two workers and a reader open a store of format 0 at once', async function () {
    this.timeout(60_000);
    copyFixture();
    const jobs = 40;
    // Both processes start alike, so their opens (and migrations) race; the reader opens as
    // they write.
    const writers = [startWriter(dir, 'w1', jobs), startWriter(dir, 'w2', jobs)];
    await Promise.all(writers.map((w) => w.ready));
    const reader = open();
    for (const w of writers) w.go();
    await Promise.all(writers.map((w) => w.done));
    const [copies] = await reader.commitJobs([{ id: 'copies', events: fixtureCopies() }]);
    expect(copies).to.include({ stored: 0, dropped: FIXTURE_EVENTS + 1 });
    const keys = await identities(reader);
    expect(new Set(keys).size).to.equal(keys.length);
    expect(keys).to.have.length(FIXTURE_EVENTS + 1 + jobs + 2 * ((jobs * 3) / 4));
    const t = tiers();
    expect(t.format).to.equal(STORE_FORMAT);
    expect(t.main + t.recent + t.overflow).to.equal(keys.length);
    // The writers' keys are still in the recent tier: no rebuild ran after they wrote.
    expect(t.recent).to.equal(keys.length - FIXTURE_EVENTS - 1);
    expect(await reader.integrityCheck()).to.deep.equal([]);
    expect((await all(reader)).map((e) => e.seq)).to.have.length(keys.length);
  });

  it('keeps the deleted identities of a store of format 3 with topic ids, and answers as that store did', async () => {
    raw((db) => db.exec(fs.readFileSync(FORMAT_3, 'utf8')));
    const gone = () => raw((db) => db.prepare('SELECT * FROM gone ORDER BY seq').raw().all() as unknown[][]);
    const before = gone();
    expect(tiers().format).to.equal(3);
    expect(before).to.have.length(FORMAT_3_EXPIRED + FORMAT_3_ERASED.length);

    const store = open();
    expect(tiers().format).to.equal(STORE_FORMAT);
    const topics = raw((db) => new Map(db.prepare('SELECT id, topic FROM topic_ids').raw().all() as [number, string][]));
    expect([...topics.values()].sort()).to.deep.equal(['logs/app', 'orders', 't']);
    // Each row as it was, its topic's name now an id: same seqs, event_ids (packed or not), flags.
    expect(gone().map(([seq, id, eventId, erased]) => [seq, topics.get(id as number), eventId, erased])).to.deep.equal(before);

    const events = format3Events();
    for (const e of events.slice(0, FORMAT_3_EXPIRED)) expect(await store.goneReason(e.topic, e.event_id), e.event_id).to.equal('expired');
    for (const e of FORMAT_3_ERASED) expect(await store.goneReason(e.topic, e.event_id), e.event_id).to.equal('erased');
    const kept = events.slice(FORMAT_3_EXPIRED).filter((e) => !FORMAT_3_ERASED.some((x) => x.event_id === e.event_id));
    expect((await identities(store)).sort()).to.deep.equal(kept.map((e) => `${e.topic}/${e.event_id}`).sort());

    // Every identity is still known, from the lookups and from a new writer's filter alike.
    const [copies] = await store.commitJobs([{ id: 'copies', events }]);
    expect(copies).to.include({ stored: 0, dropped: FORMAT_3_EVENTS, conflicts: 0 });
    const filtered = open();
    await filtered.prepareWrites();
    const [fresh] = await filtered.commitJobs([{ id: 'fresh', events: [...events, format3Event('logs/app', 'line-new', 99), format3Event('new', 'x', 100)] }]);
    expect(fresh).to.include({ stored: 2, dropped: FORMAT_3_EVENTS });

    // Deleting more: known topics keep their ids, a new one gets the next.
    expect(await store.eraseEvent('new', 'x')).to.include({ status: 'erased' });
    expect(await store.eraseEvent('orders', kept.find((e) => e.topic === 'orders')!.event_id)).to.include({ status: 'erased' });
    expect(raw((db) => db.prepare('SELECT topic FROM topic_ids ORDER BY id').pluck().all()).slice(3)).to.deep.equal(['new']);
    expect(await store.goneReason('new', 'x')).to.equal('erased');
    const [again] = await filtered.commitJobs([{ id: 'again', events: [format3Event('new', 'x', 100)] }]);
    expect(again).to.include({ stored: 0, dropped: 1 });
    expect(await store.integrityCheck()).to.deep.equal([]);
  });

  it('refuses a store of a newer format', () => {
    open();
    raw((db) => db.pragma(`user_version = ${STORE_FORMAT + 1}`));
    expect(() => open()).to.throw(/newer/);
  });
});
