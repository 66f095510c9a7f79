// GET /events/stream delivers: every stored event after the start point exactly once, in
// seq order, with id = seq, live and from the backlog, across a reconnection and across
// API processes, on both stores. Real API processes, two workers, a real Redis. The bounds
// (slow readers, the subscriber limit, keepalive, keys, shutdown) are in stream-bounds.test.ts.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { useCluster } from '../support/suite.js';
import { allEvents, drained, publish, stats } from '../../tools/harness/http.js';
import { follow, openStream, type Follower, type StreamClient } from '../../tools/harness/sse.js';
import { waitFor } from '../../tools/harness/wait.js';
import { event } from '../support/http.js';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { openPostgresStore } from '../../shared/store/postgres/store.js';
import { requirePostgres } from '../support/postgres.js';
import { newJobId } from '../../shared/queue.js';
import type { Event } from '../../shared/schema.js';

type Ev = Record<string, unknown>;

/** `unique` new events of the given topics with `copies` copies of them mixed in, shuffled. */
function withCopies(unique: number, copies: number, topics: string[], pad = ''): Ev[] {
  const originals = Array.from({ length: unique }, (_, i) => event({ topic: topics[i % topics.length], payload: { i, pad } }));
  const all = [...originals, ...Array.from({ length: copies }, () => originals[Math.floor(Math.random() * unique)]!)];
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all;
}

for (const storeKind of ['sqlite', 'postgres'] as const)
describe(`GET /events/stream: delivery, on ${storeKind}`, function () {
  before(async function () {
    if (storeKind === 'postgres') await requirePostgres(this);
  });
  const shared = useCluster({ workers: 2, store: storeKind });
  const base = () => shared.cluster.baseUrl;
  let received = 0;
  const clients: StreamClient[] = [];
  const followers: Follower[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const f of followers.splice(0)) f.stop();
  });

  async function subscribe(url: string, path: string, headers?: Record<string, string>): Promise<StreamClient> {
    const c = await openStream(url, path, { headers });
    clients.push(c);
    expect(c.status, JSON.stringify(c.body)).to.equal(200);
    return c;
  }

  /** Sends events in batches through the given APIs in turn, `lanes` requests at a time. */
  async function send(events: Ev[], opts: { urls?: string[]; batch?: number; lanes?: number } = {}): Promise<void> {
    const urls = opts.urls ?? [base()];
    const batch = opts.batch ?? 500;
    let next = 0;
    const lane = async () => {
      while (next < events.length) {
        const i = next;
        next += batch;
        const chunk = events.slice(i, i + batch);
        const r = await publish(urls[(i / batch) % urls.length]!, { events: chunk });
        expect(r.status, JSON.stringify(r.body)).to.equal(202);
        received += chunk.length;
      }
    };
    await Promise.all(Array.from({ length: opts.lanes ?? 4 }, lane));
  }

  async function receivesExactly(c: { events: any[]; ids: (string | undefined)[] }, expected: any[], what: string): Promise<void> {
    await waitFor(() => c.events.length >= expected.length, {
      timeoutMs: 60_000,
      what: `${what}: ${expected.length} events (has ${c.events.length})`,
    }).catch((err: Error) => {
      throw new Error(`${err.message}; got ${c.events.length}`);
    });
    // A moment more: nothing beyond them comes.
    await new Promise((r) => setTimeout(r, 300));
    expect(c.ids, `${what}: ids are the seqs`).to.deep.equal(expected.map((e) => String(e.seq)));
    expect(c.events, `${what}: events as GET /events shows them`).to.deep.equal(expected);
  }

  /** The `after` the server says a stream starts from (its first comment). */
  async function startOf(c: StreamClient): Promise<number> {
    const first = await waitFor(() => c.comments[0], { what: 'the stream to start' });
    const m = /^after (\d+)$/.exec(first);
    expect(m, first).to.not.equal(null);
    return Number(m![1]);
  }

  it('delivers 10,000 events published with copies among them live: each stored one once, in seq order, id = seq', async () => {
    const c = await subscribe(base(), '/events/stream');
    const start = await startOf(c);
    await send(withCopies(10_000, 2_500, ['live-a', 'live-b', 'live-c']));
    await drained(base(), received, 60_000);
    const stored = (await allEvents(base())).filter((e) => e.seq > start);
    expect(stored).to.have.length(10_000);
    await receivesExactly(c, stored, 'the live subscriber');
  });

  it('resumes with Last-Event-ID in the middle of a burst: no gap, no repeat', async () => {
    const topic = `resume-${randomUUID().slice(0, 8)}`;
    const a = await subscribe(base(), `/events/stream?topic=${topic}`);
    await startOf(a);
    let sent = false;
    const sending = send(withCopies(6000, 1000, [topic]), { batch: 100, lanes: 1 }).then(() => (sent = true));
    await waitFor(() => a.events.length >= 1500, { timeoutMs: 60_000, what: 'the first part of the burst' });
    a.close();
    const firstPart = a.events.slice();
    const lastId = a.ids[firstPart.length - 1]!;
    expect(sent, 'the burst goes on after the subscriber left').to.equal(false);
    // Last-Event-ID wins over the `after` of the URL an EventSource reconnects to.
    const b = await subscribe(base(), `/events/stream?topic=${topic}&after=0`, { 'last-event-id': lastId });
    expect(await startOf(b)).to.equal(Number(lastId));
    await sending;
    await drained(base(), received, 60_000);
    const stored = await allEvents(base(), topic);
    expect(stored).to.have.length(6000);
    expect(firstPart.length, 'the first subscriber left before the end').to.be.below(stored.length);
    expect(firstPart).to.deep.equal(stored.slice(0, firstPart.length));
    await receivesExactly(b, stored.slice(firstPart.length), 'the resumed subscriber');
  });

  it('has no gap and no repeat at the backlog/live seam while producers keep publishing', async () => {
    const run = randomUUID().slice(0, 8);
    const topics = [`seam-a-${run}`, `seam-b-${run}`];
    const pad = 'p'.repeat(1000);
    // Two processes: this one keeps the default limits, so a subscriber catches up from the
    // fan-out's recent pages as soon as its cursor is within them; the other keeps only
    // 128 KiB of them (twice its 64 KiB limit), so its subscribers cross the seam from the
    // store. A limit that small also cuts slow readers, which then resume by Last-Event-ID:
    // a third seam.
    const small = await shared.cluster.startExtraApi({ STREAM_MAX_BUFFER_BYTES: String(64 * 1024) });
    const urls = [base(), small.baseUrl];
    let publishing = true;
    // Two producers at a few MB/s: fast enough that new events keep arriving while a
    // subscriber crosses from its backlog to the live fan-out, slow enough that a slow
    // reader can still catch up.
    const produce = async (n: number) => {
      while (publishing) {
        await send(withCopies(n, n / 10, topics, pad), { batch: n + n / 10, lanes: 1 });
        await new Promise((r) => setTimeout(r, 80));
      }
    };
    const producers = [produce(100), produce(60)];
    const subs: { f: Follower; after: number; topic: string | undefined; what: string; due: number }[] = [];
    try {
      // Someone is live from the start on each process, so each fan-out reads on every notice.
      for (const url of urls) {
        const f = await follow(url, `/events/stream?topic=${topics[0]}`);
        followers.push(f);
        await waitFor(() => f.events.length > 0, { timeoutMs: 30_000, what: 'a first event live' });
        subs.push({ f, after: f.events[0].seq - 1, topic: topics[0], what: `watcher on ${url}`, due: 0 });
      }
      await waitFor(async () => (await allEvents(base(), topics[0])).length >= 1500, { timeoutMs: 60_000, what: 'a backlog' });
      // Subscribers arrive one by one, each from a point in the past. Half of them read
      // slowly, from further back, on the process without recent pages: their backlog
      // fills the socket, so the last pages wait for it to drain while the fan-out moves on.
      for (let i = 0; i < 12; i++) {
        const slow = i % 2 === 1;
        const topic = i % 3 === 2 ? undefined : topics[i % 2];
        const stored = await allEvents(base(), topic);
        const pick = stored[Math.floor(Math.random() * stored.length)]?.seq ?? 0;
        const after = slow ? Math.max(0, pick - 6000) : pick;
        const q = new URLSearchParams({ after: String(after), ...(topic === undefined ? {} : { topic }) });
        const url = slow ? small.baseUrl : urls[(i / 2) % 2]!;
        const f = await follow(url, `/events/stream?${q.toString()}`, { readDelayMs: slow ? 10 : undefined });
        followers.push(f);
        const due = stored.filter((e) => e.seq > after).length;
        subs.push({ f, after, topic, what: `subscriber ${i} on ${url} (after ${after}, topic ${topic ?? 'any'}${slow ? ', slow' : ''})`, due });
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 300));
      }
      // Publishing goes on until every subscriber has read its backlog, and a moment more.
      await waitFor(() => subs.every((x) => x.f.events.length >= x.due), { timeoutMs: 90_000, what: 'every backlog read' });
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      publishing = false;
      await Promise.all(producers);
    }
    await drained(base(), received, 60_000);
    const stored = await allEvents(base());
    for (const s of subs) {
      const expected = stored.filter((e) => e.seq > s.after && (s.topic === undefined || e.topic === s.topic));
      expect(expected.length, `${s.what} has something to receive`).to.be.greaterThan(0);
      await receivesExactly(s.f, expected, s.what);
    }
    const resumed = subs.reduce((n, s) => n + s.f.resumed(), 0);
    console.log(`      ${subs.length} subscribers, ${resumed} resumptions after a cut, ${stored.length} events stored in all`);
    expect((await shared.cluster.extraApis.at(-1)!.term()).code).to.equal(0);
  });

  it('serves a subscriber of a topic the fan-out was not reading, joining near the head, every event of its topic', async () => {
    const run = randomUUID().slice(0, 8);
    const [a, b] = [`only-a-${run}`, `only-b-${run}`];
    // Live on `a` alone: the fan-out reads only `a`, and its recent pages hold only `a`.
    const watcher = await subscribe(base(), `/events/stream?topic=${a}`);
    await startOf(watcher);
    let publishing = true;
    const producing = (async () => {
      while (publishing) {
        await send(withCopies(200, 20, [a, b]), { batch: 220, lanes: 1 });
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    const joiners: { c: StreamClient; after: number; topic: string | undefined }[] = [];
    try {
      await waitFor(() => watcher.events.length >= 400, { timeoutMs: 30_000, what: 'the watcher live' });
      // Each joins a few events behind the head, where the fan-out holds pages of `a` only:
      // those must not stand in for the store.
      for (const topic of [b, undefined, b, a]) {
        const head = watcher.events.at(-1)!.seq as number;
        const after = head - 1 - Math.floor(Math.random() * 40);
        const q = new URLSearchParams({ after: String(after), ...(topic === undefined ? {} : { topic }) });
        joiners.push({ c: await subscribe(base(), `/events/stream?${q.toString()}`), after, topic });
        await new Promise((r) => setTimeout(r, 150));
      }
    } finally {
      publishing = false;
      await producing;
    }
    await drained(base(), received, 60_000);
    const stored = await allEvents(base());
    for (const j of joiners) {
      const expected = stored.filter((e) => e.seq > j.after && (j.topic === undefined || e.topic === j.topic));
      await receivesExactly(j.c, expected, `a subscriber of ${j.topic ?? 'every topic'} after ${j.after}`);
    }
  });

  it('delivers a commit whose notice never came (lost while Redis was away) from its slow timer', async () => {
    const topic = `lost-${randomUUID().slice(0, 8)}`;
    const c = await subscribe(base(), `/events/stream?topic=${topic}`);
    await startOf(c);
    // Committed through the store itself, as a worker would, but with no notice published.
    const events = Array.from({ length: 50 }, (_, i) => event({ topic, payload: { i } }) as Event);
    const store =
      storeKind === 'sqlite' ? openSqliteStore({ dataDir: shared.cluster.dataDir }) : await openPostgresStore({ url: shared.cluster.database!.url });
    try {
      await store.commitJobs([{ id: newJobId(events.length), events }]);
    } finally {
      await store.close();
    }
    received += events.length;
    const stored = await allEvents(base(), topic);
    expect(stored).to.have.length(50);
    await receivesExactly(c, stored, 'the subscriber, without a notice');
  });

  it('serves a subscriber on each of two API processes while two workers commit', async () => {
    const second = await shared.cluster.startExtraApi();
    try {
      const topic = `replicas-${randomUUID().slice(0, 8)}`;
      const one = await subscribe(base(), `/events/stream?topic=${topic}`);
      const two = await subscribe(second.baseUrl, `/events/stream?topic=${topic}`);
      await Promise.all([startOf(one), startOf(two)]);
      // Published through both processes; stored by whichever worker takes each job.
      await send(withCopies(4000, 800, [topic]), { urls: [base(), second.baseUrl], batch: 200 });
      await drained(base(), received, 60_000);
      const stored = await allEvents(base(), topic);
      expect(stored).to.have.length(4000);
      await receivesExactly(one, stored, 'the first API process');
      await receivesExactly(two, stored, 'the second API process');
      expect(((await stats(base())).workers as { live: number }).live).to.equal(2);
    } finally {
      const exit = await shared.cluster.extraApis.at(-1)!.term();
      expect(exit.code).to.equal(0);
    }
  });
});
