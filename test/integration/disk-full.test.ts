// The store's disk fills up: workers stop committing and say so (store_error in /ready and
// /stats), the API keeps accepting until the backlog limit and then answers 503, nothing
// acknowledged is lost, and everything commits exactly once when space returns. The disk is
// a tmpfs of 8 MiB the test mounts itself (root only; skipped, saying why, otherwise).
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { ROOT } from '../../tools/harness/root.js';
import { allEvents, drained, get, publish, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { anEvent } from '../support/events.js';
import { createLogger } from '../../shared/log.js';
import type { Event } from '../../shared/schema.js';
import type { JobToCommit } from '../../shared/store/port.js';
import { STORE_FILE } from '../../shared/store/sqlite/schema.js';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { createCommitter } from '../../services/worker/committer.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const DISK_BYTES = 8 * 1024 * 1024;

/** Mounts a tmpfs of `bytes` on a new directory; undefined, with the reason printed, if mount is refused. */
function mountSmallDisk(bytes: number): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch (err) {
    fs.rmdirSync(dir);
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    console.log(`    (skipped: cannot mount a tmpfs, which needs root: ${why})`);
    return undefined;
  }
}

function unmount(dir: string): void {
  execFileSync('umount', [dir]);
  fs.rmdirSync(dir);
}

/** Writes a file until the disk refuses, then gives back `leavePages` of 4 KiB; returns its size. */
function fill(file: string, leavePages = 0): number {
  const chunk = Buffer.alloc(64 * 1024, 1);
  const fd = fs.openSync(file, 'w');
  let written = 0;
  try {
    for (let size = chunk.length; size >= 512; ) {
      try {
        written += fs.writeSync(fd, chunk, 0, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        size /= 2;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  if (leavePages > 0) fs.truncateSync(file, (written = Math.max(0, written - leavePages * 4096)));
  return written;
}

describe('a full disk under the SQLite store', function () {
  let redis: TestRedis;
  let cluster: Cluster | undefined;
  let disk: string | undefined;
  let logs: string;
  before(async function () {
    disk = mountSmallDisk(DISK_BYTES);
    if (disk === undefined) this.skip();
    redis = await startTestRedis();
    logs = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-disk-logs-'));
  });
  after(async () => {
    await cluster?.destroy();
    await redis?.stop();
    if (disk !== undefined) unmount(disk);
    if (logs !== undefined) fs.rmSync(logs, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(cluster?.logTail(40));
  });

  it('holds jobs while the disk is full, refuses past the backlog limit, and commits everything once space returns', async () => {
    const dataDir = path.join(disk!, 'data');
    cluster = await startCluster({
      redisUrl: redis.url,
      workers: 1,
      dataDir,
      // The logs elsewhere: a process whose stdout cannot be written is another test.
      logDir: logs,
      env: { MAX_BACKLOG_JOBS: '10', WORKER_CONCURRENCY: '2' },
    });
    const ev = (id: string) => anEvent({ topic: 'disk', event_id: id, payload: { id, pad: 'x'.repeat(2000) } });
    const first = Array.from({ length: 20 }, (_, i) => ev(`first-${i}`));
    expect((await publish(cluster.baseUrl, first)).status).to.equal(202);
    await drained(cluster.baseUrl, 20);

    const filler = path.join(disk!, 'filler');
    const filled = fill(filler);
    console.log(`      filler of ${(filled / 1024 / 1024).toFixed(1)} MiB leaves the disk full`);

    // Jobs of 5 events, each with one copy of an event of the job before.
    const accepted: Record<string, unknown>[][] = [];
    let refused: { status: number; retryAfter: string | null; body: any } | undefined;
    for (let j = 0; j < 300 && refused === undefined; j++) {
      const job = Array.from({ length: 4 }, (_, i) => ev(`full-${j}-${i}`));
      job.push(j === 0 ? ev('first-0') : ev(`full-${j - 1}-0`));
      const r = await publish(cluster.baseUrl, job);
      if (r.status === 202) accepted.push(job);
      else refused = { status: r.status, retryAfter: r.headers.get('retry-after'), body: r.body };
      if (j === 0) {
        // The first job's commit fails: the worker says so before more are published.
        const failing = await waitFor(
          async () => ((await get(cluster!.baseUrl, '/ready')).body.workers as { status: string; error: string }[]).find((w) => w.status === 'store_error'),
          { what: 'the worker to report store_error in /ready', timeoutMs: 20_000 },
        );
        expect(failing.error).to.match(/full|SQLITE_FULL/i);
      }
    }
    expect(refused, 'publishing was never refused').to.not.equal(undefined);
    expect(refused!.status).to.equal(503);
    expect(Number(refused!.retryAfter)).to.be.above(0);
    expect(refused!.body.error).to.be.a('string');
    console.log(`      ${accepted.length} jobs accepted while the disk was full, then ${refused!.status} (${refused!.body.error})`);
    expect(accepted.length).to.be.above(10);

    const held = await stats(cluster.baseUrl);
    const received = 20 + accepted.length * 5;
    expect(held.received).to.equal(received);
    expect(held.unique_processed).to.equal(20);
    expect(held.pending).to.equal(accepted.length * 5);
    expect((held.workers as any).list.map((w: any) => w.status)).to.deep.equal(['store_error']);
    // The API itself is ready: Redis and the store answer (reads need no space).
    const ready = await get(cluster.baseUrl, '/ready');
    expect(ready.status).to.equal(200);
    expect(ready.body.workers.map((w: any) => w.status)).to.deep.equal(['store_error']);
    expect((held.workers as any).list[0].error).to.match(/full/i);
    console.log(`      the worker says: ${(held.workers as any).list[0].status}: ${(held.workers as any).list[0].error}`);

    // A worker killed while it holds jobs it cannot commit loses none of them: another takes
    // them over (its store open or not, it waits for space like the first).
    const [worker] = cluster.workers;
    await worker!.kill();
    await cluster.startWorker();
    await waitFor(
      async () => {
        const s = await stats(cluster!.baseUrl);
        const list = (s.workers as any).list as { status: string }[];
        return list.length === 1 && list[0]!.status === 'store_error' && (s.queue as any).active > 0;
      },
      { what: 'the new worker to hold the jobs, reporting store_error', timeoutMs: 30_000 },
    );

    // Space returns: every job commits, each event once, each copy dropped once.
    fs.rmSync(filler);
    const done = await drained(cluster.baseUrl, received, 60_000);
    expect(done.unique_processed).to.equal(20 + accepted.length * 4);
    expect(done.duplicate_dropped).to.equal(accepted.length);
    const events = await allEvents(cluster.baseUrl, 'disk');
    expect(events.length).to.equal(done.unique_processed);
    expect(new Set(events.map((e) => e.event_id)).size).to.equal(events.length);
    await waitFor(async () => (await get(cluster!.baseUrl, '/ready')).body.workers?.[0]?.status === 'ok', {
      what: 'the worker to report ok again',
    });
    expect((await publish(cluster.baseUrl, [ev('after')])).status).to.equal(202);
    await drained(cluster.baseUrl, received + 1);
  });

  // The WAL's index (-shm) grows by 32 KiB each 4,096 WAL frames; a commit whose frames fit
  // on the disk but whose index region does not fails with SQLITE_IOERR_SHMSIZE, not
  // SQLITE_FULL. The committer holds that job too, and commits it once space returns.
  it('holds a commit that fails with SQLITE_IOERR as the WAL index grows, and commits it once space returns', async () => {
    const big = mountSmallDisk(40 * 1024 * 1024)!;
    const store = openSqliteStore({ dataDir: path.join(big, 'data') });
    try {
      const wal = path.join(big, 'data', `${STORE_FILE}-wal`);
      const frames = () => Math.floor((fs.statSync(wal).size - 32) / (4096 + 24));
      const event = (id: string): Event => ({ topic: 'wal', event_id: id, timestamp: '2025-10-24T00:00:00Z', source: 'test', payload: { pad: 'y'.repeat(3000) } });
      let n = 0;
      const nextJob = (): JobToCommit => ({ id: `j-${++n}`, events: [event(`e-${n}`), event('e-1')] });
      // Up to just before the index's third region (4,062 frames in the first, 4,096 in the next).
      while (frames() < 8100) await store.commitJobs([nextJob()]);

      // Find a free space where the next commit's frames fit but its index region does not,
      // and leave the disk so.
      const filler = path.join(big, 'filler');
      let pending: JobToCommit | undefined;
      let code: string | undefined;
      for (let tries = 0; tries < 200 && code === undefined; tries++) {
        pending ??= nextJob();
        let committed = false;
        for (let free = 1; free <= 12 && !committed && code === undefined; free++) {
          fill(filler, free);
          try {
            await store.commitJobs([pending]);
            committed = true;
          } catch (err) {
            const c = (err as { code?: string }).code ?? '';
            if (c.startsWith('SQLITE_IOERR')) code = c;
            else expect(c).to.equal('SQLITE_FULL');
          }
          if (code === undefined) fs.rmSync(filler);
        }
        if (committed) pending = undefined;
      }
      expect(code, 'no commit failed with SQLITE_IOERR').to.equal('SQLITE_IOERR_SHMSIZE');
      const before = await store.counts({ jobIds: [], topicsLimit: 10 });

      // The committer keeps the job, retrying, and says why.
      const failures: string[] = [];
      const health: (string | null)[] = [];
      const committer = createCommitter({
        commit: async (jobs) => {
          try {
            return await store.commitJobs(jobs);
          } catch (err) {
            failures.push((err as { code?: string }).code ?? String(err));
            throw err;
          }
        },
        maxJobs: 64,
        maxEvents: 1000,
        lingerMs: 1,
        log: createLogger({ name: 'disk-full-test', level: 'silent' }),
        onHealth: (problem) => health.push(problem),
      });
      let settled = false;
      const outcome = committer.submit(pending!).finally(() => (settled = true));
      await waitFor(() => failures.length >= 3, { what: 'three failed attempts', timeoutMs: 20_000 });
      console.log(`      attempts while the disk stays full: ${failures.join(', ')}`);
      for (const c of failures) expect(c).to.match(/^SQLITE_(IOERR|FULL)/);
      expect(health).to.have.length(1);
      expect(health[0]).to.match(/disk I\/O error|full/);
      expect(settled).to.equal(false);

      fs.rmSync(filler);
      const out = await outcome;
      expect(out).to.deep.include({ stored: 1, dropped: 1, redelivered: false });
      expect(health.at(-1)).to.equal(null);
      const after = await store.counts({ jobIds: [], topicsLimit: 10 });
      expect(after.received).to.equal(before.received + 2);
      expect(after.uniqueProcessed).to.equal(before.uniqueProcessed + 1);
      expect(after.duplicateDropped).to.equal(before.duplicateDropped + 1);
      expect(after.received).to.equal(after.uniqueProcessed + after.duplicateDropped);
      expect(await store.integrityCheck()).to.deep.equal([]);
      // Committed once: the same job again is a redelivery and changes nothing.
      expect(await committer.submit(pending!)).to.deep.include({ redelivered: true });
      expect((await store.counts({ jobIds: [], topicsLimit: 10 })).received).to.equal(after.received);
      await committer.close();
    } finally {
      await store.close();
      unmount(big);
    }
  });

  it('a backup that runs out of space fails and leaves no file behind', async () => {
    const small = mountSmallDisk(1024 * 1024)!;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-backup-src-'));
    const store = openSqliteStore({ dataDir });
    try {
      const pad = 'z'.repeat(2000);
      for (let j = 0; j < 20; j++) {
        const events = Array.from({ length: 50 }, (_, i): Event => ({ topic: 't', event_id: `e-${j}-${i}`, timestamp: '2025-10-24T00:00:00Z', source: 's', payload: { pad } }));
        await store.commitJobs([{ id: `j-${j}`, events }]);
      }
      const target = path.join(small, 'events.db');
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/tools/backup.js'), target], {
        env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.match(/full/i);
      expect(fs.readdirSync(small)).to.deep.equal([]);
    } finally {
      await store.close();
      unmount(small);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
