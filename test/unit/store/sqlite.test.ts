// The SQLite adapter: everything every store guarantees (behaviour.ts), and what only an
// embedded file shares: several processes on one file, the hashed dedup tiers and their
// collisions, the file itself.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { waitFor } from '../../../tools/harness/wait.js';
import { dedupKey } from '../../../shared/store/identity.js';
import { STORE_FILE } from '../../../shared/store/sqlite/schema.js';
import { openSqliteStore, type SqliteStore } from '../../../shared/store/sqlite/store.js';
import { all, ev, identities, storeBehaviour } from './behaviour.js';
import { startWriter } from './writer-process.js';

describe('sqlite store', () => {
  let dir: string;
  let opened: SqliteStore[];

  const open = (opts: { filterKeyPage?: number; filterCatchUpInCommit?: number; retentionMs?: number; clock?: () => number } = {}): Promise<SqliteStore> => {
    const store = openSqliteStore({ dataDir: dir, ...opts });
    opened.push(store);
    return Promise.resolve(store);
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-store-'));
    opened = [];
  });

  afterEach(async () => {
    for (const store of opened) await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  storeBehaviour({ open, openRetaining: (opts) => open(opts) });

  it('shares one truth between two handles on the same directory', async () => {
    // Two handles are what two worker processes hold: separate connections to one file.
    const a = await open();
    const b = await open();
    await a.commitJobs([{ id: 'j1', events: [ev('t', 'x')] }]);
    expect(await identities(b)).to.deep.equal(['t/x']);
    expect(await b.committedJobIds(['j1'])).to.deep.equal(new Set(['j1']));

    const [fromB] = await b.commitJobs([{ id: 'j2', events: [ev('t', 'x'), ev('t', 'y')] }]);
    expect(fromB).to.include({ stored: 1, dropped: 1 });
    // j1 was committed through a: a redelivery through b changes nothing.
    const [redelivered] = await b.commitJobs([{ id: 'j1', events: [ev('t', 'x')] }]);
    expect(redelivered).to.include({ redelivered: true });

    for (let i = 0; i < 50; i++) {
      const store = i % 2 === 0 ? a : b;
      await store.commitJobs([{ id: `k${i}`, events: [ev('t', `e${i % 10}`), ev('u', `e${i}`)] }]);
    }
    const events = await all(a);
    expect(await all(b)).to.deep.equal(events);
    const keys = events.map((e) => `${e.topic}/${e.event_id}`);
    expect(new Set(keys).size).to.equal(keys.length);
    expect(new Set(events.map((e) => e.seq)).size).to.equal(events.length);
    expect(keys).to.have.length(2 + 10 + 50);
    const counts = await a.counts({ jobIds: [], topicsLimit: 100 });
    expect(await b.counts({ jobIds: [], topicsLimit: 100 })).to.deep.equal(counts);
    expect(counts).to.deep.include({ received: 1 + 2 + 100, uniqueProcessed: 62, duplicateDropped: 41, jobs: 52 });
  });

  it('stores each event once when two processes commit overlapping jobs at the same time', async function () {
    this.timeout(60_000);
    const jobs = 200;
    await open(); // the schema exists before both start, as when the API has opened the store
    const writers = [startWriter(dir, 'w1', jobs), startWriter(dir, 'w2', jobs)];
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.go();
    const outcomes = (await Promise.all(writers.map((w) => w.done))).flat();

    const redelivered = outcomes.filter((o) => o.redelivered).map((o) => o.id);
    expect(redelivered).to.have.length(jobs / 4);
    expect(new Set(redelivered).size).to.equal(jobs / 4);

    const store = await open();
    const keys = await identities(store);
    expect(new Set(keys).size).to.equal(keys.length);
    const expectedUnique = jobs + 2 * ((jobs * 3) / 4);
    expect(keys).to.have.length(expectedUnique);
    expect(await identities(store, 'shared')).to.have.length(jobs);
    const counts = await store.counts({ jobIds: [], topicsLimit: 100 });
    expect(counts).to.deep.include({
      received: jobs / 4 + 2 * ((jobs * 3) / 4) * 2,
      uniqueProcessed: expectedUnique,
      jobs: jobs / 4 + 2 * ((jobs * 3) / 4),
    });
    expect(counts.received).to.equal(counts.uniqueProcessed + counts.duplicateDropped);
    const stored = outcomes.reduce((n, o) => n + o.stored, 0);
    const dropped = outcomes.reduce((n, o) => n + o.dropped, 0);
    expect([stored, dropped]).to.deep.equal([counts.uniqueProcessed, counts.duplicateDropped]);
    const seqs = (await all(store)).map((e) => e.seq);
    expect(new Set(seqs).size).to.equal(seqs.length);
    expect(await store.integrityCheck()).to.deep.equal([]);
  });

  for (const tier of ['dedup', 'dedup_recent']) {
    it(`stays exact on a shared dedup key in the ${tier} tier`, async () => {
      const before = await open();
      const eventA = ev('t', 'A', { who: 'A' });
      const eventB = ev('t', 'B', { who: 'B' });
      await before.commitJobs([{ id: 'j1', events: [eventA] }]);
      const seqA = (await all(before))[0]!.seq;

      // Make B's key point at A, as if both had the same 53-bit key.
      const raw = new Database(path.join(dir, STORE_FILE));
      try {
        raw.prepare(`INSERT INTO ${tier} (k, seq) VALUES (?, ?)`).run(dedupKey(eventB.topic, eventB.event_id), seqA);
      } finally {
        raw.close();
      }
      // A handle opened after the fake: a writer's filter of stored keys holds every key
      // whose event it has seen, and a real shared key is A's own, so it holds that one.
      const store = await open();

      const [first] = await store.commitJobs([{ id: 'j2', events: [eventB] }]);
      expect(first).to.include({ stored: 1, dropped: 0 });
      expect((await all(store)).map((e) => e.payload)).to.deep.equal([{ who: 'A' }, { who: 'B' }]);

      const [again] = await store.commitJobs([{ id: 'j3', events: [eventB, eventA] }]);
      expect(again).to.include({ stored: 0, dropped: 2 });
      expect(await identities(store)).to.deep.equal(['t/A', 't/B']);

      // A fresh handle (another worker) decides the same way.
      const other = await open();
      const [fromOther] = await other.commitJobs([{ id: 'j4', events: [eventB, eventA, ev('t', 'C')] }]);
      expect(fromOther).to.include({ stored: 1, dropped: 2 });
      expect(await store.counts({ jobIds: [], topicsLimit: 100 })).to.deep.include({ received: 7, uniqueProcessed: 3, duplicateDropped: 4 });

      const check = new Database(path.join(dir, STORE_FILE), { readonly: true });
      try {
        const overflow = check.prepare('SELECT topic, event_id FROM dedup_overflow').all();
        expect(overflow).to.deep.equal([{ topic: 't', event_id: 'B' }]);
      } finally {
        check.close();
      }
    });
  }

  it('still drops copies after the recent dedup tier is merged into the main one', async function () {
    this.timeout(60_000);
    const store = await open();
    const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ev(`t${(from + i) % 3}`, `id-${from + i}`));
    // 120,000 new identities cross the merge threshold (100,000) once.
    for (let j = 0; j < 12; j++) await store.commitJobs([{ id: `fill-${j}`, events: batch(j * 10_000, 10_000) }]);
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
      const [outcome] = await store.commitJobs([{ id: 'copies', events: [...copies, ev('t0', 'brand-new')] }]);
      expect(outcome).to.include({ stored: 1, dropped: copies.length });
      expect(await store.counts({ jobIds: [], topicsLimit: 100 })).to.deep.include({ uniqueProcessed: 120_001, duplicateDropped: copies.length });
      expect(tiers().main + tiers().recent).to.equal(120_001);
    } finally {
      raw.close();
    }
  });

  describe('the filter of stored keys a writer keeps in memory', () => {
    const batch = (from: number, n: number, topic = (i: number) => `t${i % 3}`) =>
      Array.from({ length: n }, (_, i) => ev(topic(from + i), `id-${from + i}`));

    it('learns what other writers stored after it was built, across a merge of the dedup tiers', async function () {
      this.timeout(60_000);
      const a = await open();
      const b = await open();
      await a.commitJobs([{ id: 'a0', events: batch(0, 10) }]);
      await a.prepareWrites();
      // b stores 120,000 identities (crossing the merge threshold once) while a is idle.
      for (let j = 0; j < 12; j++) await b.commitJobs([{ id: `b-${j}`, events: batch(10 + j * 10_000, 10_000) }]);
      const copies = [...batch(0, 10), ...batch(10, 300), ...batch(60_000, 300), ...batch(119_700, 310)];
      const [outcome] = await a.commitJobs([{ id: 'a1', events: [...copies, ev('t0', 'new-from-a')] }]);
      expect(outcome).to.include({ stored: 1, dropped: copies.length });
      // And b learns a's event in turn.
      const [fromB] = await b.commitJobs([{ id: 'b-last', events: [ev('t0', 'new-from-a'), ev('t0', 'new-from-b')] }]);
      expect(fromB).to.include({ stored: 1, dropped: 1 });
      expect(await a.counts({ jobIds: [], topicsLimit: 100 })).to.deep.include({ uniqueProcessed: 120_012 });

      // A writer started now reads 120,012 keys from both tiers, in several pages.
      const c = await open();
      await c.prepareWrites();
      const everything = batch(0, 120_010);
      const [fromC] = await c.commitJobs([{ id: 'c1', events: [...everything, ev('t0', 'new-from-a'), ev('t0', 'new-from-c')] }]);
      expect(fromC).to.include({ stored: 1, dropped: 120_011 });
    });

    it('a writer far behind catches up in the background, exact meanwhile and after, while it commits and others do', async () => {
      const a = await open({ filterKeyPage: 10, filterCatchUpInCommit: 50 });
      const b = await open();
      await a.commitJobs([{ id: 'a0', events: batch(0, 10) }]);
      expect(await a.prepareWrites()).to.include({ status: 'built' });
      // b stores 3,000 while a stands by: a's next commit is 3,000 seqs behind, past its 50.
      for (let j = 0; j < 3; j++) await b.commitJobs([{ id: `b-${j}`, events: batch(10 + j * 1000, 1000) }]);
      const rounds: Promise<unknown>[] = [];
      expect(a.filterStatus()).to.equal('current');
      // a commits copies of b's events (and new ones) while its catch-up reads them by windows
      // of 10, and b keeps storing: every verdict exact at every step.
      for (let r = 0; r < 40; r++) {
        const copies = batch(10 + r * 70, 70);
        const [outcome] = await a.commitJobs([{ id: `a-${r}`, events: [...copies, ev('t0', `a-new-${r}`)] }]);
        expect(outcome, `round ${r}`).to.include({ stored: 1, dropped: 70 });
        // Its first commits return before the catch-up is done: the commit did not read the gap.
        if (r === 0) expect(a.filterStatus()).to.equal('catching-up');
        rounds.push(b.commitJobs([{ id: `b-more-${r}`, events: [ev('t1', `b-new-${r}`), ev('t0', `a-new-${r}`)] }]));
        const [fromB] = (await rounds[r]) as [{ stored: number; dropped: number }];
        expect(fromB, `b, round ${r}`).to.include({ stored: 1, dropped: 1 });
      }
      // Well after the catch-up: copies of everything, b's late events included, all dropped.
      await waitFor(() => a.filterStatus() === 'current', { what: 'the catch-up to end' });
      const all = [...batch(0, 3010), ...Array.from({ length: 40 }, (_, r) => ev('t1', `b-new-${r}`))];
      const [last] = await a.commitJobs([{ id: 'a-last', events: [...all, ev('t2', 'a-final')] }]);
      expect(last).to.include({ stored: 1, dropped: all.length });
      expect(await a.counts({ jobIds: [], topicsLimit: 100 })).to.deep.include({ uniqueProcessed: 3010 + 40 + 40 + 1 });
    });

    it('is built a page at a time, timers running between pages, while another writer stores more', async () => {
      const a = await open();
      for (let j = 0; j < 5; j++) await a.commitJobs([{ id: `a-${j}`, events: batch(j * 1000, 1000) }]);
      const b = await open({ filterKeyPage: 10 });
      const progress: [number, number][] = [];
      // Timer ticks seen at each page: a build in one go would let none run until it ended.
      const ticksAt: number[] = [];
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      // Meanwhile a stores more: b's build catches up on it before b uses its filter.
      let stored = false;
      const building = b.prepareWrites((read, total) => {
        progress.push([read, total]);
        ticksAt.push(ticks);
        if (!stored) {
          stored = true;
          void a.commitJobs([{ id: 'a-late', events: batch(5000, 10) }]);
        }
      });
      const outcome0 = await building;
      clearInterval(timer);
      expect(outcome0).to.include({ status: 'built' });
      expect(progress.length).to.be.at.least(500);
      // The late keys may be read with the small tier, or only by the catch-up.
      expect(progress.at(-1)![0]).to.be.within(5000, 5010);
      expect(progress.at(-1)![1]).to.equal(5000);
      expect(progress.map(([read]) => read)).to.deep.equal([...progress.map(([read]) => read)].sort((x, y) => x - y));
      expect(ticksAt.at(-1)).to.be.above(ticksAt[0]!);
      // Built once: asking again reads nothing more.
      await b.prepareWrites(() => expect.fail('prepared twice'));
      const [outcome] = await b.commitJobs([{ id: 'b1', events: [...batch(0, 5010), ev('t0', 'new-from-b')] }]);
      expect(outcome).to.include({ stored: 1, dropped: 5010 });
    });

    /** Every kind of verdict, for identities `tag` makes distinct from other calls'. */
    async function verdicts(store: SqliteStore, other: SqliteStore, tag: string) {
      await other.commitJobs([{ id: `seed-${tag}`, events: [ev('v', `dup-${tag}`, { n: 1 }), ev('v', `conf-${tag}`, { n: 1 }), ev('v', `gone-${tag}`, { n: 1 })] }]);
      expect(await other.eraseEvent('v', `gone-${tag}`)).to.include({ status: 'erased' });
      const [outcome] = await store.commitJobs([
        {
          id: `verdicts-${tag}`,
          events: [ev('v', `new-${tag}`), ev('v', `dup-${tag}`, { n: 1 }), ev('v', `conf-${tag}`, { n: 2 }), ev('v', `gone-${tag}`, { n: 2 }), ev('v', `new-${tag}`)],
        },
      ]);
      return outcome!.results.map((r) => r.status);
    }
    const EXPECTED = ['stored', 'duplicate', 'conflict', 'duplicate', 'duplicate'];

    it('commits before its filter is built, with exact verdicts, and after it is built', async function () {
      this.timeout(60_000);
      const a = await open();
      await a.commitJobs([{ id: 'a0', events: batch(0, 3000) }]);
      const b = await open({ filterKeyPage: 10 });
      let built = false;
      const building = b.prepareWrites().then((outcome) => ((built = true), outcome));
      // The build reads 10 keys per turn of the event loop: these commits come long before its end.
      const [copies] = await b.commitJobs([{ id: 'b0', events: [...batch(0, 3000), ev('t0', 'new-b0')] }]);
      expect(copies).to.include({ stored: 1, dropped: 3000 });
      expect(await verdicts(b, a, 'early')).to.deep.equal(EXPECTED);
      // Another writer stores keys while the build goes on (after the build started, so
      // only its catch-up can hold them), and so does this one.
      await a.commitJobs([{ id: 'a1', events: batch(3000, 500) }]);
      await b.commitJobs([{ id: 'b1', events: batch(3500, 500) }]);
      expect(built, 'the build still runs').to.equal(false);
      expect(await building).to.include({ status: 'built' });
      expect(await verdicts(b, a, 'late')).to.deep.equal(EXPECTED);
      // Every key stored before and during the build is a copy now, whoever stored it.
      const [after] = await b.commitJobs([{ id: 'b2', events: [...batch(0, 4000), ev('t0', 'new-b0'), ev('t0', 'new-b2')] }]);
      expect(after).to.include({ stored: 1, dropped: 4001 });
      expect(await a.counts({ jobIds: [], topicsLimit: 100 })).to.deep.include({ uniqueProcessed: 4000 + 2 + 2 * 4 });
    });

    it('a commit while the build runs neither waits for it nor breaks it, even when that commit is rolled back', async () => {
      const a = await open();
      await a.commitJobs([{ id: 'a0', events: batch(0, 1000) }]);
      const b = await open({ filterKeyPage: 10 });
      const building = b.prepareWrites();
      const broken = { ...ev('t', 'x2'), payload: { n: 1n } as Record<string, unknown> };
      let failed: unknown;
      await b.commitJobs([{ id: 'b0', events: [ev('t', 'x1'), broken] }]).catch((err: unknown) => (failed = err));
      expect(failed).to.be.instanceOf(Error);
      // What b failed to store, a stores: a copy for b once its filter is built.
      await a.commitJobs([{ id: 'a1', events: [ev('t', 'x1')] }]);
      expect(await building).to.include({ status: 'built' });
      const [outcome] = await b.commitJobs([{ id: 'b1', events: [ev('t', 'x1'), ev('t', 'x3')] }]);
      expect(outcome!.results.map((r) => r.status)).to.deep.equal(['duplicate', 'stored']);
    });

    it('a build under way when the store closes ends quietly', async () => {
      const a = await open();
      await a.commitJobs([{ id: 'a0', events: batch(0, 1000) }]);
      const b = await open({ filterKeyPage: 10 });
      const building = b.prepareWrites();
      await b.commitJobs([{ id: 'b0', events: [ev('t', 'during')] }]);
      await b.close();
      expect(await building).to.deep.equal({ status: 'closed' });
    });

    it('keeps no filter past SQLITE_KEY_FILTER_MAX_MB, and stays exact', async () => {
      const a = await open();
      await a.commitJobs([{ id: 'a0', events: batch(0, 2000) }]);
      const none = openSqliteStore({ dataDir: dir, keyFilterMaxMb: 0 });
      opened.push(none);
      expect(await none.prepareWrites()).to.deep.include({ status: 'over-bound', keys: 2000 });
      const [copies] = await none.commitJobs([{ id: 'n0', events: [...batch(0, 2000), ev('t0', 'new-n0')] }]);
      expect(copies).to.include({ stored: 1, dropped: 2000 });
      expect(await verdicts(none, a, 'unbounded')).to.deep.equal(EXPECTED);
    });

    it('a writer whose filter outgrows its bound drops it and stays exact', async function () {
      this.timeout(60_000);
      // 0.1 MB holds the first segment (80 KB for 65,536 keys) and not the second (160 KB).
      const b = openSqliteStore({ dataDir: dir, keyFilterMaxMb: 0.1 });
      opened.push(b);
      expect(await b.prepareWrites()).to.include({ status: 'built' });
      for (let j = 0; j < 7; j++) await b.commitJobs([{ id: `b-${j}`, events: batch(j * 10_000, 10_000) }]);
      const [outcome] = await b.commitJobs([{ id: 'b-copies', events: [...batch(0, 70_000), ev('t0', 'new')] }]);
      expect(outcome).to.include({ stored: 1, dropped: 70_000 });
      expect(await b.prepareWrites()).to.include({ status: 'over-bound' });
      const a = await open();
      expect(await verdicts(b, a, 'dropped')).to.deep.equal(EXPECTED);
    });

    it('stays exact when writers alternate commit by commit, each copying what the other just stored', async () => {
      const a = await open();
      const b = await open();
      for (let i = 0; i < 40; i++) {
        const writer = i % 2 === 0 ? a : b;
        // Copies of the previous commit (by the other writer) and 50 new events.
        const [outcome] = await writer.commitJobs([{ id: `j${i}`, events: [...batch(Math.max(0, (i - 1) * 50), i === 0 ? 0 : 50), ...batch(i * 50, 50)] }]);
        expect(outcome, `commit ${i}`).to.include({ stored: 50, dropped: i === 0 ? 0 : 50 });
      }
      expect(await identities(a)).to.have.length(40 * 50);
    });

    it('loses nothing to a commit that failed: what another writer stores instead is a copy next time', async () => {
      const a = await open();
      const b = await open();
      await a.commitJobs([{ id: 'a0', events: [ev('t', 'first')] }]);
      const broken = { ...ev('t', 'x2'), payload: { n: 1n } as Record<string, unknown> };
      let failed: unknown;
      await a.commitJobs([{ id: 'a1', events: [ev('t', 'x1'), broken, ev('t', 'x3')] }]).catch((err: unknown) => (failed = err));
      expect(failed).to.be.instanceOf(Error);
      // b takes the seqs a's failed commit would have used, with events a never saw.
      await b.commitJobs([{ id: 'b1', events: [ev('t', 'y1'), ev('t', 'y2'), ev('t', 'y3'), ev('t', 'x1'), ev('t', 'x2')] }]);
      const [outcome] = await a.commitJobs([{ id: 'a2', events: [ev('t', 'x1'), ev('t', 'x2'), ev('t', 'x3'), ev('t', 'y1'), ev('t', 'y2'), ev('t', 'y3')] }]);
      expect(outcome).to.include({ stored: 1, dropped: 5 });
      expect(await identities(a)).to.deep.equal(['t/first', 't/y1', 't/y2', 't/y3', 't/x1', 't/x2', 't/x3']);
    });
  });

  it('passes its integrity check', async () => {
    const store = await open();
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'e1'), ev('t', 'e1'), ev('u', 'e1')] }]);
    expect(await store.integrityCheck()).to.deep.equal([]);
    await store.ping();
    expect(store.file).to.equal(path.join(dir, STORE_FILE));
    expect(await store.sizeBytes()).to.be.above(0);
  });

  /** Whether any of the store's files (the WAL included) holds these bytes. */
  const filesHold = (marker: string) =>
    ['', '-wal', '-shm'].some((suffix) => {
      try {
        return fs.readFileSync(path.join(dir, STORE_FILE + suffix)).includes(marker);
      } catch {
        return false;
      }
    });

  it('leaves no byte of an erased payload in the files, the WAL included, while another handle stays open', async () => {
    const writer = await open();
    const api = await open();
    const marker = `erase-me-${'x'.repeat(20)}-7f3a`;
    await writer.commitJobs([{ id: 'j1', events: [ev('t', 'e1', { marker }), ev('t', 'e2', { keep: 'kept-marker-41' })] }]);
    await writer.commitJobs([{ id: 'j2', events: [ev('t', 'e1', { marker })] }]);
    expect(filesHold(marker), 'the payload is in the files before').to.equal(true);
    expect(await api.eraseEvent('t', 'e1')).to.include({ status: 'erased' });
    expect(filesHold(marker), 'the payload is gone from the files').to.equal(false);
    expect(filesHold('kept-marker-41'), 'other events stay').to.equal(true);
    const [o] = await writer.commitJobs([{ id: 'j3', events: [ev('t', 'e1', { marker })] }]);
    expect(o!.results.map((r) => r.status)).to.deep.equal(['duplicate']);
    expect(filesHold(marker)).to.equal(false);
  });

  it('leaves no byte of an expired payload in the files once swept and closed', async () => {
    const later = { by: 0 };
    const store = await open({ retentionMs: 1000, clock: () => Date.now() + later.by });
    const marker = `expire-me-${'y'.repeat(20)}-9c1d`;
    await store.commitJobs([{ id: 'j1', events: [ev('t', 'old', { marker })] }]);
    later.by = 5000;
    expect(await store.expireStep(100)).to.equal(1);
    for (const s of opened) await s.close();
    expect(filesHold(marker)).to.equal(false);
  });
});
