// The store's disk fills up: workers stop committing and say so (store_error in /ready and
// /stats), the API keeps accepting until the backlog limit and then answers 503, nothing
// acknowledged is lost, and everything commits exactly once when space returns. The disk is
// a tmpfs of 8 MiB the test mounts itself (root only; skipped, saying why, otherwise).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, drained, get, publish, stats } from '../../tools/harness/http.js';
import { waitFor } from '../../tools/harness/wait.js';
import { anEvent } from '../support/events.js';
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

/** Writes a file until the disk refuses: what is left free afterwards is nothing. */
function fill(file: string): number {
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
    if (disk !== undefined) {
      execFileSync('umount', [disk]);
      fs.rmdirSync(disk);
    }
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
});
