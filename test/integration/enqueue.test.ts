// The API's coalescing enqueuer against a real Redis: concurrent requests share jobs, a
// quiet API does not wait, and a failed add fails every request in it.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { decodeJob, jobDataOf } from '../../shared/job.js';
import { createLogger } from '../../shared/log.js';
import { createQueue, createRedis, eventCountOfJobId, unfinishedJobIds, type PublishJobData } from '../../shared/queue.js';
import type { Event } from '../../shared/schema.js';
import { HttpError } from '../../services/api/http/errors.js';
import { watchBacklog } from '../../services/api/publish/backlog.js';
import { createEnqueuer, type Placement } from '../../services/api/publish/enqueue.js';
import { SLICED_JOB_BYTES } from '../../services/api/publish/job-bytes.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const log = createLogger({ name: 'enqueue-test', level: 'silent' });
const ev = (i: number): Event => ({ topic: 't', event_id: `e-${i}`, timestamp: '2025-10-24T00:00:00Z', source: 's', payload: { i } });

describe('enqueuer', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => redis?.stop());

  function setup(lingerMs = 50, maxEvents = 1000, maxBytes?: number) {
    const connection = createRedis(redis.url, 'api', 1000);
    connection.on('error', () => undefined);
    const queue = createQueue(`test-${randomUUID()}`, connection);
    const enqueuer = createEnqueuer({ queue, lingerMs, maxEvents, maxBytes, timeoutMs: 1000, log });
    return {
      queue,
      connection,
      enqueuer,
      async close() {
        await queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close();
        connection.disconnect();
      },
    };
  }

  it('puts the events of concurrent requests in fewer jobs, every event exactly once', async () => {
    const s = setup();
    try {
      const placements = await Promise.all(Array.from({ length: 200 }, (_, i) => s.enqueuer.enqueue([ev(i)])));
      const jobs = [...new Set(placements.map((p) => p.job))];
      expect(jobs.length).to.be.below(200);
      const queued = await unfinishedJobIds(s.connection, s.queue);
      expect(new Set(queued)).to.deep.equal(new Set(jobs));
      expect(queued.reduce((n, id) => n + eventCountOfJobId(id), 0)).to.equal(200);
      const stored = await Promise.all(jobs.map((id) => s.queue.getJob(id)));
      const eventsOf = (j: (typeof stored)[number]) => {
        const decoded = decodeJob(j!.id, j!.data);
        if (!decoded.ok) return expect.fail(decoded.reason);
        return decoded.events;
      };
      const eventIds = stored.flatMap((j) => eventsOf(j).map((e) => e.event_id)).sort();
      expect(eventIds).to.deep.equal(Array.from({ length: 200 }, (_, i) => `e-${i}`).sort());
      expect(stored.flatMap(eventsOf).map((e) => e.payload.i).sort((a, b) => Number(a) - Number(b))).to.deep.equal(Array.from({ length: 200 }, (_, i) => i));
      // Each request knows where its events are in its job: what a waiting producer's results are cut by.
      const byId = new Map(stored.map((j) => [j!.id, eventsOf(j)]));
      placements.forEach((p, i) => expect(byId.get(p.job)![p.offset]!.event_id).to.equal(`e-${i}`));
      expect(stored.every((j) => (j!.data as PublishJobData).reply === undefined)).to.equal(true);
    } finally {
      await s.close();
    }
  });

  it('does not make a lone request wait for the coalescing window', async () => {
    const s = setup(500);
    try {
      const started = performance.now();
      await s.enqueuer.enqueue([ev(1)]);
      expect(performance.now() - started).to.be.below(250);
    } finally {
      await s.close();
    }
  });

  it('sends what gathered during an add as soon as that add returns, not after the coalescing window', async () => {
    const s = setup(2000);
    try {
      const started = performance.now();
      const first = s.enqueuer.enqueue([ev(1)]);
      // The first add is under way after this turn: these gather behind it.
      await new Promise((r) => setImmediate(r));
      const behind = Promise.all([s.enqueuer.enqueue([ev(2)]), s.enqueuer.enqueue([ev(3)])]);
      const [a, [b, c]] = await Promise.all([first, behind]);
      expect(performance.now() - started).to.be.below(1000);
      expect(b.job).to.equal(c.job);
      expect(b.job).not.to.equal(a.job);
      expect([b.offset, c.offset]).to.deep.equal([0, 1]);
    } finally {
      await s.close();
    }
  });

  it('never puts more than maxEvents in one gathered job', async () => {
    const s = setup(50, 10);
    try {
      const placements = await Promise.all(Array.from({ length: 25 }, (_, i) => s.enqueuer.enqueue([ev(i), ev(i + 100)])));
      for (const id of new Set(placements.map((p) => p.job))) expect(eventCountOfJobId(id)).to.be.at.most(10);
    } finally {
      await s.close();
    }
  });

  it('never gathers more than maxBytes in one job, and sends a heavier request alone', async () => {
    const s = setup(50, 1000, 1000);
    try {
      // 300 bytes each: three fit in 1000, a fourth would not.
      const light = await Promise.all(Array.from({ length: 40 }, (_, i) => s.enqueuer.enqueue([ev(i)], { bytes: 300 })));
      for (const id of new Set(light.map((p) => p.job))) expect(eventCountOfJobId(id)).to.be.at.most(3);
      const [heavy, beside] = await Promise.all([
        s.enqueuer.enqueue([ev(100), ev(101)], { bytes: 5000 }),
        s.enqueuer.enqueue([ev(102)], { bytes: 10 }),
      ]);
      expect(eventCountOfJobId(heavy.job)).to.equal(2);
      expect(beside.job).not.to.equal(heavy.job);
    } finally {
      await s.close();
    }
  });

  it('tells a waiting request its placement before the job is added, and asks the job for a reply', async () => {
    const s = setup();
    try {
      const told: Placement[] = [];
      const placements = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          s.enqueuer.enqueue([ev(i), ev(i + 100)], {
            onPlaced: i % 2 === 0 ? (p) => told.push(p) : undefined,
          }),
        ),
      );
      expect(told).to.have.length(10);
      expect(told).to.have.deep.members(placements.filter((_, i) => i % 2 === 0));
      for (const job of new Set(told.map((t) => t.job))) expect(((await s.queue.getJob(job))!.data as PublishJobData).reply).to.equal(true);
    } finally {
      await s.close();
    }
  });

  it('writes a heavy request\'s job in slices, and Redis holds the same job data as for a light one', async () => {
    const s = setup(2, 1000, 64 * 1024);
    try {
      const heavy = Array.from({ length: 600 }, (_, i): Event => ({ ...ev(i), payload: { i, text: 'é"\\'.repeat(300) } }));
      const bytes = Buffer.byteLength(JSON.stringify(heavy));
      expect(bytes).to.be.at.least(SLICED_JOB_BYTES);
      const told: Placement[] = [];
      const heavyAt = await s.enqueuer.enqueue(heavy, { bytes, onPlaced: (p) => told.push(p) });
      const lightAt = await s.enqueuer.enqueue([ev(9000)], { bytes: 100 });
      expect(told).to.deep.equal([heavyAt]);
      const heavyJob = (await s.queue.getJob(heavyAt.job))!;
      expect(heavyJob.data).to.deep.equal(jobDataOf(heavy, true));
      expect(decodeJob(heavyJob.id, heavyJob.data)).to.deep.equal({ ok: true, events: heavy });
      expect((await s.queue.getJob(lightAt.job))!.data).to.deep.equal(jobDataOf([ev(9000)], false));
    } finally {
      await s.close();
    }
  });

  it('fails every request of a failed add with a 503 and queues none of them', async function () {
    const s = setup();
    try {
      await s.enqueuer.enqueue([ev(0)]);
      await redis.kill();
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => s.enqueuer.enqueue([ev(i)])));
      for (const r of results) {
        expect(r.status).to.equal('rejected');
        const err = (r as PromiseRejectedResult).reason as HttpError;
        expect(err).to.be.instanceOf(HttpError);
        expect(err.status).to.equal(503);
        expect(err.headers['Retry-After']).to.match(/^\d+$/);
      }
      await redis.start();
    } finally {
      await s.close();
    }
  });

  it('counts toward the backlog limit the jobs it adds between two samples, so a flood cannot overshoot it', async () => {
    const connection = createRedis(redis.url, 'api', 1000);
    connection.on('error', () => undefined);
    const queue = createQueue(`test-${randomUUID()}`, connection);
    const limit = 5;
    // One sample only, of the empty queue (the next one an hour away): what full() says after it is its own count.
    const backlog = watchBacklog(queue, limit, log, 3_600_000);
    const enqueuer = createEnqueuer({ queue, lingerMs: 0, maxEvents: 1000, timeoutMs: 1000, log, onAdd: () => backlog.added() });
    try {
      await backlog.sampled;
      const full: boolean[] = [];
      for (let i = 0; i < limit + 1; i++) {
        full.push(backlog.full());
        await enqueuer.enqueue([ev(i)]);
      }
      full.push(backlog.full());
      // Full once the jobs added exceed the limit, with no sample taken since the first.
      expect(full).to.deep.equal([false, false, false, false, false, false, true]);
      expect(await queue.getWaitingCount()).to.equal(limit + 1);
    } finally {
      await backlog.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      connection.disconnect();
    }
  });
});
