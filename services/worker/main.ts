// A worker process: takes publish jobs from the queue and commits their events to the store.
// Any number run at once; they share only Redis and the SQLite file.
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, Worker, type Job, type JobJsonRaw } from 'bullmq';
import { ConfigError, loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { createRedis, unsafeRedisSettings, type PublishJobData } from '../../shared/queue.js';
import { openStore, type JobOutcome, type Store } from '../../shared/store.js';
import { HEARTBEAT_MS, removeHeartbeat, writeHeartbeat, type WorkerState } from '../../shared/workers.js';
import { createShutdown } from '../../shared/shutdown.js';
import { errorMessage } from '../../shared/errors.js';
import { CommitterClosedError, createCommitter } from './committer.js';
import { decodeJob } from './decode.js';

const config = (() => {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`worker: ${err.message}`);
    process.exit(1);
  }
})();

const log = createLogger({ name: 'worker', level: config.logLevel });
const storeOptions = {
  dataDir: config.dataDir,
  cacheMb: config.sqliteCacheMb,
  synchronous: config.sqliteSynchronous,
  // Never wait for the write lock inside SQLite (that sleeps on the event loop): the
  // committer retries a busy store itself, for up to SQLITE_BUSY_TIMEOUT_MS.
  busyTimeoutMs: 0,
};

const state: WorkerState = {
  id: `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
  pid: process.pid,
  host: os.hostname(),
  started_at: new Date().toISOString(),
  at: Date.now(),
  status: 'ok',
  error: null,
  committed_jobs: 0,
  committed_events: 0,
};

const committer = createCommitter({
  commit: (jobs) => store!.commitJobs(jobs),
  maxJobs: config.workerBatchJobs,
  maxEvents: config.workerBatchEvents,
  lingerMs: config.workerLingerMs,
  busyPatienceMs: config.sqliteBusyTimeoutMs,
  log,
  onHealth: (problem) => {
    state.status = problem === null ? 'ok' : 'store_error';
    state.error = problem;
  },
});

/** Jobs whose stored data could not even be parsed, with the parser's complaint. */
const unreadable = new WeakMap<object, string>();

/**
 * BullMQ parses a job's data while moving it to active; a parse error there leaves the job
 * active with no lock renewal, so it stalls, returns to wait and comes back forever. Such a
 * job is handed to processJob with empty data instead, where it fails as a poison message.
 */
class PoisonTolerantWorker extends Worker<PublishJobData, JobOutcome> {
  protected override createJob(raw: JobJsonRaw, jobId: string): Job<PublishJobData, JobOutcome> {
    try {
      return super.createJob(raw, jobId);
    } catch (err) {
      const job = super.createJob({ ...raw, data: '{}', opts: '{}', progress: '0' }, jobId);
      unreadable.set(job, errorMessage(err));
      return job;
    }
  }
}

async function processJob(job: Job<PublishJobData>, token?: string): Promise<JobOutcome> {
  const parseError = unreadable.get(job);
  const decoded = parseError === undefined ? decodeJob(job.id, job.data) : { ok: false as const, reason: `job data is not JSON: ${parseError}` };
  if (!decoded.ok) {
    log.error({ jobId: job.id, reason: decoded.reason }, 'poison job moved to the failed set');
    throw new UnrecoverableError(`poison job: ${decoded.reason}`);
  }
  try {
    return await committer.submit({ id: job.id!, events: decoded.events });
  } catch (err) {
    if (err instanceof CommitterClosedError && token !== undefined) {
      // Shutting down with a failing store: hand the job back without spending an attempt.
      await job.moveToDelayed(Date.now() + 1000, token);
      throw new DelayedError();
    }
    throw err;
  }
}

const connection = createRedis(config.redisUrl, 'worker');
connection.on('ready', () => {
  void unsafeRedisSettings(connection).then((problems) => {
    if (problems.length === 0) return;
    for (const problem of problems) log.fatal(problem);
    console.error(`worker: refusing to run: ${problems.join('; ')}`);
    process.exit(1);
  });
});
const worker = new PoisonTolerantWorker(config.queueName, processJob, {
  connection,
  concurrency: config.workerConcurrency,
  lockDuration: config.jobLockMs,
  stalledInterval: Math.max(1000, Math.floor(config.jobLockMs / 2)),
  // A stall means a worker died holding the job; that must never fail the job, only
  // redeliver it (the store recognises a job it has already committed).
  maxStalledCount: Number.MAX_SAFE_INTEGER,
  autorun: false,
});

worker.on('error', (err) => log.warn({ err }, 'queue connection problem'));
worker.on('failed', (job, err) => {
  if (err instanceof DelayedError) return;
  log.warn({ jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, 'job failed');
});

async function beat(): Promise<void> {
  const s = committer.stats();
  state.at = Date.now();
  state.committed_jobs = s.jobs;
  state.committed_events = s.events;
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  state.metrics = {
    commits: s.commits,
    batch_events: s.batchEvents,
    commit_seconds: s.commitSeconds,
    process: {
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
      resident_memory_bytes: memory.rss,
      heap_used_bytes: memory.heapUsed,
    },
  };
  await writeHeartbeat(connection, config.queueName, state);
}
const heartbeat = setInterval(() => {
  beat().catch((err: unknown) => log.debug({ err }, 'heartbeat not written'));
}, HEARTBEAT_MS);

const shutdown = createShutdown(
  log,
  [
    { name: 'heartbeat', run: () => clearInterval(heartbeat) },
    {
      name: 'worker',
      run: async () => {
        state.status = 'stopping';
        const closing = worker.close();
        // Active jobs normally commit within milliseconds; if the store keeps failing,
        // give the jobs back after a few seconds instead of waiting for the deadline.
        const handBack = setTimeout(() => committer.close(), 5000);
        await closing;
        clearTimeout(handBack);
        committer.close();
      },
    },
    { name: 'deregister', run: () => removeHeartbeat(connection, config.queueName, state.id).catch(() => undefined) },
    { name: 'redis', run: () => connection.quit() },
    { name: 'store', run: () => store?.close() },
  ],
  10_000,
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    log.info({ signal }, 'stopping');
    void shutdown().then((clean) => {
      log.info({ clean }, 'stopped');
      process.exit(clean ? 0 : 1);
    });
  });
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (stopping = true));

/**
 * A data directory that cannot hold the store (read-only, missing, full) is an operator's
 * problem to fix, not a reason to exit: the worker says so in its heartbeat (and so in the
 * API's /ready and /stats), takes no job, and tries again until it can open the store.
 */
async function openStoreWhenPossible(): Promise<Store | undefined> {
  for (let attempt = 1; !stopping; attempt++) {
    try {
      return openStore(storeOptions);
    } catch (err) {
      state.status = 'store_error';
      state.error = `cannot open the store in ${config.dataDir}: ${errorMessage(err)}`;
      if (attempt === 1 || attempt % 20 === 0) log.error({ err, attempt }, 'cannot open the store; taking no jobs until it opens');
      await beat().catch(() => undefined);
      await new Promise((r) => setTimeout(r, Math.min(3000, 200 * attempt)));
    }
  }
  return undefined;
}

// Opened once the data directory allows it; undefined only if stopped before that.
const store = await openStoreWhenPossible();
if (store !== undefined) {
  state.status = 'ok';
  state.error = null;
  void worker.run().catch((err: unknown) => {
    log.fatal({ err }, 'worker stopped unexpectedly');
    process.exit(1);
  });
}
await beat().catch(() => undefined);
log.info(
  { queue: config.queueName, concurrency: config.workerConcurrency, dataDir: config.dataDir, worker: state.id },
  'worker started',
);
