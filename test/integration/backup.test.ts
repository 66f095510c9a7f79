// `npm run backup` copies the SQLite store while workers commit; `npm run restore` puts the
// copy in place for a fresh deployment (new data directory, new queue), which then still
// drops copies of every event the backup holds and serves those events.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { ROOT } from '../../tools/harness/root.js';
import { allEvents, drained, get, publish, request, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { anEvent } from '../support/events.js';

type Ev = Record<string, unknown> & { topic: string; event_id: string };

function runTool(tool: 'backup' | 'restore', args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [path.join(ROOT, `dist/tools/${tool}.js`), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const ev = (topic: string, id: string): Ev => anEvent({ topic, event_id: id, payload: { id, n: id.length } }) as Ev;

describe('backup and restore of the SQLite store', () => {
  let redis: TestRedis;
  let a: Cluster | undefined;
  let b: Cluster | undefined;
  let dir: string;
  before(async () => {
    redis = await startTestRedis();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-backup-'));
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    await redis?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(a?.logTail(), b?.logTail());
  });

  it('copies the store while events are published, and a deployment restored from it still drops their copies', async () => {
    a = await startCluster({ redisUrl: redis.url, workers: 2 });
    const history = Array.from({ length: 300 }, (_, i) => ev('bk', `before-${i}`));
    for (let i = 0; i < history.length; i += 50) expect((await publish(a.baseUrl, history.slice(i, i + 50))).status).to.equal(202);
    // Copies within the history too, so the copy's books hold dropped copies.
    expect((await publish(a.baseUrl, history.slice(0, 20))).status).to.equal(202);
    await drained(a.baseUrl, 320);

    // Publishing goes on, batch after batch, while the backup runs.
    const during: Ev[] = [];
    let publishing = true;
    const publisher = (async () => {
      for (let n = 0; publishing; n++) {
        const batch = Array.from({ length: 20 }, (_, i) => ev(n % 2 === 0 ? 'bk' : 'bk2', `during-${n}-${i}`));
        const r = await publish(a.baseUrl, batch);
        expect(r.status).to.equal(202);
        during.push(...batch);
      }
    })();
    const { dataDir } = a;
    // Some of the during-backup events are committed before the copy starts.
    await waitFor(async () => (await stats(a!.baseUrl)).unique_processed > 400, { what: 'commits under way' });
    const atStart = await stats(a.baseUrl);
    const file = path.join(dir, 'events.backup.db');
    const backup = runTool('backup', [file], { DATA_DIR: dataDir });
    const atEnd = await stats(a.baseUrl);
    publishing = false;
    await publisher;
    expect(backup.code, backup.stderr).to.equal(0);
    console.log(`      received ${atStart.received} when the backup started, ${atEnd.received} when it ended; ${during.length} events published meanwhile`);
    const said = JSON.parse(backup.stdout) as Record<string, unknown>;
    expect(said.integrity).to.equal('ok');
    expect(fs.readdirSync(dir)).to.deep.equal(['events.backup.db']); // no temporary file left, no -wal

    // The copy by itself: intact, its books balanced, its rows agreeing with its counters.
    const copy = new Database(file, { readonly: true });
    const held = new Set<string>();
    let copyBooks: { received: number; unique_processed: number; duplicate_dropped: number };
    try {
      expect(copy.pragma('integrity_check', { simple: true })).to.equal('ok');
      const counters = Object.fromEntries(
        (copy.prepare('SELECT name, value FROM counters').all() as { name: string; value: number }[]).map((r) => [r.name, r.value]),
      );
      copyBooks = { received: counters.received!, unique_processed: counters.unique_processed!, duplicate_dropped: counters.duplicate_dropped! };
      expect(copyBooks.received).to.equal(copyBooks.unique_processed + copyBooks.duplicate_dropped);
      expect(copyBooks).to.deep.include({ received: said.received, unique_processed: said.unique_processed });
      expect(copy.prepare('SELECT count(*) FROM events').pluck().get()).to.equal(copyBooks.unique_processed);
      expect(copy.prepare('SELECT coalesce(sum(events), 0) FROM jobs').pluck().get()).to.equal(copyBooks.received);
      expect(copy.prepare('SELECT coalesce(sum(stored), 0) FROM jobs').pluck().get()).to.equal(copyBooks.unique_processed);
      for (const [topic, id] of copy.prepare('SELECT topic, event_id FROM events').raw().all() as [string, string][]) held.add(`${topic}/${id}`);
    } finally {
      copy.close();
    }
    expect(copyBooks.unique_processed).to.be.at.least(atStart.unique_processed);
    expect(copyBooks.received).to.be.at.most(atEnd.received);
    for (const e of history) expect(held.has(`${e.topic}/${e.event_id}`)).to.equal(true);
    const duringHeld = during.filter((e) => held.has(`${e.topic}/${e.event_id}`));
    const duringNotHeld = during.filter((e) => !held.has(`${e.topic}/${e.event_id}`));
    console.log(`      the copy holds ${held.size} events: ${duringHeld.length} of the ${during.length} published during the backup`);
    expect(duringHeld.length).to.be.above(0);

    // Refusals: an existing file without --force, a PostgreSQL store, a store in use.
    const again = runTool('backup', [file], { DATA_DIR: dataDir });
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/exists.*--force/);
    const pg = runTool('backup', [path.join(dir, 'x.db')], { DATA_DIR: dataDir, DATABASE_URL: 'postgres://u@127.0.0.1:1/db' });
    expect(pg.code).to.equal(2);
    expect(pg.stderr).to.match(/pg_dump --format=custom/);
    const busy = runTool('restore', [file, '--force'], { DATA_DIR: dataDir });
    expect(busy.code).to.equal(1);
    expect(busy.stderr).to.match(/in use/);
    await a.destroy();
    a = undefined;

    // A fresh deployment from the copy: another data directory, another queue.
    const restoredDir = path.join(dir, 'restored');
    const restore = runTool('restore', [file], { DATA_DIR: restoredDir });
    expect(restore.code, restore.stderr).to.equal(0);
    b = await startCluster({ redisUrl: redis.url, workers: 1, dataDir: restoredDir, logDir: path.join(dir, 'logs-b') });
    const s0 = await stats(b.baseUrl);
    expect(s0).to.deep.include({ ...copyBooks, pending: 0 });

    // Copies of events the copy holds: dropped, with the seq of the restored copy.
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

    // Events the copy does not hold (published after its snapshot, or new): stored.
    const fresh = [...duringNotHeld.slice(0, 20), ev('bk', 'after-restore-1'), ev('bk', 'after-restore-2')];
    const f = await request(b.baseUrl, 'POST', '/publish?wait=30', fresh);
    expect(f.status).to.equal(200);
    expect(f.body.results.map((x: { status: string }) => x.status)).to.deep.equal(fresh.map(() => 'stored'));

    const s1 = await drained(b.baseUrl, copyBooks.received + copies.length + fresh.length);
    expect(s1.unique_processed).to.equal(copyBooks.unique_processed + fresh.length);
    expect(s1.duplicate_dropped).to.equal(copyBooks.duplicate_dropped + copies.length);
    const events = await allEvents(b.baseUrl);
    expect(events.length).to.equal(copyBooks.unique_processed + fresh.length);
    expect(new Set(events.map((e) => `${e.topic}/${e.event_id}`)).size).to.equal(events.length);
  });
});
