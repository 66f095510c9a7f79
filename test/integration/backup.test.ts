// Backups taken while workers commit, restored into a fresh deployment (new data directory
// or database, new queue), which still drops copies of every event the backup holds and
// serves those events: `npm run backup` / `npm run restore` for SQLite, pg_dump /
// pg_restore for PostgreSQL (the recipe of docs/backup.md).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { createTestDatabase, type TestDatabase } from '../../tools/harness/postgres.js';
import { ROOT } from '../../tools/harness/root.js';
import { allEvents, drained, get, publish, request, stats, type Stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { requirePostgres } from '../support/postgres.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { anEvent } from '../support/events.js';

type Ev = Record<string, unknown> & { topic: string; event_id: string };
type Books = { received: number; unique_processed: number; duplicate_dropped: number };

/** Runs a command without blocking this process: the test's publisher goes on meanwhile. */
function run(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const runTool = (tool: 'backup' | 'restore', args: string[], env: Record<string, string>) =>
  run(process.execPath, [path.join(ROOT, `dist/tools/${tool}.js`), ...args], env);

const ev = (topic: string, id: string): Ev => anEvent({ topic, event_id: id, payload: { id, n: id.length } }) as Ev;

/** 300 events and 20 copies of them, committed. */
async function publishHistory(baseUrl: string): Promise<Ev[]> {
  const history = Array.from({ length: 300 }, (_, i) => ev('bk', `before-${i}`));
  for (let i = 0; i < history.length; i += 50) expect((await publish(baseUrl, history.slice(i, i + 50))).status).to.equal(202);
  expect((await publish(baseUrl, history.slice(0, 20))).status).to.equal(202);
  await drained(baseUrl, 320);
  return history;
}

/** Publishes batch after batch until stopped; `during` lists every event accepted. */
function startPublisher(baseUrl: string): { during: Ev[]; stop(): Promise<void> } {
  const during: Ev[] = [];
  let publishing = true;
  const loop = (async () => {
    for (let n = 0; publishing; n++) {
      const batch = Array.from({ length: 20 }, (_, i) => ev(n % 2 === 0 ? 'bk' : 'bk2', `during-${n}-${i}`));
      const r = await publish(baseUrl, batch);
      expect(r.status).to.equal(202);
      during.push(...batch);
    }
  })();
  return {
    during,
    stop: async () => {
      publishing = false;
      await loop;
    },
  };
}

/**
 * The restored deployment `b` starts from the backup's books; copies of events it holds are
 * dropped with the seq of the restored copy; events it does not hold are stored; each event
 * is served once.
 */
async function checkRestored(b: Cluster, books: Books, held: Set<string>, history: Ev[], during: Ev[]): Promise<void> {
  const s0 = await stats(b.baseUrl);
  expect(s0).to.deep.include({ ...books, pending: 0 });
  const duringHeld = during.filter((e) => held.has(`${e.topic}/${e.event_id}`));
  const duringNotHeld = during.filter((e) => !held.has(`${e.topic}/${e.event_id}`));

  const copies = [...history.slice(0, 30), ...duringHeld.slice(0, 30)];
  const wanted = new Map<string, number>();
  for (const e of copies) {
    const r = await get(b.baseUrl, `/events/${encodeURIComponent(e.topic)}/${encodeURIComponent(e.event_id)}`);
    expect(r.status).to.equal(200);
    expect(r.body.event.payload).to.deep.equal(e.payload);
    wanted.set(`${e.topic}/${e.event_id}`, r.body.event.seq);
  }
  const r = await request(b.baseUrl, 'POST', '/publish?wait=30', copies);
  expect(r.status).to.equal(200);
  expect(r.body.results.map((x: { status: string }) => x.status)).to.deep.equal(copies.map(() => 'duplicate'));
  r.body.results.forEach((x: { seq: number }, i: number) => expect(x.seq).to.equal(wanted.get(`${copies[i]!.topic}/${copies[i]!.event_id}`)));

  // Events the backup does not hold (published after its snapshot, or new): stored.
  const fresh = [...duringNotHeld.slice(0, 20), ev('bk', 'after-restore-1'), ev('bk', 'after-restore-2')];
  const f = await request(b.baseUrl, 'POST', '/publish?wait=30', fresh);
  expect(f.status).to.equal(200);
  expect(f.body.results.map((x: { status: string }) => x.status)).to.deep.equal(fresh.map(() => 'stored'));

  const s1 = await drained(b.baseUrl, books.received + copies.length + fresh.length);
  expect(s1.unique_processed).to.equal(books.unique_processed + fresh.length);
  expect(s1.duplicate_dropped).to.equal(books.duplicate_dropped + copies.length);
  const events = await allEvents(b.baseUrl);
  expect(events.length).to.equal(books.unique_processed + fresh.length);
  expect(new Set(events.map((e) => `${e.topic}/${e.event_id}`)).size).to.equal(events.length);
}

function logWindow(atStart: Stats, atEnd: Stats, books: Books, during: Ev[], held: Set<string>): void {
  const duringHeld = during.filter((e) => held.has(`${e.topic}/${e.event_id}`)).length;
  console.log(
    `      received ${atStart.received} as the backup started, ${books.received} in the backup, ${atEnd.received} as it ended; ` +
      `it holds ${duringHeld} of the ${during.length} events published meanwhile`,
  );
}

describe('backup and restore', () => {
  let redis: TestRedis;
  let a: Cluster | undefined;
  let b: Cluster | undefined;
  let restoredDb: TestDatabase | undefined;
  let dir: string;
  before(async () => {
    redis = await startTestRedis();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-backup-'));
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.log(a?.logTail(), b?.logTail());
    await a?.destroy();
    await b?.destroy();
    await restoredDb?.drop();
    a = b = restoredDb = undefined;
  });
  after(async () => {
    await redis?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('SQLite: copies the store while events are published, and a deployment restored from it still drops their copies', async () => {
    a = await startCluster({ redisUrl: redis.url, workers: 2 });
    const history = await publishHistory(a.baseUrl);
    const publisher = startPublisher(a.baseUrl);
    await waitFor(async () => (await stats(a!.baseUrl)).unique_processed > 400, { what: 'commits under way' });
    const atStart = await stats(a.baseUrl);
    const file = path.join(dir, 'events.backup.db');
    const backup = await runTool('backup', [file], { DATA_DIR: a.dataDir });
    const atEnd = await stats(a.baseUrl);
    await publisher.stop();
    expect(backup.code, backup.stderr).to.equal(0);
    const said = JSON.parse(backup.stdout) as Record<string, unknown>;
    expect(said.integrity).to.equal('ok');
    expect(fs.readdirSync(dir)).to.deep.equal(['events.backup.db']); // no temporary file left, no -wal

    // The copy by itself: intact, its books balanced, its rows agreeing with its counters.
    const copy = new Database(file, { readonly: true });
    const held = new Set<string>();
    let books: Books;
    try {
      expect(copy.pragma('integrity_check', { simple: true })).to.equal('ok');
      const counters = Object.fromEntries(
        (copy.prepare('SELECT name, value FROM counters').all() as { name: string; value: number }[]).map((r) => [r.name, r.value]),
      );
      books = { received: counters.received!, unique_processed: counters.unique_processed!, duplicate_dropped: counters.duplicate_dropped! };
      expect(books.received).to.equal(books.unique_processed + books.duplicate_dropped);
      expect(books).to.deep.include({ received: said.received, unique_processed: said.unique_processed });
      expect(copy.prepare('SELECT count(*) FROM events').pluck().get()).to.equal(books.unique_processed);
      for (const [topic, id] of copy.prepare('SELECT topic, event_id FROM events').raw().all() as [string, string][]) held.add(`${topic}/${id}`);
    } finally {
      copy.close();
    }
    logWindow(atStart, atEnd, books, publisher.during, held);
    expect(books.unique_processed).to.be.at.least(atStart.unique_processed);
    expect(books.received).to.be.at.most(atEnd.received);
    for (const e of history) expect(held.has(`${e.topic}/${e.event_id}`)).to.equal(true);
    expect(publisher.during.some((e) => held.has(`${e.topic}/${e.event_id}`))).to.equal(true);

    // Refusals: an existing file without --force, a PostgreSQL store, a store in use.
    const again = await runTool('backup', [file], { DATA_DIR: a.dataDir });
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/exists.*--force/);
    const onPg = await runTool('backup', [path.join(dir, 'x.db')], { DATA_DIR: a.dataDir, DATABASE_URL: 'postgres://u@127.0.0.1:1/db' });
    expect(onPg.code).to.equal(2);
    expect(onPg.stderr).to.match(/pg_dump --format=custom/);
    const busy = await runTool('restore', [file, '--force'], { DATA_DIR: a.dataDir });
    expect(busy.code).to.equal(1);
    expect(busy.stderr).to.match(/in use/);
    await a.destroy();

    // A fresh deployment from the copy: another data directory, another queue.
    const restoredDir = path.join(dir, 'restored');
    const restore = await runTool('restore', [file], { DATA_DIR: restoredDir });
    expect(restore.code, restore.stderr).to.equal(0);
    b = await startCluster({ redisUrl: redis.url, workers: 1, dataDir: restoredDir, logDir: path.join(dir, 'logs-b') });
    await checkRestored(b, books, held, history, publisher.during);
  });

  it('PostgreSQL: pg_dump while events are published, pg_restore into a new database, and its deployment still drops their copies', async function () {
    await requirePostgres(this);
    a = await startCluster({ redisUrl: redis.url, workers: 2, store: 'postgres' });
    const history = await publishHistory(a.baseUrl);
    const publisher = startPublisher(a.baseUrl);
    await waitFor(async () => (await stats(a!.baseUrl)).unique_processed > 400, { what: 'commits under way' });
    const atStart = await stats(a.baseUrl);
    const dump = path.join(dir, 'events.dump');
    const dumped = await run('pg_dump', ['--format=custom', `--file=${dump}`, a.database!.url]);
    const atEnd = await stats(a.baseUrl);
    await publisher.stop();
    expect(dumped.code, dumped.stderr).to.equal(0);
    await a.destroy();

    restoredDb = await createTestDatabase({ prefix: 'agg_restored' });
    const restored = await run('pg_restore', ['--no-owner', '--exit-on-error', `--dbname=${restoredDb.url}`, dump]);
    expect(restored.code, restored.stderr).to.equal(0);
    const client = new pg.Client({ connectionString: restoredDb.url });
    await client.connect();
    const held = new Set<string>();
    let books: Books;
    try {
      const c = (
        await client.query<{ received: string; unique_processed: string; duplicate_dropped: string }>(
          'SELECT sum(received) AS received, sum(unique_processed) AS unique_processed, sum(duplicate_dropped) AS duplicate_dropped FROM counters',
        )
      ).rows[0]!;
      books = { received: Number(c.received), unique_processed: Number(c.unique_processed), duplicate_dropped: Number(c.duplicate_dropped) };
      expect(books.received).to.equal(books.unique_processed + books.duplicate_dropped);
      for (const row of (await client.query<{ topic: string; event_id: string }>('SELECT topic, event_id FROM events')).rows) held.add(`${row.topic}/${row.event_id}`);
      expect(held.size).to.equal(books.unique_processed);
    } finally {
      await client.end();
    }
    logWindow(atStart, atEnd, books, publisher.during, held);
    for (const e of history) expect(held.has(`${e.topic}/${e.event_id}`)).to.equal(true);

    b = await startCluster({ redisUrl: redis.url, workers: 1, store: 'postgres', databaseUrl: restoredDb.url });
    await checkRestored(b, books, held, history, publisher.during);
  });
});
