// `npm run bench`: the service as real processes (private Redis, the API, N workers),
// driven by a load generator in its own process, plus the stage limits measured in the
// same run. Results go to BENCHMARKS.md (a dated table) and bench-results/*.json.
import { fork, execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRedisServer, freePort, type RedisServer } from '../scripts/redis-server.js';
import { startCluster } from '../tools/harness/cluster.js';
import { stats, type Stats } from '../tools/harness/http.js';
import { waitFor } from '../tools/harness/wait.js';
import { ROOT } from '../tools/harness/root.js';
import { createTestDatabase, type TestDatabase } from '../tools/harness/postgres.js';
import type { StoreKind } from '../tools/harness/cluster.js';
import { prefilledDatabase, prefilledDir } from './prefill.js';
import { runStoreStage } from './stages/writers.js';
import type { IdOrder } from './workload.js';
import type { LoadProgress, LoadResult, LoadSpec } from './load.js';
import { killMidStream, type RecoveryResult } from './recovery.js';
import { DEFAULT_JOB_LOCK_MS } from '../shared/config.js';
import { openSqliteStore } from '../shared/store/sqlite/store.js';
import { openPostgresStore } from '../shared/store/postgres/store.js';
import type { Cluster } from '../tools/harness/cluster.js';
import { commitTimes, streamSection, type CommitTimes, type SubscribersExpect, type SubscribersResult, type SubscribersSpec } from './subscribers.js';
import { writeBenchmarks } from './summary.js';


const RESULTS = path.join(ROOT, 'bench-results');

const HELP = `npm run bench -- [options]

Runs the service as real processes and measures it. With no scenario options it runs the
four target scenarios (batched-random, batched-ordered, single, growth) and the stage limits.

  --scenario NAME     one of: batched-random, batched-ordered, single, empty-batched, wait,
                      recovery, writers, all (default: all: the first four, wait,
                      recovery and writers)
                      wait: one event per request with ?wait=5, latency until processed
                      recovery: a worker SIGKILLed mid-stream; time until its jobs are committed
                      writers: the store stage alone with 1, 2 and 4 concurrent writers, on both stores
  --store sqlite|postgres          the store of the service under test (default sqlite;
                                   postgres: a database of its own on TEST_POSTGRES_URL's server)
  --events N          events to publish per scenario (default per scenario)
  --batch N           events per request; 1 = one event per request
  --concurrency N     requests in flight
  --dup R             share of copies, 0..1
  --workers N         worker processes
  --topics N          topics
  --ids random|ordered
  --prefill N         events stored before measuring
  --appendfsync everysec|always   Redis durability (default everysec)
  --synchronous FULL|NORMAL        SQLite durability (default FULL)
  --subscribers LIST  run each scenario once per number of live subscribers of every
                      event (GET /events/stream), e.g. 0,1,100: delivery latency, and
                      publishing throughput against the run with 0 (STREAM_* and
                      MAX_SUBSCRIBERS from the environment reach the API)
  --subscribe-to all|one-topic   what each subscriber follows: every event (default),
                      or one of the scenario's topics, round robin
  --no-stages         skip the stage limits
  --no-write          do not write BENCHMARKS.md
  --help
`;

type Scenario = {
  name: string;
  /** Only for ?wait: seconds the producer waits for the verdicts. */
  wait?: number;
  events: number;
  batch: number;
  concurrency: number;
  dupRatio: number;
  workers: number;
  topics: number;
  ids: IdOrder;
  prefill: number;
  /** Recovery: one worker is killed (SIGKILL) a third of the way through, and not restarted. */
  killWorker?: boolean;
  target: string;
};

const PRESETS: Record<string, Scenario> = {
  'batched-random': { name: 'batched-random', events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 10_000_000, target: '>= 60,000 events/s end to end; >= 75% of empty-batched' },
  'batched-ordered': { name: 'batched-ordered', events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'ordered', prefill: 10_000_000, target: '>= 1.5x batched-random (both at 10 M stored)' },
  single: { name: 'single', events: 200_000, batch: 1, concurrency: 64, dupRatio: 0.2, workers: 2, topics: 8, ids: 'random', prefill: 0, target: 'service CPU <= 160 µs per event, p99 < 25 ms; >= 10,000 events/s, lag not growing' },
  wait: { name: 'wait', events: 20_000, batch: 1, concurrency: 16, dupRatio: 0.2, workers: 2, topics: 8, ids: 'random', prefill: 0, wait: 5, target: 'latency of ?wait for one event, publish to verdict (p50/p99)' },
  recovery: { name: 'recovery', events: 200_000, batch: 100, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 0, killWorker: true, target: "a killed worker's jobs committed by another within 10 s" },
  'empty-batched': { name: 'empty-batched', events: 1_000_000, batch: 1000, concurrency: 8, dupRatio: 0.3, workers: 2, topics: 8, ids: 'random', prefill: 0, target: 'growth: batched-random >= 75% of this' },
};

type Sample = { t: number; processed: number; pending: number };

type RunResult = {
  scenario: Scenario;
  store: StoreKind;
  /** Live subscribers during the run (undefined: not asked for). */
  subscribers?: number;
  oneTopicEach?: boolean;
  stream?: SubscribersResult;
  commits?: CommitTimes;
  load: LoadResult;
  endToEndSeconds: number;
  endToEndEventsPerSecond: number;
  publishEventsPerSecond: number;
  publishRequestsPerSecond: number;
  lag: { maxEvents: number; atHalf: number; atEnd: number };
  peakRssMb: Record<string, number>;
  /** CPU seconds each process used from the first request to the drained queue. */
  cpuSeconds: Record<string, number>;
  /** Queue jobs committed during the run: events per job says how much the API coalesced. */
  jobs: number;
  exact: boolean;
  final: { received: number; unique_processed: number; duplicate_dropped: number };
  expected: { received: number; unique_processed: number; duplicate_dropped: number };
  stages?: { bareHttp: StageRate; bullmq: StageRate; store: StageRate };
  recovery?: RecoveryResult;
};
type StageRate = {
  eventsPerSecond: number;
  requestsPerSecond?: number;
  /** CPU of the stage's own processes (the bare server; BullMQ's client and Redis), load excluded. */
  cpuMicrosPerEvent?: number;
  eventsPerJob?: number;
  note: string;
};

const tty = process.stderr.isTTY;
let lastLine = 0;
function progress(line: string, force = false): void {
  if (tty) process.stderr.write(`\r\x1b[K${line}`);
  else if (force || Date.now() - lastLine > 2000) {
    lastLine = Date.now();
    process.stderr.write(`${line}\n`);
  }
}
const say = (line: string) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`);

/**
 * Writes out what earlier steps left dirty in the page cache (a copied 10 M prefill is over
 * a GB): else the kernel flushes it during the next measurement, on the same two cores.
 */
function settle(): void {
  execSync('sync');
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Peak resident memory of a process, from the kernel's high-water mark. */
function peakRssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/**
 * Runs a bench script as a child process. A child that first says { type: 'ready' } (the
 * load generator, once its requests are built) is sent 'go' after `onReady` resolves: what
 * it did before is not measured.
 */
function child<T>(script: string, arg: unknown, onMessage?: (m: any) => void, onReady: () => Promise<void> = () => Promise.resolve()): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = fork(path.join(import.meta.dirname, script), [JSON.stringify(arg)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: T | undefined;
    c.on('message', (m: any) => {
      if (m?.type === 'progress') onMessage?.(m);
      else if (m?.type === 'ready') void onReady().then(() => c.send('go'), (err: unknown) => (c.kill(), reject(err instanceof Error ? err : new Error(String(err)))));
      else result = m as T;
    });
    c.on('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`${script} exited with ${code}`))));
  });
}

/**
 * Each stage alone, on the scenario's shapes. `jobEvents`: events per job as the API made
 * them in the run (a one-event request travels in a coalesced job, not a job of its own).
 */
async function measureStages(s: Scenario, redis: RedisServer, dataDir: string, store: StoreKind, jobEvents: number): Promise<RunResult['stages']> {
  const stageEvents = Math.min(s.events, s.batch === 1 ? 100_000 : 500_000);
  // A bare HTTP server parsing the same bodies.
  const port = await freePort();
  const server = fork(path.join(import.meta.dirname, 'stages/bare-http.js'), [String(port)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((r) => server.once('message', () => r()));
  let serverCpuAtStart = 0;
  const bare = await child<LoadResult>('load.js', {
    url: `http://127.0.0.1:${port}`,
    events: stageEvents,
    batch: s.batch,
    concurrency: s.concurrency,
    dupRatio: s.dupRatio,
    topics: s.topics,
    ids: s.ids,
    seed: 3,
    prefix: 'bare',
  } satisfies LoadSpec, undefined, () => Promise.resolve(void (serverCpuAtStart = cpuSeconds(server.pid))));
  const bareCpu = cpuSeconds(server.pid) - serverCpuAtStart;
  server.kill();
  progress(`${s.name}: stage bare-http ${Math.round(bare.accepted / bare.seconds)} events/s`, true);
  // BullMQ add + no-op process, jobs shaped as the API makes them.
  const jobBatch = Math.max(1, Math.round(jobEvents));
  const redisCpuAtStart = cpuSeconds(redis.pid());
  const bull = await child<{ events: number; eventsPerSecond: number; jobs: number; cpuSeconds: number }>('stages/bullmq.js', {
    redisUrl: redis.url,
    events: stageEvents,
    batch: jobBatch,
    concurrency: s.concurrency,
    workers: s.workers,
  });
  const bullCpu = bull.cpuSeconds + cpuSeconds(redis.pid()) - redisCpuAtStart;
  progress(`${s.name}: stage bullmq ${Math.round(bull.eventsPerSecond)} events/s`, true);
  // The store alone, one writer, on a copy of the same prefilled store.
  const storeStage = async (): Promise<{ eventsPerSecond: number }> => {
    if (store === 'postgres') {
      const template = await prefilledDatabase({ events: s.prefill, ids: s.ids, log: (l) => progress(l, true) });
      const batch = s.batch === 1 ? 50 : s.batch;
      return runStoreStage({ kind: 'postgres', writers: 1, events: stageEvents, batch, jobsPerCommit: 20, dupRatio: s.dupRatio, ids: s.ids, prefill: 0, ...(template && { template }) });
    }
    const storeDir = path.join(dataDir, 'stage-store');
    await prefilledDir({ events: s.prefill, ids: s.ids, into: storeDir, cacheDir: RESULTS, log: (l) => progress(l, true) });
    settle();
    const result = await child<{ eventsPerSecond: number }>('stages/store.js', {
      dataDir: storeDir,
      events: stageEvents,
      batch: s.batch === 1 ? 50 : s.batch,
      jobsPerCommit: 20,
      dupRatio: s.dupRatio,
      ids: s.ids,
      cacheMb: 64,
      synchronous: 'FULL',
    });
    fs.rmSync(storeDir, { recursive: true, force: true });
    return result;
  };
  const storeRate = await storeStage();
  return {
    bareHttp: {
      eventsPerSecond: bare.accepted / bare.seconds,
      requestsPerSecond: bare.requests / bare.seconds,
      cpuMicrosPerEvent: (bareCpu * 1e6) / bare.accepted,
      note: 'node:http + JSON.parse, same bodies and concurrency',
    },
    bullmq: {
      eventsPerSecond: bull.eventsPerSecond,
      cpuMicrosPerEvent: (bullCpu * 1e6) / bull.events,
      eventsPerJob: jobBatch,
      note: `add + no-op process, ${jobBatch} events/job, ${s.workers} workers`,
    },
    store: { eventsPerSecond: storeRate.eventsPerSecond, note: `${store} commitJobs alone at ${s.prefill.toLocaleString()} stored, ${s.ids} ids` },
  };
}

/** N live subscribers in a process of their own, connected before the load starts. */
async function startSubscribers(spec: SubscribersSpec): Promise<{ finish(expect: Omit<SubscribersExpect, 'type'>): Promise<SubscribersResult>; kill(): void }> {
  const c = fork(path.join(import.meta.dirname, 'subscribers.js'), [JSON.stringify(spec)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let result: SubscribersResult | undefined;
  const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    c.on('message', (m: { type: string }) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'done') result = m as SubscribersResult;
    });
    void exited.then(() => reject(new Error('the subscribers process exited before its streams were open')));
  });
  return {
    kill: () => c.kill(),
    async finish(expect) {
      c.send({ type: 'expect', ...expect } satisfies SubscribersExpect);
      await exited;
      if (result === undefined) throw new Error('the subscribers process exited without a result');
      return result;
    },
  };
}

/** Kills worker 1 a third of the way through the load; the time until its jobs are committed. */
async function measureRecovery(s: Scenario, cluster: Cluster, redisUrl: string, databaseUrl: string | undefined, dataDir: string, accepted: () => number): Promise<RecoveryResult> {
  const store = databaseUrl !== undefined ? await openPostgresStore({ url: databaseUrl, poolSize: 2 }) : openSqliteStore({ dataDir });
  try {
    const result = await killMidStream({ redisUrl, queueName: cluster.queueName, victim: cluster.workers[0]!, store, ready: () => accepted() >= s.events / 3, jobLockMs: String(DEFAULT_JOB_LOCK_MS) });
    progress(`${s.name}: ${result.heldJobs} jobs active at the kill, all committed ${result.seconds?.toFixed(1) ?? 'never'} s after it`, true);
    return result;
  } finally {
    await store.close();
  }
}

type RunOptions = {
  stages: boolean;
  appendfsync: 'everysec' | 'always';
  synchronous: string;
  store: StoreKind;
  subscribers?: number | undefined;
  oneTopicEach?: boolean;
};

async function runScenario(s: Scenario, opts: RunOptions): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `agg-bench-${s.name}-`));
  const dataDir = path.join(dir, 'data');
  let database: TestDatabase | undefined;
  if (opts.store === 'sqlite') {
    await prefilledDir({ events: s.prefill, ids: s.ids, into: dataDir, cacheDir: RESULTS, log: (l) => progress(l, true) });
  } else {
    const template = await prefilledDatabase({ events: s.prefill, ids: s.ids, log: (l) => progress(l, true) });
    database = await createTestDatabase({ prefix: 'agg_bench', ...(template && { template }) });
  }
  settle();
  const redis = await startRedisServer({ dir: path.join(dir, 'redis'), appendfsync: opts.appendfsync });
  const cluster = await startCluster({
    redisUrl: redis.url,
    workers: s.workers,
    dataDir,
    store: opts.store,
    ...(database && { databaseUrl: database.url }),
    logDir: path.join(dir, 'logs'),
    env: {
      LOG_LEVEL: 'warn',
      SQLITE_SYNCHRONOUS: opts.synchronous,
      // Long locks keep a worker that is slow under this load from losing its jobs; the
      // recovery scenario runs with the service's default, which is what it measures.
      JOB_LOCK_MS: String(s.killWorker ? DEFAULT_JOB_LOCK_MS : 30_000),
      ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}),
      // Settings to compare (the stream, coalescing, group commits): COALESCE_MS=... npm run bench -- ...
      ...Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => /^(STREAM_|COALESCE_|WORKER_|MAX_SUBSCRIBERS$)/.test(e[0]) && e[1] !== undefined)),
    },
  }).catch(async (err: unknown) => {
    await redis.stop();
    await database?.drop();
    throw err;
  });
  let subscribers: Awaited<ReturnType<typeof startSubscribers>> | undefined;
  try {
    subscribers = opts.subscribers
      ? await startSubscribers({
          url: cluster.baseUrl,
          redisUrl: redis.url,
          queueName: cluster.queueName,
          count: opts.subscribers,
          topics: opts.oneTopicEach ? Array.from({ length: s.topics }, (_, i) => `topic-${i}`) : undefined,
        })
      : undefined;
    if (subscribers) progress(`${s.name}: ${opts.subscribers} subscribers connected`, true);
    const pids = (): Record<string, number | undefined> => ({
      api: cluster.api.child.pid,
      ...Object.fromEntries(cluster.workers.map((w, i) => [`worker-${i + 1}`, w.child.pid])),
      redis: redis.pid(),
    });
    let cpuBefore: Record<string, number> = {};
    let baseProcessed = 0;
    let base!: Stats;
    const samples: Sample[] = [];
    let accepted = 0;
    let loadDone = false;
    let t0 = 0;
    let recovering: ReturnType<typeof measureRecovery> | undefined;
    let poller: Promise<void> | undefined;
    // The clock starts once the load generator has built its requests.
    const start = async () => {
      cpuBefore = Object.fromEntries(Object.entries(pids()).map(([k, pid]) => [k, cpuSeconds(pid)]));
      base = await stats(cluster.baseUrl);
      baseProcessed = base.unique_processed + base.duplicate_dropped;
      t0 = performance.now();
      recovering = s.killWorker ? measureRecovery(s, cluster, redis.url, database?.url, dataDir, () => accepted) : undefined;
      poller = (async () => {
        while (!loadDone || samples.at(-1)?.processed !== s.events) {
          const st = await stats(cluster.baseUrl).catch(() => undefined);
          if (st) {
            const processed = st.unique_processed + st.duplicate_dropped - baseProcessed;
            samples.push({ t: (performance.now() - t0) / 1000, processed, pending: st.pending ?? 0 });
            const secs = (performance.now() - t0) / 1000;
            const rate = processed / secs;
            const eta = rate > 0 ? Math.max(0, (s.events - processed) / rate) : 0;
            progress(
              `${s.name}: accepted ${accepted.toLocaleString()} / ${s.events.toLocaleString()}, stored+dropped ${processed.toLocaleString()}, ${Math.round(rate).toLocaleString()} events/s, lag ${(st.pending ?? 0).toLocaleString()}, ETA ${eta.toFixed(0)} s`,
            );
            if (loadDone && processed >= s.events) break;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
    };
    progress(`${s.name}: building the load's requests`, true);
    const load = await child<LoadResult>(
      'load.js',
      { url: cluster.baseUrl, events: s.events, batch: s.batch, concurrency: s.concurrency, dupRatio: s.dupRatio, topics: s.topics, ids: s.ids, seed: 11, prefix: 'run', ...(s.wait !== undefined && { wait: s.wait }) } satisfies LoadSpec,
      (p: LoadProgress) => (accepted = p.accepted),
      start,
    );
    accepted = load.accepted;
    loadDone = true;
    const recovery = await recovering;
    await waitFor(() => poller!.then(() => true), { timeoutMs: 600_000, what: 'the queue to drain' });
    const endToEndSeconds = samples.at(-1)!.t;
    const final = await stats(cluster.baseUrl);
    const cpu: Record<string, number> = Object.fromEntries(
      // A process killed on purpose (recovery) has left /proc: it is left out.
      Object.entries(pids())
        .filter(([, pid]) => pid !== undefined && fs.existsSync(`/proc/${pid}`))
        .map(([k, pid]) => [k, +(cpuSeconds(pid) - (cpuBefore[k] ?? 0)).toFixed(1)]),
    );
    cpu.load = +load.cpuSeconds.toFixed(1);
    const perTopic = (st: Stats) => (st.per_topic ?? {}) as Record<string, number>;
    const stream = await subscribers?.finish({
      events: final.unique_processed - base.unique_processed,
      perTopic: Object.fromEntries(Object.entries(perTopic(final)).map(([t, n]) => [t, n - (perTopic(base)[t] ?? 0)])),
    });
    if (stream) cpu.subscribers = +stream.cpuSeconds.toFixed(1);
    // Once the workers' last heartbeat (every 3 s) has their last commits.
    const commits = opts.subscribers === undefined ? undefined : await new Promise((r) => setTimeout(r, 3500)).then(() => commitTimes(cluster.baseUrl));
    const peak: Record<string, number> = { api: peakRssMb(cluster.api.child.pid), redis: peakRssMb(redis.pid()) };
    cluster.workers.forEach((w, i) => (peak[`worker-${i + 1}`] = peakRssMb(w.child.pid)));
    for (const [k, v] of Object.entries(peak)) if (v === 0) delete peak[k];
    const lagAt = (frac: number) => {
      const t = load.seconds * frac;
      const sample = samples.find((x) => x.t >= t) ?? samples.at(-1)!;
      return sample.pending;
    };
    const expected = {
      received: base.received + s.events,
      unique_processed: base.unique_processed + load.originals,
      duplicate_dropped: base.duplicate_dropped + (s.events - load.originals),
    };
    const result: RunResult = {
      scenario: s,
      store: opts.store,
      subscribers: opts.subscribers,
      oneTopicEach: opts.oneTopicEach,
      stream,
      commits,
      load,
      endToEndSeconds,
      endToEndEventsPerSecond: s.events / endToEndSeconds,
      publishEventsPerSecond: load.accepted / load.seconds,
      publishRequestsPerSecond: load.requests / load.seconds,
      lag: { maxEvents: Math.max(...samples.map((x) => x.pending)), atHalf: lagAt(0.5), atEnd: lagAt(1) },
      peakRssMb: peak,
      cpuSeconds: cpu,
      jobs: committedJobs(final) - committedJobs(base),
      exact:
        final.received === expected.received &&
        final.unique_processed === expected.unique_processed &&
        final.duplicate_dropped === expected.duplicate_dropped &&
        final.pending === 0,
      final: { received: final.received, unique_processed: final.unique_processed, duplicate_dropped: final.duplicate_dropped },
      expected,
      ...(recovery && { recovery }),
    };
    say(
      `${s.name}: ${Math.round(result.endToEndEventsPerSecond).toLocaleString()} events/s end to end, publish ${Math.round(result.publishEventsPerSecond).toLocaleString()} events/s, p99 ${load.latencyMs.p99.toFixed(1)} ms, service CPU ${((serviceCpuSeconds(cpu) * 1e6) / s.events).toFixed(1)} µs/event, ${(s.events / result.jobs).toFixed(2)} events/job, exact: ${result.exact}${stream ? `; ${stream.subscribers} subscribers: delivery p99 ${stream.latencyMs.p99} ms, exact: ${stream.exact}` : ''}`,
    );
    await cluster.stop();
    if (opts.stages) result.stages = await measureStages(s, redis, dir, opts.store, s.events / result.jobs);
    return result;
  } finally {
    subscribers?.kill();
    await cluster.destroy();
    await redis.stop();
    await database?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const committedJobs = (st: Stats) => (st.store as { committed_jobs: number }).committed_jobs;
const sum = (cpu: Record<string, number>) => Object.values(cpu).reduce((a, b) => a + b, 0);
/** What the service itself spends: the load generator and the subscribers are its clients. */
const serviceCpuSeconds = (cpu: Record<string, number>) => sum(Object.fromEntries(Object.entries(cpu).filter(([k]) => k !== 'load' && k !== 'subscribers')));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const label = (r: RunResult) =>
  r.subscribers === undefined ? r.scenario.name : `${r.scenario.name}, ${r.subscribers} subscribers${r.oneTopicEach && r.subscribers > 0 ? ' of one topic each' : ''}`;

function markdown(results: RunResult[], meta: Record<string, string>): string {
  const lines = [
    `## ${meta.date} — commit ${meta.commit}`,
    '',
    `Machine: ${meta.cpu}, ${meta.cores} cores, ${meta.memory}; Node ${meta.node}; ${meta.redis}; store ${meta.store}${meta.store === 'sqlite' ? ` (synchronous ${meta.synchronous})` : ' (PostgreSQL on the same machine)'}; Redis appendfsync ${meta.appendfsync}. API, workers, Redis${meta.store === 'postgres' ? ', PostgreSQL' : ''} and the load generator share the cores.`,
    '',
    '| scenario | settings | end to end events/s | publish events/s (req/s) | p50 / p99 ms | lag max / at half / at end | peak RSS MB | exact | target |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |',
  ];
  for (const r of results) {
    const s = r.scenario;
    lines.push(
      `| ${label(r)} | ${fmt(s.events)} events, batch ${s.batch}, ${s.concurrency} in flight, ${s.dupRatio * 100}% copies, ${s.workers} workers, ${s.ids} ids, prefill ${fmt(s.prefill)}, ${r.store}${s.wait === undefined ? '' : `, ?wait=${s.wait} (${fmt(r.load.processed)} events answered 200 processed)`} | **${fmt(r.endToEndEventsPerSecond)}** | ${fmt(r.publishEventsPerSecond)} (${fmt(r.publishRequestsPerSecond)}) | ${r.load.latencyMs.p50.toFixed(1)} / ${r.load.latencyMs.p99.toFixed(1)} | ${fmt(r.lag.maxEvents)} / ${fmt(r.lag.atHalf)} / ${fmt(r.lag.atEnd)} | ${Object.entries(r.peakRssMb).map(([k, v]) => `${k} ${v}`).join(', ')} | ${r.exact ? 'yes' : `**no** (${JSON.stringify(r.final)} vs ${JSON.stringify(r.expected)})`} | ${s.target} |`,
    );
  }
  lines.push('', 'CPU seconds used by each process from the first request until the queue was drained (the machine has 2 cores, so at most 2 s of CPU per second):', '');
  lines.push(
    '| scenario | seconds | CPU s by process | CPU µs per event, all processes | CPU µs per event, service (API, workers, Redis) |',
    '| --- | ---: | --- | ---: | ---: |',
  );
  for (const r of results) {
    const perEvent = (seconds: number) => ((seconds * 1e6) / r.scenario.events).toFixed(1);
    lines.push(
      `| ${label(r)} | ${r.endToEndSeconds.toFixed(1)} | ${Object.entries(r.cpuSeconds).map(([k, v]) => `${k} ${v}`).join(', ')} | ${perEvent(sum(r.cpuSeconds))} | **${perEvent(serviceCpuSeconds(r.cpuSeconds))}** |`,
    );
  }
  const staged = results.filter((r) => r.stages);
  if (staged.length > 0) {
    lines.push('', 'Stage limits measured in the same run (each stage alone, same shapes):', '');
    lines.push(
      '| scenario | bare node:http events/s (req/s) | its CPU µs per event | BullMQ add+process events/s (events per job, as the API made them) | its CPU µs per event, Redis included | store commit events/s |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    );
    const micros = (n: number | undefined) => (n === undefined ? '–' : n.toFixed(1));
    for (const r of staged) {
      const st = r.stages!;
      lines.push(
        `| ${r.scenario.name} | ${fmt(st.bareHttp.eventsPerSecond)} (${fmt(st.bareHttp.requestsPerSecond ?? 0)}) | ${micros(st.bareHttp.cpuMicrosPerEvent)} | ${fmt(st.bullmq.eventsPerSecond)} (${st.bullmq.eventsPerJob ?? '–'}) | ${micros(st.bullmq.cpuMicrosPerEvent)} | ${fmt(st.store.eventsPerSecond)} |`,
      );
    }
  }
  const growth = results.find((r) => r.scenario.name === 'batched-random');
  const empty = results.find((r) => r.scenario.name === 'empty-batched');
  if (growth && empty) {
    lines.push(
      '',
      `Growth: batched rate at ${fmt(growth.scenario.prefill)} stored is ${((100 * growth.endToEndEventsPerSecond) / empty.endToEndEventsPerSecond).toFixed(0)}% of the rate on an empty store (target >= 75%).`,
    );
  }
  const ordered = results.find((r) => r.scenario.name === 'batched-ordered');
  if (growth && ordered && growth.scenario.prefill === ordered.scenario.prefill) {
    lines.push(
      '',
      `Ordered ids: batched at ${fmt(ordered.scenario.prefill)} stored runs at ${(ordered.endToEndEventsPerSecond / growth.endToEndEventsPerSecond).toFixed(2)}x the rate of random ids (target >= 1.5x).`,
    );
  }
  for (const r of results.filter((x) => x.recovery)) {
    const rec = r.recovery!;
    lines.push(
      '',
      `Recovery (${label(r)}): worker-1 was killed (SIGKILL) a third of the way through and not restarted; ${rec.heldJobs} jobs were active at the kill, and all of them were committed ${rec.seconds === undefined ? '**never** (within 120 s)' : `**${rec.seconds.toFixed(1)} s**`} after it, by the surviving worker (JOB_LOCK_MS ${rec.jobLockMs}; target: within 10 s).`,
    );
  }
  const streamed = results.filter((r) => r.subscribers !== undefined);
  if (streamed.length > 0) {
    lines.push(
      streamSection(
        streamed.map((r) => ({
          name: r.scenario.name,
          subscribers: r.subscribers!,
          follows: r.stream?.follows ?? (r.oneTopicEach ? `one of ${r.scenario.topics} topics each` : 'every event'),
          endToEnd: r.endToEndEventsPerSecond,
          publish: r.publishEventsPerSecond,
          stream: r.stream,
          commits: r.commits,
          cpu: r.cpuSeconds,
          seconds: r.endToEndSeconds,
        })),
      ),
    );
  }
  return lines.join('\n') + '\n';
}

const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));

type WritersResult = { store: StoreKind; writers: number; rounds: number[]; ratios: number[] };

/**
 * The store stage alone with 1, 2 and 4 concurrent writers (each its own process, as worker
 * processes are), on both stores. Rounds run 1, 2, 4 back to back, three times: on a shared
 * machine the load drifts over minutes, so ratios within a round say more than far-apart rates.
 */
async function measureWriters(events: number): Promise<WritersResult[]> {
  const out: WritersResult[] = [];
  for (const kind of ['sqlite', 'postgres'] as const) {
    const byWriters = new Map<number, WritersResult>();
    for (let round = 0; round < 3; round++) {
      let one = 0;
      for (const writers of [1, 2, 4]) {
        const r = await runStoreStage({ kind, writers, events, batch: 1000, jobsPerCommit: 20, dupRatio: 0.3, ids: 'random', prefill: 0 });
        progress(`writers: ${kind} ${writers} writer(s), round ${round + 1}: ${fmt(r.eventsPerSecond)} events/s`, true);
        let entry = byWriters.get(writers);
        if (entry === undefined) byWriters.set(writers, (entry = { store: kind, writers, rounds: [], ratios: [] }));
        entry.rounds.push(r.eventsPerSecond);
        if (writers === 1) one = r.eventsPerSecond;
        else entry.ratios.push(r.eventsPerSecond / one);
      }
    }
    out.push(...byWriters.values());
  }
  return out;
}

function writersMarkdown(results: WritersResult[]): string {
  if (results.length === 0) return '';
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lines = [
    '',
    'Store stage alone with concurrent writers (each a process with its own connection; jobs of 1,000 events, 20 per commit, 30% copies, random ids, empty store; three rounds of 1, 2, 4 writers):',
    '',
    '| store | writers | events/s, median (rounds) | x 1 writer, median of per-round ratios |',
    '| --- | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.store} | ${r.writers} | **${fmt(median(r.rounds))}** (${r.rounds.map(fmt).join(', ')}) | ${r.ratios.length === 0 ? '1.00' : `${median(r.ratios).toFixed(2)} (${r.ratios.map((x) => x.toFixed(2)).join(', ')})`} |`,
    );
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = (() => {
    try {
      return parseArgs({
        options: {
          scenario: { type: 'string', default: 'all' },
          events: { type: 'string' },
          batch: { type: 'string' },
          concurrency: { type: 'string' },
          dup: { type: 'string' },
          workers: { type: 'string' },
          topics: { type: 'string' },
          ids: { type: 'string' },
          prefill: { type: 'string' },
          appendfsync: { type: 'string', default: 'everysec' },
          synchronous: { type: 'string', default: 'FULL' },
          store: { type: 'string', default: 'sqlite' },
          subscribers: { type: 'string' },
          'subscribe-to': { type: 'string', default: 'all' },
          'no-stages': { type: 'boolean', default: false },
          'no-write': { type: 'boolean', default: false },
          help: { type: 'boolean', default: false },
        },
      });
    } catch (err) {
      console.error(`bench: ${(err as Error).message}\n\n${HELP}`);
      process.exit(2);
    }
  })();
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const all = values.scenario === 'all';
  const names = all ? ['empty-batched', 'batched-random', 'batched-ordered', 'single', 'wait', 'recovery'] : values.scenario === 'writers' ? [] : [values.scenario];
  const store = values.store as StoreKind;
  if (store !== 'sqlite' && store !== 'postgres') {
    console.error(`bench: --store must be sqlite or postgres\n\n${HELP}`);
    process.exit(2);
  }
  const scenarios = names.map((n) => {
    const preset = PRESETS[n];
    if (!preset) throw new Error(`unknown scenario ${n}; see --help`);
    return {
      ...preset,
      events: num(values.events, preset.events),
      batch: num(values.batch, preset.batch),
      concurrency: num(values.concurrency, preset.concurrency),
      dupRatio: num(values.dup, preset.dupRatio),
      workers: num(values.workers, preset.workers),
      topics: num(values.topics, preset.topics),
      ids: (values.ids as IdOrder | undefined) ?? preset.ids,
      prefill: num(values.prefill, preset.prefill),
    };
  });
  fs.mkdirSync(RESULTS, { recursive: true });
  const subscriberCounts = values.subscribers === undefined ? [undefined] : values.subscribers.split(',').map(Number);
  if (subscriberCounts.some((n) => n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= 10_000))) {
    console.error(`bench: --subscribers must be a comma-separated list of whole numbers from 0 to 10000\n\n${HELP}`);
    process.exit(2);
  }
  const results: RunResult[] = [];
  for (const s of scenarios) {
    for (const subscribers of subscriberCounts) {
      results.push(
        await runScenario(s, {
          stages: !values['no-stages'],
          appendfsync: values.appendfsync === 'always' ? 'always' : 'everysec',
          synchronous: values.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL',
          store,
          subscribers,
          oneTopicEach: values['subscribe-to'] === 'one-topic',
        }),
      );
    }
  }
  const writers = all || values.scenario === 'writers' ? await measureWriters(num(values.events, 200_000)) : [];
  const sh = (cmd: string) => {
    try {
      return execSync(cmd, { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  const meta = {
    date: new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC',
    // BENCHMARKS.md itself is left out: an earlier run's table is no change to what is measured.
    commit: sh('git rev-parse --short HEAD') + (sh("git status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md'") ? ' (with uncommitted changes)' : ''),
    cpu: os.cpus()[0]?.model ?? 'unknown cpu',
    cores: String(os.cpus().length),
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    redis: sh('redis-server --version').split(' ').slice(0, 3).join(' '),
    appendfsync: values.appendfsync,
    synchronous: values.synchronous,
    store,
  };
  const md = markdown(results, meta) + writersMarkdown(writers);
  process.stdout.write(`\n${md}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.writeFileSync(path.join(RESULTS, `bench-${stamp}.json`), JSON.stringify({ meta, results, writers }, null, 2));
  if (!values['no-write']) writeBenchmarks(path.join(ROOT, 'BENCHMARKS.md'), { results, meta, tables: md, full: all });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
