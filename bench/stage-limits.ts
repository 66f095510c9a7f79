// Each stage of the service alone (bare HTTP, BullMQ, the store), on a scenario's shapes: the
// limits the end-to-end rate is read against.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, type RedisServer } from '../scripts/redis-server.js';
import type { StoreKind } from '../tools/harness/cluster.js';
import { child } from './children.js';
import type { LoadResult, LoadSpec } from './load.js';
import { prefilledDatabase, prefilledDir } from './prefill.js';
import { cpuSeconds, settle } from './procstat.js';
import { progress } from './progress.js';
import { RESULTS, type RunResult, type StageRate } from './results.js';
import type { Scenario } from './scenarios.js';
import { runStoreStage } from './stages/writers.js';

/** A bare HTTP server parsing the same bodies. */
async function bareHttpStage(s: Scenario, stageEvents: number): Promise<StageRate> {
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
  return {
    eventsPerSecond: bare.accepted / bare.seconds,
    requestsPerSecond: bare.requests / bare.seconds,
    cpuMicrosPerEvent: (bareCpu * 1e6) / bare.accepted,
    note: 'node:http + JSON.parse, same bodies and concurrency',
  };
}

/** BullMQ add + no-op process, jobs shaped as the API makes them. */
async function bullmqStage(s: Scenario, redis: RedisServer, stageEvents: number, jobEvents: number): Promise<StageRate> {
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
  return {
    eventsPerSecond: bull.eventsPerSecond,
    cpuMicrosPerEvent: (bullCpu * 1e6) / bull.events,
    eventsPerJob: jobBatch,
    note: `add + no-op process, ${jobBatch} events/job, ${s.workers} workers`,
  };
}

/** The store alone, one writer, on a copy of the same prefilled store. */
async function storeStage(s: Scenario, dataDir: string, store: StoreKind, stageEvents: number): Promise<StageRate> {
  const rate = async (): Promise<{ eventsPerSecond: number; cpuMicrosPerEvent: number }> => {
    if (store === 'postgres') {
      const template = await prefilledDatabase({ events: s.prefill, ids: s.ids, log: (l) => progress(l, true) });
      const batch = s.batch === 1 ? 50 : s.batch;
      return runStoreStage({ kind: 'postgres', writers: 1, events: stageEvents, batch, jobsPerCommit: 20, dupRatio: s.dupRatio, ids: s.ids, prefill: 0, ...(template && { template }) });
    }
    const storeDir = path.join(dataDir, 'stage-store');
    await prefilledDir({ events: s.prefill, ids: s.ids, into: storeDir, cacheDir: RESULTS, log: (l) => progress(l, true) });
    settle();
    const result = await child<{ eventsPerSecond: number; cpuMicrosPerEvent: number }>('stages/store.js', {
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
  const { eventsPerSecond, cpuMicrosPerEvent } = await rate();
  return { eventsPerSecond, cpuMicrosPerEvent, note: `${store} commitJobs alone at ${s.prefill.toLocaleString()} stored, ${s.ids} ids` };
}

/**
 * Each stage alone, on the scenario's shapes. `jobEvents`: events per job as the API made
 * them in the run (a one-event request travels in a coalesced job, not a job of its own).
 */
export async function measureStages(s: Scenario, redis: RedisServer, dataDir: string, store: StoreKind, jobEvents: number): Promise<RunResult['stages']> {
  const stageEvents = Math.min(s.events, s.batch === 1 ? 100_000 : 500_000);
  const bareHttp = await bareHttpStage(s, stageEvents);
  const bullmq = await bullmqStage(s, redis, stageEvents, jobEvents);
  return { bareHttp, bullmq, store: await storeStage(s, dataDir, store, stageEvents) };
}
