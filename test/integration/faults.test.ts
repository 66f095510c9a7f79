// Faults from outside the happy path, each injected for real: poison jobs in the queue, a
// store that refuses writes (held write lock, full disk), a Redis that may evict, slow and
// silent clients, more connections than the cap, a key that must stay secret.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JOB_NAME, newJobId } from '../../shared/queue.js';
import { STORE_FILE } from '../../shared/store/sqlite/schema.js';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, get, publish, request, stats } from '../../tools/harness/http.js';
import { event } from '../support/http.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../../tools/harness/wait.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

async function replayFailed(cluster: Cluster, redisUrl: string, ...args: string[]) {
  const { stdout } = await run(process.execPath, [path.join(ROOT, 'dist/tools/replay-failed.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', REDIS_URL: redisUrl, QUEUE_NAME: cluster.queueName },
    timeout: 30_000,
  });
  const lines = stdout.trim().split('\n');
  return { lines, summary: JSON.parse(lines[lines.length - 1]!) };
}

async function readyBody(cluster: Cluster): Promise<any> {
  return (await get(cluster.baseUrl, '/ready')).body;
}

/** The first worker's state as /ready reports it. */
async function workerState(cluster: Cluster): Promise<{ status: string; error: string | null } | undefined> {
  return (await readyBody(cluster)).workers?.[0];
}

describe('faults', function () {
  this.timeout(90_000);
  let redis: TestRedis;
  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  describe('poison jobs', () => {
    let cluster: Cluster;
    let client: Redis;
    let queue: Queue;
    before(async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 0 });
      client = new Redis(redis.url, { maxRetriesPerRequest: null });
      queue = new Queue(cluster.queueName, { connection: client });
    });
    after(async () => {
      await queue?.close();
      client?.disconnect();
      await cluster?.destroy();
    });

    it('parks corrupt and invalid jobs in the failed set, keeps the queue moving, and replays them once fixed', async () => {
      const bad = { ...event(), timestamp: 'yesterday' };
      const fixable = event();
      const invalidId = newJobId(2);
      await queue.add(JOB_NAME, { events: [fixable, bad] } as any, { jobId: invalidId });
      const corruptId = newJobId(1);
      // No worker runs yet, so the job waits while its data is cut short.
      await queue.add(JOB_NAME, { events: [event()] } as any, { jobId: corruptId });
      await client.hset(queue.toKey(corruptId), 'data', '{"events": [{"topic": ');
      const mismatchEvent = event();
      const mismatchId = newJobId(5);
      await queue.add(JOB_NAME, { events: [mismatchEvent] } as any, { jobId: mismatchId });
      const notAnObjectId = newJobId(1);
      await queue.add(JOB_NAME, 'just a string' as any, { jobId: notAnObjectId });

      const good = [event(), event(), event()];
      expect((await publish(cluster.baseUrl, good)).status).to.equal(202);
      await cluster.startWorker();

      const drained = await waitFor(
        async () => {
          const s = await stats(cluster.baseUrl);
          return (s as any).queue?.failed === 4 && s.pending === 0 && s.unique_processed === 3 && s;
        },
        { timeoutMs: 30_000, what: 'four poison jobs failed and the good events stored' },
      );
      expect(drained.received).to.equal(3);
      expect(drained.received).to.equal(drained.unique_processed + drained.duplicate_dropped);
      expect(cluster.workers[0]!.alive()).to.equal(true);
      for (const id of [invalidId, corruptId, mismatchId, notAnObjectId]) {
        const [reason, attempts] = await client.hmget(queue.toKey(id), 'failedReason', 'atm');
        expect(reason, id).to.match(/^poison job: /);
        // One attempt: a poison job can never succeed, so it is not retried.
        expect(attempts, id).to.equal('1');
      }
      expect((await client.hget(queue.toKey(corruptId), 'failedReason')) ?? '').to.contain('not JSON');
      expect((await allEvents(cluster.baseUrl)).map((e) => e.event_id)).to.deep.equal(good.map((e) => e.event_id));

      const dry = await replayFailed(cluster, redis.url, '--dry-run');
      expect(dry.summary).to.include({ failed_jobs: 4, replayed_jobs: 1, replayed_events: 1, kept_jobs: 3 });
      expect((await stats(cluster.baseUrl) as any).queue.failed).to.equal(4);

      // The operator fixes the invalid event in place; the replay then takes that job too.
      await client.hset(queue.toKey(invalidId), 'data', JSON.stringify({ events: [fixable, { ...bad, timestamp: '2025-10-24T00:00:00Z' }] }));
      const replay = await replayFailed(cluster, redis.url);
      expect(replay.summary).to.include({ failed_jobs: 4, replayed_jobs: 2, replayed_events: 3, kept_jobs: 2 });
      expect(replay.lines.join('\n')).to.contain(`kept ${corruptId}: data is not JSON`);
      const after = await waitFor(
        async () => {
          const s = await stats(cluster.baseUrl);
          return s.pending === 0 && s.unique_processed === 6 && s;
        },
        { timeoutMs: 20_000, what: 'the replayed events to be stored' },
      );
      expect((after as any).queue.failed).to.equal(2);
      expect(after.received).to.equal(6);
      expect(after.duplicate_dropped).to.equal(0);
      const stored = (await allEvents(cluster.baseUrl)).map((e) => e.event_id);
      expect(stored).to.have.members(([...good, fixable, bad, mismatchEvent] as Record<string, unknown>[]).map((e) => e.event_id as string));

      // Run again: nothing left that can be replayed.
      const again = await replayFailed(cluster, redis.url);
      expect(again.summary).to.include({ failed_jobs: 2, replayed_jobs: 0, kept_jobs: 2 });

      // A partly invalid job is kept, unless the operator lets its invalid events go.
      const half = [event(), { ...event(), payload: 'not an object' }];
      const halfId = newJobId(2);
      await queue.add(JOB_NAME, { events: half } as any, { jobId: halfId });
      await waitFor(async () => (await stats(cluster.baseUrl) as any).queue.failed === 3, { what: 'the partly invalid job to fail' });
      expect((await replayFailed(cluster, redis.url)).summary).to.include({ replayed_jobs: 0, kept_jobs: 3 });
      expect((await replayFailed(cluster, redis.url, '--drop-invalid')).summary).to.include({
        replayed_jobs: 1,
        replayed_events: 1,
        dropped_invalid_events: 1,
        kept_jobs: 2,
      });
      const final = await waitFor(
        async () => {
          const s = await stats(cluster.baseUrl);
          return s.pending === 0 && s.unique_processed === 7 && s;
        },
        { what: 'the valid half to be stored' },
      );
      expect(final.received).to.equal(final.unique_processed + final.duplicate_dropped);
      expect((await get(cluster.baseUrl, '/ready')).status).to.equal(200);
    });
  });

  describe('a store that refuses writes', () => {
    let cluster: Cluster;
    let client: Redis;
    let queue: Queue;

    /** Publishes n fresh events in requests of `per`, all answered 202. */
    async function publishFresh(n: number, per: number, payload: () => Record<string, unknown> = () => ({ n: 1 })) {
      const sent: Record<string, unknown>[] = [];
      for (let i = 0; i < n; i += per) {
        const batch = Array.from({ length: Math.min(per, n - i) }, () => event({ payload: payload() }));
        const r = await publish(cluster.baseUrl, { events: batch });
        expect(r.status, JSON.stringify(r.body)).to.equal(202);
        sent.push(...batch);
      }
      return sent;
    }

    /** The worker reports the fault, and none of the pending jobs has left Redis. */
    async function expectHeldBack(pendingEvents: number, uniqueBefore: number, errorPattern: RegExp) {
      const state = await waitFor(
        async () => {
          const w = await workerState(cluster);
          return w?.status === 'store_error' && w;
        },
        { timeoutMs: 20_000, what: 'the worker to report store_error' },
      );
      expect(state.error).to.match(errorPattern);
      const ready = await readyBody(cluster);
      expect(ready.workers[0].status).to.equal('store_error');
      const s = await stats(cluster.baseUrl);
      expect(s.pending).to.equal(pendingEvents);
      expect(s.unique_processed).to.equal(uniqueBefore);
      expect((s as any).workers.list[0].status).to.equal('store_error');
      const counts = await queue.getJobCounts('active', 'completed', 'failed');
      // Held by the worker, unacknowledged: active, never completed nor failed.
      expect(counts.active).to.be.greaterThan(0);
      expect(counts.completed).to.equal(0);
      expect(counts.failed).to.equal(0);
      expect(cluster.workers[0]!.alive()).to.equal(true);
    }

    async function expectRecovered(unique: number) {
      const s = await waitFor(
        async () => {
          const st = await stats(cluster.baseUrl);
          const w = await workerState(cluster);
          return st.pending === 0 && w?.status === 'ok' && st;
        },
        { timeoutMs: 30_000, what: 'the worker to commit the held jobs' },
      );
      expect(s.unique_processed).to.equal(unique);
      expect(s.duplicate_dropped).to.equal(0);
      expect(s.received).to.equal(unique);
    }

    afterEach(async () => {
      await queue?.close();
      client?.disconnect();
      await cluster?.destroy();
    });

    it('holds jobs unacknowledged through a SQLITE_BUSY storm and commits each exactly once after', async () => {
      cluster = await startCluster({ redisUrl: redis.url, workers: 1, env: { SQLITE_BUSY_TIMEOUT_MS: '100' } });
      client = new Redis(redis.url, { maxRetriesPerRequest: null });
      queue = new Queue(cluster.queueName, { connection: client });
      const db = new Database(path.join(cluster.dataDir, STORE_FILE));
      try {
        let total = 0;
        for (let round = 1; round <= 3; round++) {
          // Another writer holds the write lock far longer than the worker's busy timeout.
          db.exec('BEGIN IMMEDIATE');
          await publishFresh(30, 10);
          await expectHeldBack(30, total, /locked|busy/i);
          db.exec('ROLLBACK');
          total += 30;
          await expectRecovered(total);
        }
        expect((await allEvents(cluster.baseUrl)).length).to.equal(90);
      } finally {
        if (db.inTransaction) db.exec('ROLLBACK');
        db.close();
      }
    });

    it('holds jobs unacknowledged while the disk is full and commits them once there is room', async function () {
      // A real ENOSPC needs a small filesystem of its own: a tmpfs, which only root may mount.
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-full-'));
      try {
        await run('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', dataDir]);
      } catch {
        fs.rmSync(dataDir, { recursive: true, force: true });
        this.skip();
      }
      const filler = path.join(dataDir, 'filler');
      const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-full-logs-'));
      try {
        cluster = await startCluster({ redisUrl: redis.url, workers: 1, dataDir, logDir });
        client = new Redis(redis.url, { maxRetriesPerRequest: null });
        queue = new Queue(cluster.queueName, { connection: client });
        await publishFresh(5, 5);
        await expectRecovered(5);

        // Fill every byte left.
        const fd = fs.openSync(filler, 'w');
        const chunk = Buffer.alloc(64 * 1024);
        try {
          for (;;) fs.writeSync(fd, chunk);
        } catch (err) {
          expect((err as NodeJS.ErrnoException).code).to.equal('ENOSPC');
        } finally {
          fs.closeSync(fd);
        }
        // 100 KB payloads: the commit must grow the WAL, it cannot fit in pages it reuses.
        const big = () => ({ blob: 'x'.repeat(100_000) });
        await publishFresh(20, 5, big);
        await expectHeldBack(20, 5, /full|disk|I\/O/i);

        fs.rmSync(filler);
        await expectRecovered(25);
        const stored = await allEvents(cluster.baseUrl);
        expect(stored.length).to.equal(25);
        expect(new Set(stored.map((e) => e.event_id)).size).to.equal(25);
        await cluster.stop();
        const db = new Database(path.join(dataDir, STORE_FILE), { readonly: true });
        expect(db.pragma('integrity_check', { simple: true })).to.equal('ok');
        db.close();
      } finally {
        await cluster?.destroy();
        await run('umount', ['-l', dataDir]).catch(() => undefined);
        fs.rmSync(dataDir, { recursive: true, force: true });
        fs.rmSync(logDir, { recursive: true, force: true });
      }
    });
  });

  describe('a stop while Redis is away', () => {
    // An operator stops the service because Redis is down: each process lets go of a connection
    // that is reconnecting and exits 0. Nothing was lost: every accepted event was stored.
    it('exits 0 on SIGTERM, the API and the worker alike', async () => {
      const own = await startTestRedis();
      const cluster = await startCluster({ redisUrl: own.url, workers: 1 });
      try {
        const events = [event({ topic: 'stop-away' }), event({ topic: 'stop-away' })];
        expect((await publish(cluster.baseUrl, events)).status).to.equal(202);
        await waitFor(async () => (await stats(cluster.baseUrl)).unique_processed === 2, { what: 'both events stored' });
        await own.kill();
        // Both processes notice: the API's /ready names Redis, and each client is reconnecting.
        await waitFor(async () => (await get(cluster.baseUrl, '/ready')).status === 503, { what: '/ready 503 with Redis away' });
        await new Promise((r) => setTimeout(r, 1500));
        const exits = await cluster.stop();
        expect(exits.map((e) => e.code), cluster.logTail(15)).to.deep.equal([0, 0]);
      } finally {
        await cluster.destroy();
        await own.stop();
      }
    });
  });

  describe('a Redis that may evict', () => {
    for (const kind of ['api', 'worker'] as const) {
      it(`keeps the ${kind} from starting, saying why`, async () => {
        const admin = new Redis(redis.url);
        await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-evict-'));
        try {
          const child = spawn(process.execPath, [path.join(ROOT, `dist/services/${kind}/main.js`)], {
            env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, QUEUE_NAME: 'evict-test', DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1' },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let output = '';
          child.stdout.on('data', (c: Buffer) => (output += c.toString()));
          child.stderr.on('data', (c: Buffer) => (output += c.toString()));
          const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
          const code = await Promise.race([exit, waitFor(() => false, { timeoutMs: 20_000, what: `the ${kind} to refuse` })]);
          expect(code).to.equal(1);
          expect(output).to.contain(`${kind}: refusing to run`);
          expect(output).to.contain('maxmemory-policy is "allkeys-lru"');
          expect(output).to.contain('noeviction');
        } finally {
          await admin.config('SET', 'maxmemory-policy', 'noeviction');
          admin.disconnect();
          fs.rmSync(dataDir, { recursive: true, force: true });
        }
      });
    }
  });

  describe('clients that hold sockets', () => {
    const KEY = 'k3y-that-must-never-be-logged';
    const CAP = 4;
    let cluster: Cluster;
    before(async () => {
      cluster = await startCluster({
        redisUrl: redis.url,
        workers: 0,
        env: {
          HEADERS_TIMEOUT_MS: '1000',
          REQUEST_TIMEOUT_MS: '2000',
          MAX_CONNECTIONS: String(CAP),
          API_KEY: KEY,
          READ_API_KEY: KEY,
          LOG_LEVEL: 'debug',
        },
      });
    });
    after(async () => {
      await cluster?.destroy();
    });

    const port = () => Number(new URL(cluster.baseUrl).port);

    /** Opens a socket, writes `first`, then `trickle` every 100 ms; resolves when the server closes it. */
    function slowClient(first: string, trickle?: string): Promise<{ ms: number; reply: string }> {
      return new Promise((resolve) => {
        const started = Date.now();
        const socket = net.connect(port(), '127.0.0.1');
        let reply = '';
        let timer: NodeJS.Timeout | undefined;
        socket.on('connect', () => {
          if (first) socket.write(first);
          if (trickle !== undefined) timer = setInterval(() => socket.writable && socket.write(trickle), 100);
        });
        socket.on('data', (c) => (reply += c.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(timer);
          resolve({ ms: Date.now() - started, reply });
        });
      });
    }

    it('closes a socket that sends nothing', async () => {
      const { ms } = await slowClient('');
      expect(ms).to.be.below(4000);
    });

    it('closes a socket whose headers never end', async () => {
      const { ms } = await slowClient('POST /publish HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n');
      expect(ms).to.be.below(4000);
    });

    it('closes a socket whose body trickles, and queues nothing of it', async () => {
      const { ms, reply } = await slowClient(
        `POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[`,
        ' ',
      );
      expect(ms).to.be.below(5000);
      expect(reply).to.match(/^HTTP\/1.1 408/);
      const s = await request(cluster.baseUrl, 'GET', '/stats', undefined, { headers: { authorization: `Bearer ${KEY}` } });
      expect(s.body.received).to.equal(0);
    });

    it(`keeps at most ${CAP} sockets open at once, idle ones giving way, and recovers after`, async () => {
      /** Opens n sockets at once, asks /health on each, and counts the answered and those still open after. */
      async function burst(n: number): Promise<{ answered: number; open: number }> {
        const sockets: net.Socket[] = [];
        const closed = new Set<net.Socket>();
        const outcomes = await Promise.all(
          Array.from(
            { length: n },
            () =>
              new Promise<boolean>((resolve) => {
                const socket = net.connect(port(), '127.0.0.1');
                sockets.push(socket);
                socket.on('connect', () => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
                socket.on('data', (c) => resolve(c.toString().startsWith('HTTP/1.1 200')));
                socket.on('error', () => resolve(false));
                socket.on('close', () => {
                  closed.add(socket);
                  resolve(false);
                });
              }),
          ),
        );
        await new Promise((r) => setTimeout(r, 300));
        const open = sockets.filter((s) => !closed.has(s)).length;
        for (const s of sockets) s.destroy();
        return { answered: outcomes.filter(Boolean).length, open };
      }
      const flood = await burst(60);
      expect(flood.open).to.be.at.most(CAP);
      expect(flood.answered).to.be.at.least(CAP);
      await waitFor(async () => (await get(cluster.baseUrl, '/health')).status === 200, {
        what: 'the API to serve again',
      });
      expect(cluster.api.alive()).to.equal(true);
    });

    it('asks for the key on reads too when READ_API_KEY is set, and never logs it', async () => {
      const auth = { authorization: `Bearer ${KEY}` };
      for (const p of ['/stats', '/events', '/topics']) {
        const r = await get(cluster.baseUrl, p);
        expect(r.status, p).to.equal(401);
        expect(r.body.error).to.equal('unauthorized');
        expect((await get(cluster.baseUrl, p, auth)).status, p).to.equal(200);
      }
      const wrong = await publish(cluster.baseUrl, event(), { headers: { authorization: `Bearer ${KEY}x` } });
      expect(wrong.status).to.equal(401);
      const right = await publish(cluster.baseUrl, event(), { headers: auth });
      expect(right.status).to.equal(202);
      const log = cluster.api.log();
      expect(log).to.contain('"request"'); // debug request lines are on: the log is not just empty
      expect(log).not.to.contain(KEY.slice(0, 12));
    });
  });
});
