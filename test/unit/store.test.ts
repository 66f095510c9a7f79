// The SQLite store on a real file: exactly-once effect per (topic, event_id), redelivered
// jobs recognised, counts that agree with what is stored, across handles and reopenings.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import type { Event } from '../../shared/schema.js';
import { STORE_FILE, identityHash, openStore, type JobOutcome, type Store } from '../../shared/store.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WRITER = path.join(import.meta.dirname, 'fixtures', 'store-writer.ts');

type Writer = { ready: Promise<void>; go(): void; done: Promise<JobOutcome[]> };

/** Another process writing to the store, as a second worker does. */
function startWriter(dataDir: string, name: string, jobs: number): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, name, String(jobs)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: ROOT, // where `--import tsx` is resolved
  });
  let out = '';
  let err = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.startsWith('ready\n')) onReady();
  });
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const done = new Promise<JobOutcome[]>((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`writer ${name} exited with ${code}: ${err}`));
      resolve(JSON.parse(out.split('\n')[1]!) as JobOutcome[]);
    });
  });
  // A writer that dies before "ready" must fail the test, not hang it.
  const readyOrDead = Promise.race([ready, done.then(() => Promise.reject(new Error(`writer ${name} ended early`)))]);
  return { ready: readyOrDead, go: () => child.stdin.end('go\n'), done };
}

function ev(topic: string, eventId: string, payload: Record<string, unknown> = {}): Event {
  return { topic, event_id: eventId, timestamp: '2025-10-24T00:00:00Z', source: 'unit', payload };
}

describe('store', () => {
  let dir: string;
  let opened: Store[];

  const open = (): Store => {
    const store = openStore({ dataDir: dir });
    opened.push(store);
    return store;
  };
  const all = (store: Store, topic?: string) => store.listEvents({ topic, after: 0, limit: 1_000_000 });
  const identities = (store: Store, topic?: string) => all(store, topic).map((e) => `${e.topic}/${e.event_id}`);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-store-'));
    opened = [];
  });

  afterEach(() => {
    for (const store of opened) store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores an event with its five fields, a seq and processed_at', () => {
    const store = open();
    const before = Date.now();
    const [outcome] = store.commitJobs([{ id: 'j1', events: [ev('orders', 'e1', { amount: 12 })] }]);
    expect(outcome).to.deep.equal({ id: 'j1', stored: 1, dropped: 0, redelivered: false });
    const [stored, ...rest] = all(store);
    expect(rest).to.deep.equal([]);
    expect(stored).to.deep.include({
      topic: 'orders',
      event_id: 'e1',
      timestamp: '2025-10-24T00:00:00Z',
      source: 'unit',
      payload: { amount: 12 },
    });
    expect(stored!.seq).to.be.a('number').and.at.least(1);
    expect(new Date(stored!.processed_at).toISOString()).to.equal(stored!.processed_at);
    expect(Date.parse(stored!.processed_at)).to.be.within(before, Date.now());
  });

  it('stores one copy of an event sent twice in one job, counting one duplicate', () => {
    const store = open();
    const [outcome] = store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e1')] }]);
    expect(outcome).to.deep.equal({ id: 'j1', stored: 1, dropped: 1, redelivered: false });
    expect(identities(store)).to.deep.equal(['t/e1']);
    expect(store.counts()).to.deep.include({ received: 2, uniqueProcessed: 1, duplicateDropped: 1, jobs: 1 });
  });

  it('stores one copy of an event sent in two jobs, counting one duplicate', () => {
    const store = open();
    store.commitJobs([{ id: 'j1', events: [ev('t', 'e1')] }]);
    const [outcome] = store.commitJobs([{ id: 'j2', events: [ev('t', 'e1'), ev('t', 'e2')] }]);
    expect(outcome).to.deep.equal({ id: 'j2', stored: 1, dropped: 1, redelivered: false });
    expect(identities(store)).to.deep.equal(['t/e1', 't/e2']);
    expect(store.counts()).to.deep.include({ received: 3, uniqueProcessed: 2, duplicateDropped: 1, jobs: 2 });
  });

  it('recognises the two copies in two jobs of one commit', () => {
    const store = open();
    const outcomes = store.commitJobs([
      { id: 'j1', events: [ev('t', 'e1')] },
      { id: 'j2', events: [ev('t', 'e1')] },
    ]);
    expect(outcomes.map((o) => [o.stored, o.dropped])).to.deep.equal([
      [1, 0],
      [0, 1],
    ]);
    expect(identities(store)).to.deep.equal(['t/e1']);
  });

  it('changes nothing when a committed job is committed again', () => {
    const store = open();
    const job = { id: 'j1', events: [ev('t', 'e1'), ev('t', 'e2'), ev('t', 'e1')] };
    store.commitJobs([job]);
    const counts = store.counts();
    const events = all(store);

    const [again] = store.commitJobs([job]);
    expect(again).to.deep.equal({ id: 'j1', stored: 0, dropped: 0, redelivered: true });
    expect(store.counts()).to.deep.equal(counts);
    expect(all(store)).to.deep.equal(events);
    expect(counts).to.deep.include({ received: 3, uniqueProcessed: 2, duplicateDropped: 1, jobs: 1 });
  });

  it('recognises a job id given twice in one commit', () => {
    const store = open();
    const job = { id: 'j1', events: [ev('t', 'e1')] };
    const outcomes = store.commitJobs([job, job]);
    expect(outcomes).to.deep.equal([
      { id: 'j1', stored: 1, dropped: 0, redelivered: false },
      { id: 'j1', stored: 0, dropped: 0, redelivered: true },
    ]);
    expect(store.counts()).to.deep.include({ received: 1, uniqueProcessed: 1, duplicateDropped: 0, jobs: 1 });
  });

  it('takes the same event_id under two topics for two events', () => {
    const store = open();
    const [outcome] = store.commitJobs([{ id: 'j1', events: [ev('a', 'e1'), ev('b', 'e1')] }]);
    expect(outcome).to.include({ stored: 2, dropped: 0 });
    expect(identities(store)).to.deep.equal(['a/e1', 'b/e1']);
  });

  it('does not confuse identities that concatenate alike', () => {
    const store = open();
    const [outcome] = store.commitJobs([{ id: 'j1', events: [ev('ab', 'c'), ev('a', 'bc')] }]);
    expect(outcome).to.include({ stored: 2, dropped: 0 });
  });

  it('keeps the first copy: later copies do not replace its fields', () => {
    const store = open();
    store.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { v: 'first' })] }]);
    store.commitJobs([
      { id: 'j2', events: [{ ...ev('t', 'e1', { v: 'second' }), timestamp: '2030-01-01T00:00:00Z', source: 'other' }] },
    ]);
    const [only, ...rest] = all(store);
    expect(rest).to.deep.equal([]);
    expect(only).to.deep.include({ payload: { v: 'first' }, timestamp: '2025-10-24T00:00:00Z', source: 'unit' });
  });

  it('numbers events in commit order', () => {
    const store = open();
    store.commitJobs([{ id: 'j1', events: [ev('t', 'c'), ev('t', 'a')] }]);
    store.commitJobs([
      { id: 'j2', events: [ev('u', 'b')] },
      { id: 'j3', events: [ev('t', 'z'), ev('t', 'a'), ev('u', 'y')] },
    ]);
    const events = all(store);
    expect(events.map((e) => e.event_id)).to.deep.equal(['c', 'a', 'b', 'z', 'y']);
    const seqs = events.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).to.be.above(seqs[i - 1]!);
  });

  it('lists by topic, after a cursor, up to a limit', () => {
    const store = open();
    const events: Event[] = [];
    for (let i = 0; i < 10; i++) events.push(ev(i % 2 === 0 ? 'even' : 'odd', `e${i}`));
    store.commitJobs([{ id: 'j1', events }]);

    const even = store.listEvents({ topic: 'even', after: 0, limit: 100 });
    expect(even.map((e) => e.event_id)).to.deep.equal(['e0', 'e2', 'e4', 'e6', 'e8']);
    expect(store.listEvents({ topic: 'none', after: 0, limit: 100 })).to.deep.equal([]);

    const page1 = store.listEvents({ topic: 'even', after: 0, limit: 2 });
    expect(page1.map((e) => e.event_id)).to.deep.equal(['e0', 'e2']);
    const page2 = store.listEvents({ topic: 'even', after: page1[1]!.seq, limit: 2 });
    expect(page2.map((e) => e.event_id)).to.deep.equal(['e4', 'e6']);
    const page3 = store.listEvents({ topic: 'even', after: page2[1]!.seq, limit: 2 });
    expect(page3.map((e) => e.event_id)).to.deep.equal(['e8']);

    const everything = store.listEvents({ after: 0, limit: 3 });
    expect(everything.map((e) => e.event_id)).to.deep.equal(['e0', 'e1', 'e2']);
    const rest = store.listEvents({ after: everything[2]!.seq, limit: 100 });
    expect(rest.map((e) => e.event_id)).to.deep.equal(['e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9']);
    expect(store.listEvents({ after: rest[6]!.seq, limit: 100 })).to.deep.equal([]);
  });

  it('counts received as unique plus dropped, with sorted topics and their counts', () => {
    const store = open();
    expect(store.counts()).to.deep.equal({ received: 0, uniqueProcessed: 0, duplicateDropped: 0, jobs: 0, topics: [] });
    store.commitJobs([{ id: 'j1', events: [ev('zeta', '1'), ev('alpha', '1'), ev('Mid', '1'), ev('zeta', '1')] }]);
    store.commitJobs([{ id: 'j2', events: [ev('alpha', '2'), ev('alpha', '1'), ev('zeta', '2')] }]);
    const counts = store.counts();
    expect(counts).to.deep.include({ received: 7, uniqueProcessed: 5, duplicateDropped: 2, jobs: 2 });
    expect(counts.received).to.equal(counts.uniqueProcessed + counts.duplicateDropped);
    expect(counts.topics).to.deep.equal([
      { topic: 'Mid', events: 1, dropped: 0 },
      { topic: 'alpha', events: 2, dropped: 1 },
      { topic: 'zeta', events: 2, dropped: 1 },
    ]);
    const names = counts.topics.map((t) => t.topic);
    expect(names).to.deep.equal([...names].sort());
    expect(counts.uniqueProcessed).to.equal(all(store).length);
  });

  it('tells which job ids it has committed', () => {
    const store = open();
    store.commitJobs([
      { id: 'p-1-a', events: [ev('t', '1')] },
      { id: 'p-1-b', events: [ev('t', '1')] },
    ]);
    expect(store.committedJobIds([])).to.deep.equal(new Set());
    expect(store.committedJobIds(['p-1-a', 'p-1-x', 'p-1-b', 'p-1-a'])).to.deep.equal(new Set(['p-1-a', 'p-1-b']));
    expect(store.committedJobIds(['p-1-x'])).to.deep.equal(new Set());
  });

  it('shares one truth between two handles on the same directory', () => {
    // Two handles are what two worker processes hold: separate connections to one file.
    const a = open();
    const b = open();
    a.commitJobs([{ id: 'j1', events: [ev('t', 'x')] }]);
    expect(identities(b)).to.deep.equal(['t/x']);
    expect(b.committedJobIds(['j1'])).to.deep.equal(new Set(['j1']));

    const [fromB] = b.commitJobs([{ id: 'j2', events: [ev('t', 'x'), ev('t', 'y')] }]);
    expect(fromB).to.include({ stored: 1, dropped: 1 });
    // j1 was committed through a: a redelivery through b changes nothing.
    const [redelivered] = b.commitJobs([{ id: 'j1', events: [ev('t', 'x')] }]);
    expect(redelivered).to.include({ redelivered: true });

    for (let i = 0; i < 50; i++) {
      const store = i % 2 === 0 ? a : b;
      store.commitJobs([{ id: `k${i}`, events: [ev('t', `e${i % 10}`), ev('u', `e${i}`)] }]);
    }
    const events = all(a);
    expect(all(b)).to.deep.equal(events);
    const keys = events.map((e) => `${e.topic}/${e.event_id}`);
    expect(new Set(keys).size).to.equal(keys.length);
    expect(new Set(events.map((e) => e.seq)).size).to.equal(events.length);
    expect(keys).to.have.length(2 + 10 + 50);
    const counts = a.counts();
    expect(b.counts()).to.deep.equal(counts);
    expect(counts).to.deep.include({ received: 1 + 2 + 100, uniqueProcessed: 62, duplicateDropped: 41, jobs: 52 });
  });

  it('stores each event once when two processes commit overlapping jobs at the same time', async function () {
    this.timeout(60_000);
    const jobs = 200;
    open(); // the schema exists before both start, as when the API has opened the store
    const writers = [startWriter(dir, 'w1', jobs), startWriter(dir, 'w2', jobs)];
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.go();
    const outcomes = (await Promise.all(writers.map((w) => w.done))).flat();

    const redelivered = outcomes.filter((o) => o.redelivered).map((o) => o.id);
    expect(redelivered).to.have.length(jobs / 4);
    expect(new Set(redelivered).size).to.equal(jobs / 4);

    const store = open();
    const keys = identities(store);
    expect(new Set(keys).size).to.equal(keys.length);
    const expectedUnique = jobs + 2 * ((jobs * 3) / 4);
    expect(keys).to.have.length(expectedUnique);
    expect(identities(store, 'shared')).to.have.length(jobs);
    const counts = store.counts();
    expect(counts).to.deep.include({
      received: jobs / 4 + 2 * ((jobs * 3) / 4) * 2,
      uniqueProcessed: expectedUnique,
      jobs: jobs / 4 + 2 * ((jobs * 3) / 4),
    });
    expect(counts.received).to.equal(counts.uniqueProcessed + counts.duplicateDropped);
    const stored = outcomes.reduce((n, o) => n + o.stored, 0);
    const dropped = outcomes.reduce((n, o) => n + o.dropped, 0);
    expect([stored, dropped]).to.deep.equal([counts.uniqueProcessed, counts.duplicateDropped]);
    const seqs = all(store).map((e) => e.seq);
    expect(new Set(seqs).size).to.equal(seqs.length);
    expect(store.integrityCheck()).to.deep.equal(['ok']);
  });

  it('leaves nothing behind when a commit fails', () => {
    const store = open();
    store.commitJobs([{ id: 'j0', events: [ev('t', 'e0')] }]);
    const counts = store.counts();
    const events = all(store);
    // A payload JSON cannot serialize makes the commit throw halfway through.
    const broken = { ...ev('t', 'e3'), payload: { n: 1n } as Record<string, unknown> };
    expect(() =>
      store.commitJobs([
        { id: 'j1', events: [ev('t', 'e1')] },
        { id: 'j2', events: [ev('t', 'e2'), broken] },
      ]),
    ).to.throw();
    expect(store.counts()).to.deep.equal(counts);
    expect(all(store)).to.deep.equal(events);
    expect(store.committedJobIds(['j1', 'j2'])).to.deep.equal(new Set());
    // Nothing was half-claimed: the same events commit normally afterwards.
    const [outcome] = store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e2'), ev('t', 'e3')] }]);
    expect(outcome).to.deep.equal({ id: 'j1', stored: 3, dropped: 0, redelivered: false });
  });

  for (const tier of ['dedup', 'dedup_recent']) {
    it(`stays exact on a true hash collision in the ${tier} tier`, () => {
      const store = open();
      const eventA = ev('t', 'A', { who: 'A' });
      const eventB = ev('t', 'B', { who: 'B' });
      store.commitJobs([{ id: 'j1', events: [eventA] }]);
      const seqA = all(store)[0]!.seq;

      // Make B's hash point at A, as if cyrb53 gave both the same 53 bits.
      const raw = new Database(path.join(dir, STORE_FILE));
      try {
        raw.prepare(`INSERT INTO ${tier} (h, seq) VALUES (?, ?)`).run(identityHash(eventB.topic, eventB.event_id), seqA);
      } finally {
        raw.close();
      }

      const [first] = store.commitJobs([{ id: 'j2', events: [eventB] }]);
      expect(first).to.include({ stored: 1, dropped: 0 });
      expect(all(store).map((e) => e.payload)).to.deep.equal([{ who: 'A' }, { who: 'B' }]);

      const [again] = store.commitJobs([{ id: 'j3', events: [eventB, eventA] }]);
      expect(again).to.include({ stored: 0, dropped: 2 });
      expect(identities(store)).to.deep.equal(['t/A', 't/B']);

      // A fresh handle (another worker) decides the same way.
      const other = open();
      const [fromOther] = other.commitJobs([{ id: 'j4', events: [eventB, eventA, ev('t', 'C')] }]);
      expect(fromOther).to.include({ stored: 1, dropped: 2 });
      expect(store.counts()).to.deep.include({ received: 7, uniqueProcessed: 3, duplicateDropped: 4 });

      const check = new Database(path.join(dir, STORE_FILE), { readonly: true });
      try {
        const overflow = check.prepare('SELECT topic, event_id FROM dedup_overflow').all();
        expect(overflow).to.deep.equal([{ topic: 't', event_id: 'B' }]);
      } finally {
        check.close();
      }
    });
  }

  it('still drops copies after the recent dedup tier is merged into the main one', function () {
    this.timeout(60_000);
    const store = open();
    const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ev(`t${(from + i) % 3}`, `id-${from + i}`));
    // 120,000 new identities cross the merge threshold (100,000) once.
    for (let j = 0; j < 12; j++) store.commitJobs([{ id: `fill-${j}`, events: batch(j * 10_000, 10_000) }]);
    const raw = new Database(path.join(dir, STORE_FILE), { readonly: true });
    const tiers = () => ({
      main: raw.prepare('SELECT count(*) FROM dedup').pluck().get() as number,
      recent: raw.prepare('SELECT count(*) FROM dedup_recent').pluck().get() as number,
    });
    try {
      const t = tiers();
      expect(t.main, 'merged into the main tier').to.be.at.least(100_000);
      expect(t.main + t.recent).to.equal(120_000);
      // Copies of events from before and after the merge, and one new event.
      const copies = [...batch(0, 500), ...batch(99_990, 20), ...batch(119_500, 500)];
      const [outcome] = store.commitJobs([{ id: 'copies', events: [...copies, ev('t0', 'brand-new')] }]);
      expect(outcome).to.include({ stored: 1, dropped: copies.length });
      expect(store.counts()).to.deep.include({ uniqueProcessed: 120_001, duplicateDropped: copies.length });
      expect(tiers().main + tiers().recent).to.equal(120_001);
    } finally {
      raw.close();
    }
  });

  it('keeps events, counts, job ids and dedup across close and reopen', () => {
    const first = open();
    first.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { n: 1 }), ev('u', 'e2'), ev('t', 'e1')] }]);
    const events = all(first);
    const counts = first.counts();
    first.close();

    const reopened = open();
    expect(all(reopened)).to.deep.equal(events);
    expect(reopened.counts()).to.deep.equal(counts);
    expect(reopened.committedJobIds(['j1'])).to.deep.equal(new Set(['j1']));
    // Dedup is permanent: a copy arriving after a restart is still dropped.
    const [late] = reopened.commitJobs([{ id: 'j2', events: [ev('t', 'e1', { n: 2 })] }]);
    expect(late).to.include({ stored: 0, dropped: 1 });
    const [redelivered] = reopened.commitJobs([{ id: 'j1', events: [ev('t', 'e1')] }]);
    expect(redelivered).to.include({ redelivered: true });
    // New events continue after the old ones.
    reopened.commitJobs([{ id: 'j3', events: [ev('t', 'e3')] }]);
    const after = all(reopened);
    expect(after.at(-1)!.seq).to.be.above(events.at(-1)!.seq);
    expect(after.at(0)!.payload).to.deep.equal({ n: 1 });
  });

  it('stores a payload exactly, a "__proto__" key included', () => {
    const store = open();
    const payload = JSON.parse('{"__proto__": {"admin": true}, "n": 1.5, "s": "é😀\\u0000", "a": [null]}') as Record<
      string,
      unknown
    >;
    store.commitJobs([{ id: 'j1', events: [ev('t', 'e1', payload)] }]);
    const got = all(store)[0]!.payload as Record<string, unknown>;
    expect(Object.keys(got)).to.deep.equal(['__proto__', 'n', 's', 'a']);
    expect(JSON.stringify(got)).to.equal(JSON.stringify(payload));
    expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
  });

  it('passes its integrity check', () => {
    const store = open();
    store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e1'), ev('u', 'e1')] }]);
    expect(store.integrityCheck()).to.deep.equal(['ok']);
    expect(() => store.ping()).not.to.throw();
    expect(store.file).to.equal(path.join(dir, STORE_FILE));
    expect(store.sizeBytes()).to.be.above(0);
  });
});
