// Overload: producers offer about twice what the workers drain, for a while. The API must
// shed load with 503 + Retry-After (never anything else), keep its memory flat, keep the
// backlog near its limit, and lose nothing it answered 202.
import fs from 'node:fs';
import { expect } from 'chai';
import { startCluster, type Cluster } from '../../tools/harness/cluster.js';
import { allEvents, stats } from '../../tools/harness/http.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../../tools/harness/wait.js';

// One job per request (no coalescing) and a worker slowed to about one job per 20 ms: a
// drain rate this test controls, whatever the machine.
const EVENTS_PER_REQUEST = 10;
const BACKLOG_LIMIT = 60;
const FLOOD_SECONDS = Number(process.env.OVERLOAD_SECONDS ?? 15);

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => +(n / 2 ** 20).toFixed(1);

describe('overload', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let cluster: Cluster;

  before(async () => {
    redis = await startTestRedis();
    cluster = await startCluster({
      redisUrl: redis.url,
      workers: 1,
      env: {
        COALESCE_MS: '0',
        WORKER_CONCURRENCY: '1',
        WORKER_BATCH_JOBS: '2',
        WORKER_LINGER_MS: '20',
        MAX_BACKLOG_JOBS: String(BACKLOG_LIMIT),
        MAX_BODY_BYTES: String(4 * 2 ** 20),
        MAX_INFLIGHT_BYTES: process.env.OVERLOAD_INFLIGHT_BYTES ?? String(16 * 2 ** 20),
        // This process stalls for a second or two while it builds 40 bodies of 3.4 MiB, and
        // a client stalled past the server's keep-alive deadline may reuse a socket the
        // server has just closed: "fetch failed: EPIPE / other side closed", the HTTP/1.1
        // keep-alive race, not what this test is about. The API's side of that race (a
        // request already waiting when the deadline fires) is fixed and tested in
        // test/unit/keep-alive.test.ts.
        KEEP_ALIVE_TIMEOUT_MS: '60000',
        LOG_LEVEL: 'warn',
      },
    });
  });
  after(async () => {
    await cluster?.destroy();
    await redis?.stop();
  });

  it('sheds a flood at twice the drain rate with 503 + Retry-After, flat memory, and nothing lost', async () => {
    const pid = cluster.api.child.pid!;
    let serial = 0;
    const accepted: string[] = [];
    const refused: string[] = [];
    const answers: Record<string, number> = {};
    let missingRetryAfter = 0;
    const badAnswers: string[] = [];

    async function publishOne(): Promise<void> {
      const events = Array.from({ length: EVENTS_PER_REQUEST }, () => ({
        topic: 'flood',
        event_id: `f-${++serial}`,
        timestamp: '2025-10-24T00:00:00Z',
        source: 'overload-test',
        payload: { n: serial, pad: 'p'.repeat(200) },
      }));
      const res = await fetch(`${cluster.baseUrl}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json()) as any;
      answers[res.status] = (answers[res.status] ?? 0) + 1;
      if (res.status === 202) accepted.push(...events.map((e) => e.event_id));
      else if (res.status === 503) {
        refused.push(...events.map((e) => e.event_id));
        if (!(Number(res.headers.get('retry-after')) > 0)) missingRetryAfter++;
        if (body.error !== 'unavailable') badAnswers.push(JSON.stringify(body));
      } else badAnswers.push(`${res.status} ${JSON.stringify(body)}`);
    }

    // The worker drains at most one job per linger (20 ms): 50 jobs/s. Offer twice that.
    const offeredPerSecond = 100;

    // Open-loop flood: requests start on schedule whether or not earlier ones were answered.
    const rss: number[] = [];
    const waiting: number[] = [];
    const inFlight = new Set<Promise<void>>();
    const errors: string[] = [];
    const started = performance.now();
    const storedBefore = (await stats(cluster.baseUrl)).unique_processed;
    let sent = 0;
    const sampler = setInterval(() => {
      rss.push(rssBytes(pid));
      void stats(cluster.baseUrl).then((s: any) => waiting.push(s.queue?.waiting ?? 0), () => undefined);
    }, 250);
    try {
      while (performance.now() - started < FLOOD_SECONDS * 1000) {
        const due = Math.floor(((performance.now() - started) / 1000) * offeredPerSecond);
        while (sent < due) {
          sent++;
          const p = publishOne().catch((err: Error) => void errors.push(err.message));
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all(inFlight);
    } finally {
      clearInterval(sampler);
    }
    const floodSeconds = (performance.now() - started) / 1000;
    const drainedDuringFlood = (await stats(cluster.baseUrl)).unique_processed - storedBefore;

    // Samples every 250 ms: "early" is seconds 3 to 6, once the heap has warmed up to the
    // load; "late" is the last three seconds. A leak per request would show between them.
    const early = median(rss.slice(12, 24));
    const late = median(rss.slice(-12));
    console.log(
      `      offered ${offeredPerSecond} requests/s for ${floodSeconds.toFixed(1)} s ` +
        `(${sent} requests, answers ${JSON.stringify(answers)}); drained ${(drainedDuringFlood / EVENTS_PER_REQUEST / floodSeconds).toFixed(0)} jobs/s meanwhile; ` +
        `API RSS early ${mb(early)} MB, late ${mb(late)} MB, max ${mb(Math.max(...rss))} MB; max waiting jobs ${Math.max(...waiting)}`,
    );

    expect(errors, 'requests with no answer').to.deep.equal([]);
    expect(badAnswers, 'answers other than 202 and 503').to.deep.equal([]);
    expect(Object.keys(answers).sort()).to.deep.equal(['202', '503']);
    expect(missingRetryAfter).to.equal(0);
    // It really was an overload: well over what was drained meanwhile.
    expect(sent * EVENTS_PER_REQUEST).to.be.above(1.5 * drainedDuringFlood);
    expect(answers['503']).to.be.above(sent / 5);
    // The backlog stays near its limit (sampled every 250 ms, so some overshoot).
    expect(Math.max(...waiting)).to.be.at.most(BACKLOG_LIMIT + offeredPerSecond / 2);
    expect(late - early, 'RSS growth during the flood').to.be.below(25 * 2 ** 20);
    expect(cluster.api.alive()).to.equal(true);

    const s = await waitFor(
      async () => {
        const st = await stats(cluster.baseUrl);
        return st.pending === 0 && st;
      },
      { timeoutMs: 60_000, what: 'the backlog to drain after the flood' },
    );
    const stored = await allEvents(cluster.baseUrl, 'flood');
    const ids = stored.map((e) => e.event_id as string);
    expect(new Set(ids).size).to.equal(ids.length);
    const storedSet = new Set(ids);
    expect(accepted.filter((id) => !storedSet.has(id))).to.deep.equal([]);
    // A 503 queues nothing of its request.
    expect(refused.filter((id) => storedSet.has(id))).to.deep.equal([]);
    expect(s.unique_processed).to.equal(accepted.length);
    expect(s.received).to.equal(s.unique_processed + s.duplicate_dropped);
  });

  it('holds a bounded number of body bytes when many big bodies arrive at once', async () => {
    const pid = cluster.api.child.pid!;
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 20);
    const answers: Record<string, number> = {};
    const messages = new Set<string>();
    const acceptedIds: string[] = [];
    let serial = 0;
    try {
      for (let round = 0; round < 3; round++) {
        await Promise.all(
          Array.from({ length: 40 }, async () => {
            // 14 events of 250 KB: a 3.4 MiB body, under the 4 MiB limit.
            const events = Array.from({ length: 14 }, () => ({
              topic: 'big',
              event_id: `b-${++serial}`,
              timestamp: '2025-10-24T00:00:00Z',
              source: 'overload-test',
              payload: { blob: 'b'.repeat(250_000) },
            }));
            const res = await fetch(`${cluster.baseUrl}/publish`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ events }),
              signal: AbortSignal.timeout(30_000),
            });
            const body = (await res.json()) as any;
            answers[res.status] = (answers[res.status] ?? 0) + 1;
            if (res.status === 202) acceptedIds.push(...events.map((e) => e.event_id));
            else messages.add(`${res.status} ${body.error}: ${body.message}`);
          }),
        );
      }
    } finally {
      clearInterval(sampler);
    }
    console.log(`      120 bodies of 3.4 MiB, 40 at a time: answers ${JSON.stringify(answers)}; API RSS ${mb(before)} MB before, peak ${mb(peak)} MB`);
    expect(Object.keys(answers).every((k) => k === '202' || k === '503'), JSON.stringify([...messages])).to.equal(true);
    expect([...messages].some((m) => m.includes('in flight'))).to.equal(true);
    // Unbounded, the same burst took the API from 84 to 939 MB. Bounded to 16 MiB in flight,
    // what remains is mostly bodies read and dropped, garbage the GC has not returned yet.
    expect(peak - before).to.be.below(300 * 2 ** 20);
    await waitFor(async () => (await stats(cluster.baseUrl)).pending === 0, { timeoutMs: 60_000, what: 'the big events to be stored' });
    const stored = new Set((await allEvents(cluster.baseUrl, 'big')).map((e) => e.event_id as string));
    expect(acceptedIds.filter((id) => !stored.has(id))).to.deep.equal([]);
    expect(stored.size).to.equal(acceptedIds.length);
  });
});
