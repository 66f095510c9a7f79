// A worker process: takes publish jobs from the queue and commits their events to the store.
// Any number run at once; they share only Redis and the store.
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../../shared/errors.js';
import { BATCH_EVENTS_BOUNDS, COMMIT_SECONDS_BOUNDS, emptyHistogram } from '../../shared/histogram.js';
import { HEARTBEAT_MS, removeHeartbeat, writeHeartbeat, type WorkerState } from '../../shared/heartbeat.js';
import { createLogger } from '../../shared/log.js';
import { configOrExit, exitOnUnsafeRedis, stopOnSignals } from '../../shared/process.js';
import { createRedis } from '../../shared/queue.js';
import { createShutdown } from '../../shared/shutdown.js';
import { openStore } from '../../shared/store/open.js';
import type { JobOutcome, Store } from '../../shared/store/port.js';
import { publishNotice, type JobResults } from '../../shared/notices.js';
import { createCommitter, type Committer, type CommitterStats, type Submitted } from './committer.js';
import { createConsumer } from './consumer.js';
import { Sweeper, heldJobIds } from './sweeper.js';

const config = configOrExit('worker');
const log = createLogger({ name: 'worker', level: config.logLevel });

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

const connection = createRedis(config.redisUrl, 'worker');
exitOnUnsafeRedis(connection, log, 'worker');

// Set once the store opens; until then the heartbeat says why no job is taken.
let committer: Committer | undefined;
const NOTHING_COMMITTED: CommitterStats = {
  commits: 0,
  jobs: 0,
  events: 0,
  lastError: null,
  batchEvents: emptyHistogram(BATCH_EVENTS_BOUNDS),
  commitSeconds: emptyHistogram(COMMIT_SECONDS_BOUNDS),
};

async function beat(): Promise<void> {
  state.at = Date.now();
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  const s = committer?.stats() ?? NOTHING_COMMITTED;
  state.committed_jobs = s.jobs;
  state.committed_events = s.events;
  state.metrics = {
    commits: s.commits,
    batch_events: s.batchEvents,
    commit_seconds: s.commitSeconds,
    process: { cpu_seconds: (cpu.user + cpu.system) / 1e6, resident_memory_bytes: memory.rss, heap_used_bytes: memory.heapUsed },
  };
  await writeHeartbeat(connection, config.queueName, state);
}
const heartbeat = setInterval(() => {
  // Not 'ok' before the store is open (the committer exists from then on): until then it
  // beats only to report a store it cannot open.
  if (committer === undefined && state.status === 'ok') return;
  beat().catch((err: unknown) => log.debug({ err }, 'heartbeat not written'));
}, HEARTBEAT_MS);

/** Conflicts logged one by one per group commit; a flood of them is summed up after. */
const MAX_CONFLICTS_LOGGED = 20;

/** One notice per group commit: live streams read from its seq, waiting producers get their results. */
function notify(jobs: readonly Submitted[], outcomes: readonly JobOutcome[]): void {
  const committedAt = Date.now();
  let seq = 0;
  const replies: JobResults[] = [];
  let conflictsLogged = 0;
  outcomes.forEach((outcome, i) => {
    const job = jobs[i];
    outcome.results.forEach((r, k) => {
      if (r.status === 'stored' && r.seq > seq) seq = r.seq;
      // Named, never shown: a conflict is logged with its identity and job, not its payload.
      if (r.status === 'conflict' && !outcome.redelivered && conflictsLogged++ < MAX_CONFLICTS_LOGGED && job !== undefined) {
        const e = job.events[k]!;
        log.warn({ topic: e.topic, event_id: e.event_id, job: outcome.id, seq: r.seq }, 'conflicting copy dropped: its content differs from the stored event');
      }
    });
    if (job?.reply === true) replies.push({ job: outcome.id, results: outcome.results });
  });
  if (conflictsLogged > MAX_CONFLICTS_LOGGED) {
    log.warn({ conflicts: conflictsLogged, logged: MAX_CONFLICTS_LOGGED }, 'more conflicting copies dropped in this commit than logged one by one');
  }
  if (seq === 0 && replies.length === 0) return;
  publishNotice(connection, config.queueName, { seq, jobs: replies, committed_at: committedAt }).catch((err: unknown) =>
    log.debug({ err }, 'commit notice not published'),
  );
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (stopping = true));

/**
 * A store that cannot be opened (a read-only or full data directory, a database away) is an
 * operator's problem to fix, not a reason to exit: the worker says so in its heartbeat (and
 * so in the API's /ready and /stats), takes no job, and tries again until it can open it.
 */
async function openStoreWhenPossible(): Promise<Store | undefined> {
  for (let attempt = 1; !stopping; attempt++) {
    try {
      return await openStore(config, 'worker', log, () => stopping);
    } catch (err) {
      if (stopping) return undefined;
      state.status = 'store_error';
      state.error = `cannot open the store: ${errorMessage(err)}`;
      if (attempt === 1 || attempt % 20 === 0) log.error({ err, attempt }, 'cannot open the store; taking no jobs until it opens');
      await beat().catch(() => undefined);
      await new Promise((r) => setTimeout(r, Math.min(3000, 200 * attempt)));
    }
  }
  return undefined;
}

const store = await openStoreWhenPossible();
// Stopped while the store was opening (its filter of stored keys can take seconds to build):
// no job was taken, so there is nothing to hand back.
if (stopping) {
  clearInterval(heartbeat);
  await store?.close();
  await removeHeartbeat(connection, config.queueName, state.id).catch(() => undefined);
  await connection.quit().catch(() => connection.disconnect());
  log.info('stopped before taking any job');
  process.exit(0);
}
const worker =
  store &&
  createConsumer({
    queueName: config.queueName,
    connection,
    concurrency: config.workerConcurrency,
    // A killed worker's jobs go back to the queue once their lock expires and the next
    // stalled-job check runs: within JOB_LOCK_MS x 1.5 (7.5 s by default). The price, per
    // worker: one lock renewal of its active jobs every JOB_LOCK_MS / 2 and one stalled-job
    // check as often, a few small Redis commands each (BullMQ's extendLocks and
    // moveStalledJobsToWait scripts), whatever the traffic.
    lockDuration: config.jobLockMs,
    stalledInterval: Math.max(500, Math.floor(config.jobLockMs / 2)),
    log,
    committer: (committer = createCommitter({
      commit: (jobs) => store.commitJobs(jobs),
      maxJobs: config.workerBatchJobs,
      maxEvents: config.workerBatchEvents,
      lingerMs: config.workerLingerMs,
      contendedLingerMs: config.workerContendedLingerMs,
      busyPatienceMs: config.sqliteBusyTimeoutMs,
      log,
      onCommitted: (jobs, outcomes) => notify(jobs, outcomes),
      onHealth: (problem) => {
        state.status = problem === null ? 'ok' : 'store_error';
        state.error = problem;
      },
    })),
  });

// Expired events and job ids past their horizon, deleted in the background (sweeper.ts).
const sweeper =
  store && new Sweeper({ store, log, retentionMs: config.eventRetentionMs, heldJobs: (ids) => heldJobIds(connection, config.queueName, ids) });

const shutdown = createShutdown(
  log,
  [
    { name: 'heartbeat', run: () => clearInterval(heartbeat) },
    {
      name: 'worker',
      run: async () => {
        state.status = 'stopping';
        if (worker === undefined || committer === undefined) return;
        const closing = worker.close();
        // Active jobs normally commit within milliseconds; if the store keeps failing,
        // give the jobs back after a few seconds instead of waiting for the deadline.
        const c = committer;
        const handBack = setTimeout(() => void c.close(), 5000);
        await closing;
        clearTimeout(handBack);
        await c.close();
      },
    },
    { name: 'sweeper', run: () => sweeper?.close() },
    { name: 'deregister', run: () => removeHeartbeat(connection, config.queueName, state.id).catch(() => undefined) },
    { name: 'redis', run: () => connection.quit() },
    { name: 'store', run: () => store?.close() },
  ],
  10_000,
);
stopOnSignals(log, shutdown);

if (worker !== undefined) {
  state.status = 'ok';
  state.error = null;
  void worker.run().catch((err: unknown) => {
    log.fatal({ err }, 'worker stopped unexpectedly');
    process.exit(1);
  });
}
await beat().catch(() => undefined);
log.info({ queue: config.queueName, concurrency: config.workerConcurrency, store: store?.location, worker: state.id }, 'worker started');
