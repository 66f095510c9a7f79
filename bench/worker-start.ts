// How long a worker takes from its process start to its first commit, and how much memory it
// holds, over a store of N expired identities. The store is written straight in SQL (rows in
// `gone` and the main dedup tier, as the sweeper leaves an expired event): a hundred million
// identities through the commit path would take hours on a small machine, and a worker's
// start reads only the dedup tiers, the same whichever way they were filled.
//
//   node dist/bench/worker-start.js prefill <dir> <identities>
//   node dist/bench/worker-start.js measure <dir> <redis-url> [SQLITE_KEY_FILTER_MAX_MB]
//   node dist/bench/worker-start.js commit-rate <dir> <SQLITE_KEY_FILTER_MAX_MB>
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { dedupKey } from '../shared/store/identity.js';
import { packId, unpackId } from '../shared/store/sqlite/compact-id.js';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';
import { createTopicIds } from '../shared/store/sqlite/sweep.js';
import { openSqliteStore } from '../shared/store/sqlite/store.js';
import { JOB_NAME, JOB_OPTIONS, newJobId } from '../shared/queue.js';

const CHUNK = 1_000_000;

/** A random-looking lowercase UUID, the same for the same n. */
function uuidOf(n: number): string {
  const h = createHash('md5').update(`id-${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The topic id of `orders`, the prefills' one topic, given as the store's sweeper gives it. */
const ordersId = (db: Database.Database): number => createTopicIds(db).idOf('orders');

function prefill(dir: string, total: number): void {
  // Creates the schema.
  void openSqliteStore({ dataDir: dir }).close();
  const db = new Database(path.join(dir, STORE_FILE));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma(`cache_size = ${-1024 * 2048}`);
  const gone = db.prepare('INSERT INTO gone (seq, topic_id, event_id, erased) VALUES (?, ?, ?, 0)');
  const topicId = ordersId(db);
  const dedup = db.prepare('INSERT OR IGNORE INTO dedup (k, seq) VALUES (?, ?)');
  const overflow = db.prepare('INSERT INTO dedup_overflow (topic, event_id, seq) VALUES (?, ?, ?)');
  const from = (db.prepare('SELECT coalesce(max(seq), 0) FROM gone').pluck().get() as number) + 1;
  const started = performance.now();
  for (let at = from; at <= total; at += CHUNK) {
    const end = Math.min(total, at + CHUNK - 1);
    const keyed: [number, number, string][] = [];
    db.transaction(() => {
      for (let seq = at; seq <= end; seq++) {
        const id = uuidOf(seq);
        gone.run(seq, topicId, packId(id));
        keyed.push([dedupKey('orders', id), seq, id]);
      }
      // In key order: the B-tree's pages are written in order within a chunk.
      keyed.sort((x, y) => x[0] - y[0]);
      for (const [k, seq, id] of keyed) if (dedup.run(k, seq).changes === 0) overflow.run('orders', id, seq);
      db.prepare("UPDATE counters SET value = ? WHERE name IN ('received', 'unique_processed', 'expired')").run(end);
    })();
    console.log(`${end.toLocaleString()} identities, ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/**
 * The same store for large N: `gone` first, in seq order, then the main dedup tier in one
 * sorted pass (as the store's own rekey does), each B-tree page written once rather than
 * once per chunk.
 */
function prefillSorted(dir: string, total: number): void {
  void openSqliteStore({ dataDir: dir }).close();
  const db = new Database(path.join(dir, STORE_FILE));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma(`cache_size = ${-1024 * 1024}`);
  db.function('dedup_key', { deterministic: true }, (eventId) => dedupKey('orders', unpackId(eventId as string | Buffer)));
  db.function('unpack_id', { deterministic: true }, (eventId) => unpackId(eventId as string | Buffer));
  const gone = db.prepare('INSERT INTO gone (seq, topic_id, event_id, erased) VALUES (?, ?, ?, 0)');
  const topicId = ordersId(db);
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(0);
  for (let at = 1; at <= total; at += CHUNK) {
    const end = Math.min(total, at + CHUNK - 1);
    db.transaction(() => {
      for (let seq = at; seq <= end; seq++) gone.run(seq, topicId, packId(uuidOf(seq)));
    })();
    if (end % (10 * CHUNK) === 0 || end === total) console.log(`gone: ${end.toLocaleString()} identities, ${seconds()} s`);
  }
  // The identities whose key an earlier seq took go to the overflow table, found in one more
  // sorted pass (as the store's rekey does): looking each of 100 M keys up in the dedup tier
  // instead read about 10,000 keys a second here, hours in all.
  db.exec(`INSERT OR IGNORE INTO dedup (k, seq) SELECT dedup_key(event_id) AS k, seq FROM gone ORDER BY k, seq;
    INSERT INTO dedup_overflow (topic, event_id, seq)
      SELECT 'orders', unpack_id(g.event_id), g.seq
      FROM (SELECT k, seq, lag(k) OVER (ORDER BY k, seq) AS before FROM (SELECT dedup_key(event_id) AS k, seq FROM gone)) AS s
      JOIN gone AS g ON g.seq = s.seq
      WHERE s.k = s.before;
    UPDATE counters SET value = ${total} WHERE name IN ('received', 'unique_processed', 'expired');`);
  console.log(`dedup: ${seconds()} s`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/**
 * For 100 million and more, where even that takes an hour here: the main dedup tier alone,
 * `total` random 53-bit keys written in key order, plus one real expired identity (uuidOf(1),
 * the copy measure() sends). A worker's start and its filter read only the dedup tiers and the
 * count of stored identities, so they see what a store of `total` identities shows them; the
 * other keys lead to no event row (a lookup that hit one would find nothing to verify).
 */
function prefillKeys(dir: string, total: number): void {
  void openSqliteStore({ dataDir: dir }).close();
  const db = new Database(path.join(dir, STORE_FILE));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const dedup = db.prepare('INSERT INTO dedup (k, seq) VALUES (?, ?)');
  const gap = 2 ** 53 / total;
  const real = dedupKey('orders', uuidOf(1));
  const started = performance.now();
  for (let at = 0; at < total; at += CHUNK) {
    db.transaction(() => {
      for (let i = at; i < Math.min(total, at + CHUNK); i++) {
        const k = Math.floor(i * gap + Math.random() * (gap - 1));
        if (k !== real) dedup.run(k, i + 2);
      }
    })();
    if ((at + CHUNK) % (10 * CHUNK) === 0) console.log(`${(at + CHUNK).toLocaleString()} keys, ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  // Above every seq the keys point at, as the store's highest seq.
  db.prepare('INSERT OR REPLACE INTO dedup (k, seq) VALUES (?, ?)').run(real, total + 2);
  db.prepare('INSERT INTO gone (seq, topic_id, event_id, erased) VALUES (?, ?, ?, 0)').run(total + 2, ordersId(db), packId(uuidOf(1)));
  db.prepare(`UPDATE counters SET value = ${total + 1} WHERE name IN ('received', 'unique_processed', 'expired')`).run();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/**
 * New events per second through the commit path, 20 commits of 1,000, after the filter's
 * build (or with none, `maxMb` 0): what a worker's commits cost before its filter is built.
 */
async function commitRate(dir: string, maxMb: number): Promise<void> {
  const store = openSqliteStore({ dataDir: dir, keyFilterMaxMb: maxMb });
  const build = await store.prepareWrites();
  const started = performance.now();
  for (let j = 0; j < 20; j++) {
    const events = Array.from({ length: 1000 }, (_, i) => ({ topic: 'orders', event_id: `rate-${process.pid}-${j}-${i}`, timestamp: '2026-01-01T00:00:00Z', source: 'bench', payload: {} }));
    await store.commitJobs([{ id: newJobId(events.length), events }]);
  }
  console.log(`filter ${build.status}: ${Math.round(20_000 / ((performance.now() - started) / 1000))} new events/s`);
  await store.close();
}

/** Starts a worker on `dir`, with one job already queued; resolves at its first commit. */
async function measure(dir: string, redisUrl: string, worker: string, filterMaxMb: string | undefined): Promise<void> {
  const queueName = `start-${process.pid}`;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const q = new Queue(queueName, { connection });
  // A copy of an identity the store holds, and a new one: the first commit answers both.
  const events = [
    { topic: 'orders', event_id: uuidOf(1), timestamp: '2026-01-01T00:00:00Z', source: 'bench', payload: {} },
    { topic: 'orders', event_id: `new-${process.pid}`, timestamp: '2026-01-01T00:00:00Z', source: 'bench', payload: {} },
  ];
  const id = newJobId(events.length);
  await q.add(JOB_NAME, { events, reply: true }, { ...JOB_OPTIONS, jobId: id });
  const db = new Database(path.join(dir, STORE_FILE), { readonly: true });
  const committed = db.prepare('SELECT stored, dropped FROM jobs WHERE id = ?');
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dir, REDIS_URL: redisUrl, QUEUE_NAME: queueName, LOG_LEVEL: 'info' };
  if (filterMaxMb !== undefined) env.SQLITE_KEY_FILTER_MAX_MB = filterMaxMb;
  const t0 = performance.now();
  const wall0 = Date.now();
  const child = spawn(process.execPath, [worker], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let firstCommit: number | undefined;
  let row: unknown;
  const rss: [number, number][] = [];
  const rssNow = () => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : NaN;
    } catch {
      return NaN;
    }
  };
  while (performance.now() - t0 < 30 * 60_000) {
    await new Promise((r) => setTimeout(r, 20));
    if (firstCommit === undefined) {
      row = committed.get(id);
      if (row !== undefined) firstCommit = performance.now() - t0;
      rss.push([performance.now() - t0, rssNow()]);
    } else {
      if (out.includes('filter of stored keys built') || out.includes('keeps no filter')) break;
      rss.push([performance.now() - t0, rssNow()]);
    }
  }
  const built = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 1000));
  const settled = rssNow();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  db.close();
  await q.obliterate({ force: true });
  await q.close();
  await connection.quit();
  const lines = out.split('\n').filter((l) => /filter|worker started/.test(l));
  console.log(
    JSON.stringify({
      first_commit_ms: Math.round(firstCommit ?? NaN),
      first_commit: row,
      rss_mb_at_first_commit: rss.find(([t]) => t >= (firstCommit ?? 0))?.[1],
      filter_done_ms: Math.round(built),
      peak_rss_mb: Math.max(...rss.map(([, m]) => m).filter((m) => !Number.isNaN(m))),
      rss_mb_after_build: settled,
      log: lines.map((l) => {
        try {
          const o = JSON.parse(l) as Record<string, unknown>;
          return { at_ms: Date.parse(o.time as string) - wall0, msg: o.msg, keys: o.keys, bytes: o.bytes, seconds: o.seconds };
        } catch {
          return l;
        }
      }),
    }),
  );
}

const [cmd, dir, arg, maxMb] = process.argv.slice(2);
if (cmd === 'prefill' && dir && arg) prefill(dir, Number(arg));
else if (cmd === 'commit-rate' && dir && arg) await commitRate(dir, Number(arg));
else if (cmd === 'prefill-keys' && dir && arg) prefillKeys(dir, Number(arg));
else if (cmd === 'prefill-sorted' && dir && arg) prefillSorted(dir, Number(arg));
else if (cmd === 'measure' && dir && arg) await measure(dir, arg, path.resolve('dist/services/worker/main.js'), maxMb);
else {
  console.error('usage: worker-start prefill|prefill-sorted|prefill-keys <dir> <identities> | measure <dir> <redis-url> [filter-max-mb] | commit-rate <dir> <filter-max-mb>');
  process.exit(2);
}
