// One scenario end to end: the service started, the load run against it while it is sampled
// (a worker killed for recovery, subscribers connected if asked), the books checked, the
// stage limits measured, everything stopped.
import { DEFAULT_JOB_LOCK_MS } from '../shared/config.js';
import { openPostgresStore } from '../shared/store/postgres/store.js';
import { openSqliteStore } from '../shared/store/sqlite/store.js';
import { stats, type Stats } from '../tools/harness/http.js';
import { waitFor } from '../tools/harness/wait.js';
import { booksBalance, committedJobs, cpuSince, cpuSnapshot, expectedCounters, serviceCpuSeconds, topicDelta } from './accounting.js';
import { child, startSubscribers, type Subscribers } from './children.js';
import { ServiceProfiler, type ProcessProfile } from './cpu-profile.js';
import type { LoadProgress, LoadResult, LoadSpec } from './load.js';
import { peakRssMb, postgresCpuSeconds } from './procstat.js';
import { progress, say } from './progress.js';
import { killMidStream, type RecoveryResult } from './recovery.js';
import type { RunResult } from './results.js';
import { Sampler } from './sampler.js';
import type { Scenario } from './scenarios.js';
import { BenchService, type ServiceOptions } from './service.js';
import { measureStages } from './stage-limits.js';
import { storeBytes } from './store-size.js';
import { commitTimes } from './stream-report.js';

export type RunOptions = ServiceOptions & {
  stages: boolean;
  subscribers?: number | undefined;
  oneTopicEach?: boolean;
};

/** What the load phase leaves for the books. */
type Measured = { base: Stats; final: Stats; load: LoadResult; cpu: Record<string, number>; recovery: RecoveryResult | undefined; profiles: Record<string, ProcessProfile> | undefined };

/** Kills worker 1 a third of the way through the load; the time until its jobs are committed. */
async function measureRecovery(s: Scenario, service: BenchService, accepted: () => number): Promise<RecoveryResult> {
  const { cluster, database, dataDir } = service;
  const store = database !== undefined ? await openPostgresStore({ url: database.url, poolSize: 2 }) : openSqliteStore({ dataDir });
  try {
    const result = await killMidStream({ redisUrl: service.redis.url, queueName: cluster.queueName, victim: cluster.workers[0]!, store, ready: () => accepted() >= s.events / 3, jobLockMs: String(DEFAULT_JOB_LOCK_MS) });
    progress(`${s.name}: ${result.heldJobs} jobs active at the kill, all committed ${result.seconds?.toFixed(1) ?? 'never'} s after it`, true);
    return result;
  } finally {
    await store.close();
  }
}

/** Runs the load generator against the service; the clock starts once it has built its requests. */
async function runLoad(s: Scenario, service: BenchService, sampler: Sampler, opts: RunOptions): Promise<Measured> {
  const baseUrl = service.cluster.baseUrl;
  let cpuBefore: Record<string, number> = {};
  let base!: Stats;
  let recovering: Promise<RecoveryResult> | undefined;
  const profiler = opts.profileDir === undefined ? undefined : new ServiceProfiler(opts.profileDir, service.nodePids());
  // PostgreSQL serves only the bench on its machine: its server's CPU is the store's share.
  let postgresBefore: number | undefined;
  const start = async () => {
    profiler?.start();
    cpuBefore = cpuSnapshot(service.pids());
    if (service.database !== undefined) postgresBefore = postgresCpuSeconds();
    base = await stats(baseUrl);
    sampler.start(base);
    recovering = s.killWorker ? measureRecovery(s, service, () => sampler.accepted) : undefined;
  };
  progress(`${s.name}: building the load's requests`, true);
  const load = await child<LoadResult>(
    'load.js',
    { url: baseUrl, events: s.events, batch: s.batch, concurrency: s.concurrency, dupRatio: s.dupRatio, topics: s.topics, ids: s.ids, seed: 11, prefix: 'run', ...(s.wait !== undefined && { wait: s.wait }), ...(s.rate !== undefined && { rate: s.rate }) } satisfies LoadSpec,
    (p: LoadProgress) => (sampler.accepted = p.accepted),
    start,
  );
  const drained = sampler.drained(load.accepted);
  const recovery = await recovering;
  await waitFor(() => drained.then(() => true), { timeoutMs: 600_000, what: 'the queue to drain' });
  const final = await stats(baseUrl);
  const cpu = cpuSince(service.pids(), cpuBefore);
  if (postgresBefore !== undefined) cpu.postgres = +(postgresCpuSeconds() - postgresBefore).toFixed(1);
  // After the CPU is read: writing a profile is the profiler's cost, not the service's.
  const profiles = await profiler?.stop();
  cpu.load = +load.cpuSeconds.toFixed(1);
  return { base, final, load, cpu, recovery, profiles };
}

/** Peak RSS of the API, Redis and each worker, those still measurable. */
function peaks(service: BenchService): Record<string, number> {
  const peak: Record<string, number> = { api: peakRssMb(service.cluster.api.child.pid), redis: peakRssMb(service.redis.pid()) };
  service.cluster.workers.forEach((w, i) => (peak[`worker-${i + 1}`] = peakRssMb(w.child.pid)));
  for (const [k, v] of Object.entries(peak)) if (v === 0) delete peak[k];
  return peak;
}

function summaryLine(r: RunResult): string {
  const { scenario: s, load, stream } = r;
  return `${s.name}: ${Math.round(r.endToEndEventsPerSecond).toLocaleString()} events/s end to end, publish ${Math.round(r.publishEventsPerSecond).toLocaleString()} events/s, p99 ${load.latencyMs.p99.toFixed(1)} ms, service CPU ${((serviceCpuSeconds(r.cpuSeconds) * 1e6) / s.events).toFixed(1)} µs/event, ${(s.events / r.jobs).toFixed(2)} events/job, exact: ${r.exact}${stream ? `; ${stream.subscribers} subscribers: delivery p99 ${stream.latencyMs.p99} ms, exact: ${stream.exact}` : ''}`;
}

async function connectSubscribers(s: Scenario, service: BenchService, opts: RunOptions): Promise<Subscribers | undefined> {
  if (!opts.subscribers) return undefined;
  const subscribers = await startSubscribers({
    url: service.cluster.baseUrl,
    redisUrl: service.redis.url,
    queueName: service.cluster.queueName,
    count: opts.subscribers,
    topics: opts.oneTopicEach ? Array.from({ length: s.topics }, (_, i) => `topic-${i}`) : undefined,
  });
  progress(`${s.name}: ${opts.subscribers} subscribers connected`, true);
  return subscribers;
}

export async function runScenario(s: Scenario, asked: RunOptions): Promise<RunResult> {
  const opts = { ...asked, store: s.store ?? asked.store };
  const service = await BenchService.start(s, opts);
  const sampler = new Sampler(s, service.cluster.baseUrl);
  let subscribers: Subscribers | undefined;
  try {
    subscribers = await connectSubscribers(s, service, opts);
    const { base, final, load, cpu, recovery, profiles } = await runLoad(s, service, sampler, opts);
    const endToEndSeconds = sampler.seconds();
    const stream = await subscribers?.finish({ events: final.unique_processed - base.unique_processed, perTopic: topicDelta(base, final) });
    if (stream) cpu.subscribers = +stream.cpuSeconds.toFixed(1);
    // Once the workers' last heartbeat (every 3 s) has their last commits.
    const commits = opts.subscribers === undefined ? undefined : await new Promise((r) => setTimeout(r, 3500)).then(() => commitTimes(service.cluster.baseUrl));
    const expected = expectedCounters(s, base, load);
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
      lag: { maxEvents: sampler.maxLag(), atHalf: sampler.lagAt(load.seconds, 0.5), atEnd: sampler.lagAt(load.seconds, 1) },
      peakRssMb: peaks(service),
      cpuSeconds: cpu,
      jobs: committedJobs(final) - committedJobs(base),
      exact: booksBalance(final, expected),
      final: { received: final.received, unique_processed: final.unique_processed, duplicate_dropped: final.duplicate_dropped },
      expected,
      ...(recovery && { recovery }),
      ...(profiles && { profiles }),
    };
    say(summaryLine(result));
    await service.cluster.stop();
    // Once the workers have stopped: SQLite's WAL checkpointed, as a store at rest has it.
    result.storeBytes = await storeBytes(service);
    if (opts.stages) result.stages = await measureStages(s, service.redis, service.dir, opts.store, s.events / result.jobs);
    return result;
  } finally {
    subscribers?.kill();
    await sampler.close();
    await service.close();
  }
}
