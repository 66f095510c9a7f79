// Group commit: jobs that arrive within a few milliseconds of each other share one store
// transaction (and one fsync); while a commit is under way, the next group gathers. Each job's promise settles only after its commit, so a job
// is never acknowledged to the queue before its events are in the store.
//
// A failing store (disk full, read-only directory, a lock held too long) does not fail the
// jobs: they stay in memory, unacknowledged, and the commit is retried with backoff. If the
// process dies meanwhile, the queue redelivers them to another worker.
import type { JobOutcome, JobToCommit } from '../../shared/store/port.js';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import {
  BATCH_EVENTS_BOUNDS,
  COMMIT_SECONDS_BOUNDS,
  emptyHistogram,
  observe,
  type HistogramData,
} from '../../shared/histogram.js';

export class CommitterClosedError extends Error {
  constructor() {
    super('committer closed before the job was committed');
    this.name = 'CommitterClosedError';
  }
}

/** A job to commit, and whether its producer waits for its results. */
export type Submitted = JobToCommit & { reply?: boolean };

type Pending = {
  job: Submitted;
  resolve: (outcome: JobOutcome) => void;
  reject: (err: Error) => void;
};

export type CommitterOptions = {
  commit: (jobs: readonly JobToCommit[]) => Promise<JobOutcome[]>;
  maxJobs: number;
  maxEvents: number;
  lingerMs: number;
  log: Logger;
  /** Told of every group commit that succeeded, before its jobs' promises settle. */
  onCommitted?: (jobs: readonly Submitted[], outcomes: readonly JobOutcome[]) => void;
  /** Told of every change between a working and a failing store. */
  onHealth?: (problem: string | null) => void;
  /**
   * How long the write lock may stay taken by other writers before it counts as a fault.
   * Until then a busy store is retried within a millisecond or two, asynchronously: SQLite's
   * own busy handler would sleep inside the call and stall this process' event loop, and
   * meanwhile more jobs gather for the next commit.
   */
  busyPatienceMs?: number;
  /**
   * How long a group gathers, instead of `lingerMs`, while other writers contend for the
   * store (a commit found its write lock taken within the last second). A commit that
   * follows another process' commit starts with an empty SQLite page cache and reads again
   * every page it touches, then writes its own copy of the pages every commit changes (the
   * tails of `events` and its index, the counters, the topics): fewer, larger commits pay
   * that less often. A lone writer never finds the lock taken, and lingers `lingerMs`; so
   * does a group holding a job whose producer waits for its results.
   */
  contendedLingerMs?: number;
};

/** How long after a commit found the write lock taken the store counts as contended. */
const CONTENDED_FOR_MS = 1000;

/**
 * A commit that lost a race and may simply be tried again: SQLite's write lock held by
 * another process, or PostgreSQL's deadlock or serialization failure between two workers.
 */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code === '40P01' || code === '40001');
}

export type CommitterStats = {
  commits: number;
  jobs: number;
  events: number;
  lastError: string | null;
  /** Events per successful group commit. */
  batchEvents: HistogramData;
  /** Seconds per successful group commit. */
  commitSeconds: HistogramData;
};

export type Committer = {
  submit(job: Submitted): Promise<JobOutcome>;
  stats(): CommitterStats;
  /** Commits what is waiting once more; whatever still fails is rejected with CommitterClosedError. */
  close(): Promise<void>;
};

const MAX_BACKOFF_MS = 5000;

export function createCommitter(opts: CommitterOptions): Committer {
  let queue: Pending[] = [];
  let queuedEvents = 0;
  let timer: NodeJS.Timeout | undefined;
  /** When the timer fires (performance.now()). */
  let timerAt = Infinity;
  let failures = 0;
  let busySince: number | undefined;
  let lastBusyAt = -Infinity;
  let closed = false;
  /** The flush under way: one at a time, so commits keep the order jobs came in. */
  let flushing: Promise<boolean> | undefined;
  const stats: CommitterStats = {
    commits: 0,
    jobs: 0,
    events: 0,
    lastError: null,
    batchEvents: emptyHistogram(BATCH_EVENTS_BOUNDS),
    commitSeconds: emptyHistogram(COMMIT_SECONDS_BOUNDS),
  };

  /** Flushes within delayMs: sooner if a flush is already due sooner. */
  function schedule(delayMs: number): void {
    if (closed) return;
    const at = performance.now() + delayMs;
    if (timer !== undefined) {
      if (at >= timerAt) return;
      clearTimeout(timer);
    }
    timerAt = at;
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, delayMs);
  }

  /** A producer waiting for the job's results (`?wait`) is never kept waiting longer than lingerMs. */
  function lingerMs(job: Submitted): number {
    const contended = job.reply !== true && performance.now() - lastBusyAt < CONTENDED_FOR_MS;
    return contended ? Math.max(opts.lingerMs, opts.contendedLingerMs ?? 0) : opts.lingerMs;
  }

  function takeBatch(): Pending[] {
    let events = 0;
    let n = 0;
    while (n < queue.length && n < opts.maxJobs) {
      const size = queue[n]!.job.events.length;
      if (n > 0 && events + size > opts.maxEvents) break;
      events += size;
      n++;
    }
    const batch = queue.slice(0, n);
    queue = queue.slice(n);
    queuedEvents -= events;
    return batch;
  }

  /** Commits everything queued, batch by batch; false if the store failed. */
  function flush(): Promise<boolean> {
    flushing ??= flushAll().finally(() => (flushing = undefined));
    return flushing;
  }

  async function flushAll(): Promise<boolean> {
    while (queue.length > 0) {
      const batch = takeBatch();
      const started = performance.now();
      let outcomes: JobOutcome[];
      try {
        outcomes = await opts.commit(batch.map((p) => p.job));
      } catch (err) {
        // Put the batch back, in order, and try again later.
        queue = batch.concat(queue);
        queuedEvents += batch.reduce((n, p) => n + p.job.events.length, 0);
        if (isBusy(err) && !closed) {
          lastBusyAt = performance.now();
          busySince ??= Date.now();
          if (Date.now() - busySince < (opts.busyPatienceMs ?? 10_000)) {
            schedule(1 + Math.random() * 2);
            return false;
          }
        }
        failures++;
        const message = errorMessage(err);
        if (stats.lastError === null) opts.onHealth?.(message);
        stats.lastError = message;
        const delay = Math.min(MAX_BACKOFF_MS, 50 * 2 ** Math.min(failures, 10));
        opts.log.error({ err, jobs: batch.length, retryInMs: delay }, 'store commit failed; jobs kept unacknowledged');
        schedule(delay);
        return false;
      }
      if (stats.lastError !== null) {
        opts.log.info({ failures }, 'store commits succeed again');
        opts.onHealth?.(null);
      }
      failures = 0;
      busySince = undefined;
      stats.lastError = null;
      stats.commits++;
      stats.jobs += batch.length;
      opts.onCommitted?.(
        batch.map((p) => p.job),
        outcomes,
      );
      let events = 0;
      for (let i = 0; i < batch.length; i++) {
        events += batch[i]!.job.events.length;
        batch[i]!.resolve(outcomes[i]!);
      }
      stats.events += events;
      const ms = performance.now() - started;
      observe(stats.batchEvents, events);
      observe(stats.commitSeconds, ms / 1000);
      opts.log.debug({ jobs: batch.length, events, ms: +ms.toFixed(2) }, 'batch committed');
    }
    return true;
  }

  return {
    submit(job) {
      if (closed) return Promise.reject(new CommitterClosedError());
      return new Promise<JobOutcome>((resolve, reject) => {
        queue.push({ job, resolve, reject });
        queuedEvents += job.events.length;
        if (failures > 0) return; // a retry is already scheduled
        if (queue.length >= opts.maxJobs || queuedEvents >= opts.maxEvents) {
          clearTimeout(timer);
          timer = undefined;
          schedule(0);
        } else {
          schedule(lingerMs(job));
        }
      });
    },
    stats: () => ({
      ...stats,
      batchEvents: { ...stats.batchEvents, counts: [...stats.batchEvents.counts] },
      commitSeconds: { ...stats.commitSeconds, counts: [...stats.commitSeconds.counts] },
    }),
    async close() {
      if (closed) return;
      clearTimeout(timer);
      timer = undefined;
      closed = true; // from here on, a failed flush schedules no retry
      await flushing;
      const ok = queue.length === 0 || (await flush());
      if (!ok) {
        for (const p of queue) p.reject(new CommitterClosedError());
        queue = [];
        queuedEvents = 0;
      }
    },
  };
}
