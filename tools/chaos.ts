// `npm run chaos`: the real processes (Redis, the API, N workers) under sustained mixed load
// while they are killed at random; then a check, from the outside, that every event answered
// 202 is stored exactly once and the counters add up.
//
//   npm run chaos -- [--seconds 60] [--kills N] [--workers 2] [--publishers 4] [--seed S]
//                    [--appendfsync everysec|always] [--keep]
//
// With --kills the run lasts until that many faults were injected, else for --seconds.
// Publishers behave as real producers: a request answered anything but 202, or not answered
// in time, is sent again, as it was, until it is accepted.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config.js';
import { KEY_PREFIX } from '../shared/queue.js';
import { openStore } from '../shared/store/open.js';
import { startRedisServer, type RedisServer } from '../scripts/redis-server.js';
import { startCluster, type Cluster, type Proc, type StoreKind } from './harness/cluster.js';
import { waitFor } from './harness/wait.js';

const USAGE = `npm run chaos -- [options]

Runs Redis, the API and workers as real processes under mixed load, kills them at random,
then checks from outside that every event answered 202 is stored exactly once.

  --seconds N        how long to load and kill (default 60)
  --kills N          run until N faults were injected instead (e.g. 100 for a long run)
  --workers N        worker processes, at least 2 (default 2)
  --publishers N     concurrent producers (default 4)
  --seed S           replay a run: the seed it printed
  --appendfsync everysec|always   Redis durability (default everysec)
  --store sqlite|postgres         the store (default sqlite; postgres makes a database of its
                                  own on TEST_POSTGRES_URL's server and drops it at the end)
  --keep             keep the data directory and logs at the end
  --help
`;

const { values: args } = (() => {
  try {
    return parseArgs({
      options: {
        seconds: { type: 'string', default: '60' },
        kills: { type: 'string' },
        workers: { type: 'string', default: '2' },
        publishers: { type: 'string', default: '4' },
        seed: { type: 'string' },
        appendfsync: { type: 'string', default: 'everysec' },
        store: { type: 'string', default: 'sqlite' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    console.error(`chaos: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
})();
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const seconds = Number(args.seconds);
const killTarget = args.kills === undefined ? undefined : Number(args.kills);
const workerCount = Number(args.workers);
const publisherCount = Number(args.publishers);
const seed = args.seed === undefined ? Date.now() % 2 ** 31 : Number(args.seed);
const appendfsync = args.appendfsync as 'everysec' | 'always';
for (const [name, n, min] of [['seconds', seconds, 1], ['workers', workerCount, 2], ['publishers', publisherCount, 1], ['seed', seed, 0]] as const) {
  if (!Number.isInteger(n) || n < min) {
    console.error(`chaos: --${name} must be a whole number, at least ${min}`);
    process.exit(2);
  }
}
if (killTarget !== undefined && !(Number.isInteger(killTarget) && killTarget > 0)) {
  console.error('chaos: --kills must be a whole number above 0');
  process.exit(2);
}
const storeKind = args.store as StoreKind;
if (storeKind !== 'sqlite' && storeKind !== 'postgres') {
  console.error('chaos: --store must be sqlite or postgres');
  process.exit(2);
}
if (appendfsync !== 'everysec' && appendfsync !== 'always') {
  console.error('chaos: --appendfsync must be everysec or always');
  process.exit(2);
}

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (msg: string) => console.log(`chaos: ${msg}`);

type Ev = { topic: string; event_id: string; timestamp: string; source: string; payload: Record<string, unknown> };
const key = (e: { topic: string; event_id: string }) => `${e.topic}\u0000${e.event_id}`;

// ---- what the producers did ------------------------------------------------------------
const sent = new Map<string, Ev>(); // every identity ever sent, with its one content
const sentList: Ev[] = []; // for picking copies
const acked = new Set<string>(); // identities in at least one request answered 202
let nextId = 0;
const counts = {
  requests: 0,
  attempts: 0,
  by_kind: {} as Record<string, number>,
  answers: {} as Record<string, number>,
  network_errors: 0,
  timeouts: 0,
  events_sent_first_time: 0,
  copies_sent: 0,
  events_in_202: 0, // every event of every 202 request, copies included
  events_maybe_queued: 0, // events of every attempt not refused with a 4xx
  gave_up: 0,
};
const anomalies: string[] = [];

const TOPICS = ['orders', 'payments', 'clicks', 'logs', 'audit'];
function freshEvent(publisher: number): Ev {
  const n = nextId++;
  const topic = pick(TOPICS);
  const e: Ev = {
    topic,
    event_id: `c${seed}-${n}`,
    timestamp: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
    source: `publisher-${publisher}`,
    payload: { n, topic, note: random() < 0.1 ? 'x'.repeat(between(100, 4000)) : 'ok', nested: { list: [n, n + 1] } },
  };
  sent.set(key(e), e);
  sentList.push(e);
  counts.events_sent_first_time++;
  return e;
}

function composeBatch(publisher: number, size: number): Ev[] {
  const batch: Ev[] = [];
  for (let i = 0; i < size; i++) {
    const r = random();
    if (r < 0.12 && sentList.length > 0) {
      batch.push(pick(sentList)); // a copy of something sent before, by anyone
      counts.copies_sent++;
    } else if (r < 0.16 && batch.length > 0) {
      batch.push(pick(batch)); // a copy within the same request
      counts.copies_sent++;
    } else {
      batch.push(freshEvent(publisher));
    }
  }
  return batch;
}

type Req = { kind: string; path: string; contentType: string; body: string; events: Ev[] };

function nextRequest(publisher: number): Req {
  const kind = pick(['single', 'single', 'events', 'events', 'array', 'ndjson', 'ndjson', 'batch-path']);
  const events = composeBatch(publisher, kind === 'single' ? 1 : between(2, kind === 'ndjson' ? 60 : 40));
  const json = 'application/json';
  switch (kind) {
    case 'single':
      return { kind, path: '/publish', contentType: json, body: JSON.stringify(events[0]), events };
    case 'events':
      return { kind, path: '/publish', contentType: json, body: JSON.stringify({ events }), events };
    case 'array':
      return { kind, path: '/publish', contentType: json, body: JSON.stringify(events), events };
    case 'ndjson':
      return { kind, path: '/publish', contentType: 'application/x-ndjson', body: events.map((e) => JSON.stringify(e)).join('\n') + '\n', events };
    default:
      return { kind, path: '/publish/batch', contentType: json, body: JSON.stringify({ events }), events };
  }
}

let baseUrl = '';
const bump = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);

function errorCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: string }).error;
  } catch {
    return undefined;
  }
}

/** Sends one request until it is accepted, as a producer that must not lose events would. */
async function deliver(req: Req, giveUpAt: () => number): Promise<void> {
  counts.requests++;
  bump(counts.by_kind, req.kind);
  let backoff = 50;
  for (;;) {
    counts.attempts++;
    let status: number | undefined;
    let retryAfter = 0;
    try {
      const res = await fetch(baseUrl + req.path, {
        method: 'POST',
        headers: { 'content-type': req.contentType },
        body: req.body,
        signal: AbortSignal.timeout(8000),
      });
      status = res.status;
      retryAfter = Number(res.headers.get('retry-after') ?? 0);
      const text = await res.text();
      // A 503 says whether anything may have been queued: `unavailable` (nothing was) or
      // `outcome_unknown` (the add may land late).
      const code = status === 503 ? errorCode(text) : undefined;
      bump(counts.answers, code === undefined ? String(status) : `${status} ${code}`);
      if (status === 202) {
        const body = JSON.parse(text) as { accepted?: number };
        if (body.accepted !== req.events.length) anomalies.push(`202 with accepted=${body.accepted} for ${req.events.length} events`);
        counts.events_in_202 += req.events.length;
        counts.events_maybe_queued += req.events.length;
        for (const e of req.events) acked.add(key(e));
        return;
      }
      if (status !== 503) {
        anomalies.push(`${req.kind} request answered ${status}: ${text.slice(0, 200)}`);
        return;
      }
      if (code !== 'unavailable') counts.events_maybe_queued += req.events.length; // a timed-out add may still land
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') counts.timeouts++;
      else counts.network_errors++;
      counts.events_maybe_queued += req.events.length; // the API may have queued it and died
    }
    if (Date.now() > giveUpAt()) {
      counts.gave_up++;
      return;
    }
    await pause(retryAfter > 0 ? Math.min(1000, retryAfter * 200) + between(0, 200) : backoff + between(0, backoff));
    backoff = Math.min(2000, backoff * 2);
  }
}

// ---- the run ----------------------------------------------------------------------------
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-chaos-'));
const faults: Record<string, number> = {};
const unexpectedExits: string[] = [];
let redis: RedisServer | undefined;
let cluster: Cluster | undefined;
const expected = new WeakSet<Proc>(); // processes we stopped on purpose

function watch(p: Proc): Proc {
  void p.exited.then((exit) => {
    if (!expected.has(p)) unexpectedExits.push(`${p.name} exited by itself (${JSON.stringify(exit)}):\n${p.log().split('\n').slice(-15).join('\n')}`);
  });
  return p;
}

async function stopOnPurpose(p: Proc, how: 'kill' | 'term'): Promise<void> {
  expected.add(p);
  const exit = how === 'kill' ? await p.kill() : await p.term();
  if (how === 'term' && exit.code !== 0) anomalies.push(`${p.name} did not stop cleanly on SIGTERM: ${JSON.stringify(exit)}`);
}

function liveWorkers(): Proc[] {
  return cluster!.workers.filter((w) => w.alive() && !expected.has(w));
}

// How long a killed worker's jobs wait before another worker has committed them: the jobs
// active at the kill, until none of them is active any more (BullMQ's lock must expire and
// its stalled-job check must run first: JOB_LOCK_MS).
const recoveries: number[] = [];
const measuring: Promise<void>[] = [];
let probe: Redis | undefined;
const activeKey = () => `${KEY_PREFIX}:chaos:active`;

async function measureRecovery(active: readonly string[]): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < 600; i++) {
    await pause(100);
    const still = await probe!.lrange(activeKey(), 0, -1).catch(() => undefined);
    if (still !== undefined && !active.some((id) => still.includes(id))) {
      recoveries.push((performance.now() - started) / 1000);
      return;
    }
  }
}

async function injectFault(): Promise<string> {
  const c = cluster!;
  const fault = pick(['worker-kill', 'worker-kill', 'worker-kill', 'api-kill', 'api-kill', 'redis-kill', 'redis-kill', 'worker-term', 'api-term']);
  switch (fault) {
    case 'worker-kill':
    case 'worker-term': {
      const victim = pick(liveWorkers());
      const active = fault === 'worker-kill' ? await probe!.lrange(activeKey(), 0, -1).catch(() => []) : [];
      await stopOnPurpose(victim, fault === 'worker-kill' ? 'kill' : 'term');
      if (active.length > 0) measuring.push(measureRecovery(active));
      watch(await c.startWorker());
      break;
    }
    case 'api-kill':
    case 'api-term':
      await stopOnPurpose(c.api, fault === 'api-kill' ? 'kill' : 'term');
      watch(await c.startApi());
      break;
    case 'redis-kill':
      await redis!.kill();
      await pause(between(100, 1500)); // Redis away for a while: publishes answer 503
      await redis!.start();
      break;
  }
  bump(faults, fault);
  return fault;
}

async function main(): Promise<boolean> {
  say(`seed ${seed}, ${killTarget !== undefined ? `${killTarget} faults` : `${seconds} s`}, ${workerCount} workers, ${publisherCount} publishers, appendfsync ${appendfsync}, store ${storeKind}, dir ${dir}`);
  redis = await startRedisServer({ dir: path.join(dir, 'redis'), appendfsync, logFile: path.join(dir, 'redis.log') });
  cluster = await startCluster({
    redisUrl: redis.url,
    workers: workerCount,
    dataDir: path.join(dir, 'data'),
    logDir: path.join(dir, 'logs'),
    queueName: 'chaos',
    store: storeKind,
    env: { LOG_LEVEL: 'info', MAX_BACKLOG_JOBS: '5000' },
  });
  baseUrl = cluster.baseUrl;
  probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  probe.on('error', () => undefined); // Redis is killed on purpose; the probe waits it out
  watch(cluster.api);
  cluster.workers.forEach(watch);

  const started = Date.now();
  let loadOn = true;
  let drainDeadline = Infinity;
  const publishers = Array.from({ length: publisherCount }, async (_, i) => {
    while (loadOn) {
      await deliver(nextRequest(i), () => drainDeadline);
      await pause(between(5, 30));
    }
  });

  let injected = 0;
  const done = () => (killTarget !== undefined ? injected >= killTarget : Date.now() - started >= seconds * 1000);
  while (!done()) {
    await pause(between(800, 2500));
    if (done()) break;
    const fault = await injectFault();
    injected++;
    if (injected % 10 === 0 || killTarget === undefined) {
      say(`${((Date.now() - started) / 1000).toFixed(0)} s: fault ${injected} (${fault}); ${counts.requests} requests, ${acked.size} events accepted`);
    }
  }
  const loadSeconds = (Date.now() - started) / 1000;

  // Stop the load; requests still being retried get two minutes to be accepted.
  loadOn = false;
  drainDeadline = Date.now() + 120_000;
  await Promise.all(publishers);
  say(`load stopped after ${loadSeconds.toFixed(0)} s; waiting for the queue to drain`);

  const final = await waitFor(
    async () => {
      const r = await fetch(`${baseUrl}/stats`);
      if (r.status !== 200) return false;
      const s = (await r.json()) as any;
      const q = s.queue ?? {};
      return s.pending === 0 && q.waiting === 0 && q.active === 0 && q.delayed === 0 && s;
    },
    { timeoutMs: 180_000, intervalMs: 250, what: 'the queue to drain' },
  );

  // Walk every stored event, from the outside.
  const storedKeys = new Map<string, number>();
  let storedCount = 0;
  let contentMismatch = 0;
  let after = 0;
  for (;;) {
    const r = await fetch(`${baseUrl}/events?limit=1000&after=${after}`);
    if (r.status !== 200) throw new Error(`/events answered ${r.status}`);
    const page = (await r.json()) as { events: (Ev & { seq: number })[]; next_after: number | null };
    for (const e of page.events) {
      storedCount++;
      const k = key(e);
      storedKeys.set(k, (storedKeys.get(k) ?? 0) + 1);
      const original = sent.get(k);
      if (original !== undefined && JSON.stringify(original.payload) !== JSON.stringify(e.payload)) contentMismatch++;
    }
    if (page.next_after === null) break;
    after = page.next_after;
  }
  const doubled = [...storedKeys].filter(([, n]) => n > 1).map(([k]) => k);
  const missing = [...acked].filter((k) => !storedKeys.has(k));
  const phantom = [...storedKeys.keys()].filter((k) => !sent.has(k));
  const storedUnacked = [...storedKeys.keys()].filter((k) => !acked.has(k)).length;

  expected.add(cluster.api);
  cluster.workers.forEach((w) => expected.add(w));
  const exits = await cluster.stop();
  const unclean = exits.filter((e) => e.code !== 0).length;
  // The store read directly, as the API reads it, once every process has stopped.
  const store = await openStore(loadConfig(cluster.env), 'api');
  const problems = await store.integrityCheck();
  const direct = await store.counts({ jobIds: [], topicsLimit: 0 });
  await store.close();
  await redis.stop();

  const checks: [string, boolean, string][] = [
    ['every event answered 202 is stored', missing.length === 0, `${missing.length} missing of ${acked.size}${missing.length ? `, e.g. ${missing.slice(0, 3).join(', ')}` : ''}`],
    ['nothing is stored twice', doubled.length === 0, `${doubled.length} identities stored more than once`],
    ['nothing is stored that was never sent', phantom.length === 0, `${phantom.length} unknown identities`],
    ['stored content is what was sent', contentMismatch === 0, `${contentMismatch} mismatches`],
    ['received == unique_processed + duplicate_dropped', final.received === final.unique_processed + final.duplicate_dropped, `${final.received} == ${final.unique_processed} + ${final.duplicate_dropped}`],
    ['unique_processed == events walked in GET /events', final.unique_processed === storedCount, `${final.unique_processed} vs ${storedCount}`],
    ['received covers every 202 and no more than was sent', final.received >= counts.events_in_202 && final.received <= counts.events_maybe_queued, `${counts.events_in_202} <= ${final.received} <= ${counts.events_maybe_queued}`],
    ['no job in the failed set', (final.queue?.failed ?? 0) === 0, `${final.queue?.failed} failed jobs`],
    ['no process died on its own', unexpectedExits.length === 0, unexpectedExits.join('\n')],
    ['SIGTERM stops every process cleanly', unclean === 0 && anomalies.every((a) => !a.includes('SIGTERM')), `${unclean} unclean at the end`],
    ['every answer was 202 or 503', anomalies.every((a) => a.includes('SIGTERM')), anomalies.filter((a) => !a.includes('SIGTERM')).slice(0, 5).join('\n')],
    ['the store passes its integrity check and agrees with the API', problems.length === 0 && direct.uniqueProcessed === storedCount, `${problems.length === 0 ? 'ok' : problems.slice(0, 3).join('; ')}, ${direct.uniqueProcessed} stored`],
  ];

  await Promise.all(measuring);
  probe?.disconnect();
  const sortedRecoveries = [...recoveries].sort((x, y) => x - y);
  const recovery = sortedRecoveries.length === 0
    ? 'no worker was killed holding a job'
    : `${sortedRecoveries.length} worker kills with jobs in hand; their jobs were taken over within p50 ${sortedRecoveries[Math.floor(sortedRecoveries.length / 2)]!.toFixed(1)} s, max ${sortedRecoveries.at(-1)!.toFixed(1)} s (JOB_LOCK_MS ${cluster.env.JOB_LOCK_MS ?? 'default'})`;
  const totalFaults = Object.values(faults).reduce((a, b) => a + b, 0);
  say(`faults survived: ${totalFaults} ${JSON.stringify(faults)}`);
  say(`load: ${counts.requests} requests (${JSON.stringify(counts.by_kind)}), ${counts.attempts} attempts, answers ${JSON.stringify(counts.answers)}, ${counts.network_errors} network errors, ${counts.timeouts} timeouts, ${counts.gave_up} given up`);
  say(`events: ${sent.size} distinct sent, ${counts.copies_sent} copies sent, ${acked.size} distinct accepted (202), ${final.received - counts.events_in_202} queued by requests whose answer was lost, ${storedUnacked} stored but never answered 202`);
  say(`stats: received ${final.received}, unique_processed ${final.unique_processed}, duplicate_dropped ${final.duplicate_dropped}, pending ${final.pending}`);
  say(`checked: ${storedCount} stored events walked, ${acked.size} accepted identities looked up`);
  say(`recovery: ${recovery}`);
  let ok = true;
  for (const [name, pass, detail] of checks) {
    ok &&= pass;
    say(`${pass ? 'PASS' : 'FAIL'} ${name} (${detail})`);
  }
  console.log(JSON.stringify({ result: ok ? 'pass' : 'fail', seed, seconds: +loadSeconds.toFixed(1), faults, total_faults: totalFaults, ...counts, distinct_sent: sent.size, distinct_accepted: acked.size, stored: storedCount, received: final.received, unique_processed: final.unique_processed, duplicate_dropped: final.duplicate_dropped, recovery_seconds: sortedRecoveries.map((r) => +r.toFixed(2)) }));
  return ok;
}

let passed = false;
try {
  passed = await main();
} catch (err) {
  console.error(`chaos: ${(err as Error).stack ?? String(err)}`);
  if (cluster) console.error(cluster.logTail(20));
} finally {
  if (cluster) {
    [cluster.api, ...cluster.workers].forEach((p) => p && expected.add(p));
    await cluster.destroy().catch(() => undefined);
  }
  await redis?.kill().catch(() => undefined);
  if (passed && !args.keep) fs.rmSync(dir, { recursive: true, force: true });
  else say(`processes' logs and data kept in ${dir}`);
}
process.exit(passed ? 0 : 1);
