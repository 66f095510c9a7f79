// The worker's sweeper against a real SQLite store and a real Redis holding BullMQ jobs:
// expired events deleted in small steps until none is left, and committed job ids forgotten
// only once they are old enough and BullMQ no longer holds the job (a redelivery of a job
// whose id was forgotten would count its events twice).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createLogger } from '../../shared/log.js';
import { createQueue, JOB_NAME } from '../../shared/queue.js';
import { openSqliteStore, type SqliteStore } from '../../shared/store/sqlite/store.js';
import { Sweeper, heldJobIds } from '../../services/worker/sweeper.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const log = createLogger({ name: 'test', level: 'silent' });
const ev = (id: string) => ({ topic: 't', event_id: id, timestamp: '2025-10-24T00:00:00Z', source: 'unit', payload: {} });

describe('sweeper', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let conn: Redis;
  let dir: string;
  let store: SqliteStore;
  const later = { by: 0 };
  let sweepers: Sweeper[];

  before(async () => {
    redis = await startTestRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  });
  after(async () => {
    await conn?.quit();
    await redis?.stop();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-sweep-'));
    later.by = 0;
    store = openSqliteStore({ dataDir: dir, retentionMs: 60_000, clock: () => Date.now() + later.by });
    sweepers = [];
  });
  afterEach(async () => {
    for (const s of sweepers) await s.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sweeper = (queueName: string, opts: { jobsKeepMs?: number; retentionMs?: number } = {}) => {
    const s = new Sweeper({
      store,
      log,
      retentionMs: 60_000,
      heldJobs: (ids) => heldJobIds(conn, queueName, ids),
      intervalMs: 600_000,
      jobsIntervalMs: 0,
      batch: 3,
      pauseMs: 1,
      ...opts,
    });
    sweepers.push(s);
    return s;
  };

  it('deletes every expired event in steps of its batch, and only those', async () => {
    await store.commitJobs([{ id: 'j1', events: Array.from({ length: 10 }, (_, i) => ev(`old-${i}`)) }]);
    const s = sweeper('q');
    await s.sweep();
    expect(s.expired, 'nothing is old yet').to.equal(0);
    later.by = 120_000;
    await s.sweep();
    expect(s.expired).to.equal(10);
    expect((await store.counts({ jobIds: [], topicsLimit: 10 })).expired).to.equal(10);
    expect(await store.goneReason('t', 'old-3')).to.equal('expired');
  });

  it('forgets a committed job id only once it is old enough and BullMQ no longer holds the job', async () => {
    const queueName = `sweep-${randomUUID()}`;
    const queue = createQueue(queueName, conn);
    try {
      // Committed, and still in the queue: its worker died before acknowledging it.
      await queue.add(JOB_NAME, { events: [ev('a')] }, { jobId: 'p-1-held' });
      await store.commitJobs([
        { id: 'p-1-held', events: [ev('a')] },
        { id: 'p-1-done', events: [ev('b')] },
      ]);
      expect(await heldJobIds(conn, queueName, ['p-1-held', 'p-1-done'])).to.deep.equal(new Set(['p-1-held']));

      await sweeper(queueName, { jobsKeepMs: 3_600_000 }).sweep();
      expect(await store.committedJobIds(['p-1-held', 'p-1-done']), 'too young to forget').to.deep.equal(new Set(['p-1-held', 'p-1-done']));

      const s = sweeper(queueName, { jobsKeepMs: 0 });
      await new Promise((r) => setTimeout(r, 5));
      await s.sweep();
      expect(s.forgottenJobs).to.equal(1);
      expect(await store.committedJobIds(['p-1-held', 'p-1-done'])).to.deep.equal(new Set(['p-1-held']));
      // The held job is redelivered: recognised, it changes nothing.
      const [again] = await store.commitJobs([{ id: 'p-1-held', events: [ev('a')] }]);
      expect(again).to.include({ redelivered: true });
      const counts = await store.counts({ jobIds: [], topicsLimit: 10 });
      expect(counts).to.include({ received: 2, uniqueProcessed: 2, duplicateDropped: 0 });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it('stops at close, and close can be called twice', async () => {
    const s = sweeper('q');
    await Promise.all([s.close(), s.close()]);
    await s.close();
  });
});
