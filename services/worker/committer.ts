// Group commit: jobs that arrive within the linger (WORKER_LINGER_MS; WORKER_WAIT_LINGER_MS
// for a group holding a job whose producer waits) share one store transaction (and one
// fsync); while a commit is under way, the next group gathers. Each job's promise settles
// only after its commit, so a job is never acknowledged to the queue before its events are
// in the store.
//
// A failing store (disk full, read-only directory, a lock held too long) does not fail the
// jobs: they stay in memory, unacknowledged, and the commit is retried with backoff. If the
// process dies meanwhile, the queue redelivers them to another worker.
import type { JobOutcome, JobToCommit } from '../../shared/store/port.js';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import type { HistogramData } from '../../shared/histogram.js';
import { CommitCounters } from './commit-counters.js';
import { CommitPacing, isBusy } from './commit-pacing.js';
import { eventsOf, PendingJobs, type Pending } from './pending-jobs.js';

export class CommitterClosedError extends Error {
  constructor() {
    super('committer closed before the job was committed');
    this.name = 'CommitterClosedError';
  }
}

/** A job to commit, and whether its producer waits for its results. */
export type Submitted = JobToCommit & { reply?: boolean };

export type CommitterOptions = {
  commit: (jobs: readonly JobToCommit[]) => Promise<JobOutcome[]>;
  maxJobs: number;
  maxEvents: number;
  /**
   * How long a group gathers before it commits. Each commit costs its transaction whatever
   * its size (SQLite's fsync and the pages every commit rewrites; PostgreSQL's statements):
   * with one event per request, commits of one or two jobs made that cost the workers' largest.
   */
  lingerMs: number;
  /** The linger of a group holding a job whose producer waits for its results (`?wait`): they wait for nothing else. */
  waitLingerMs?: number;
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
   * that less often. A lone writer never finds the lock taken, and lingers `lingerMs`; a
   * group holding a job whose producer waits for its results lingers `waitLingerMs`.
   */
  contendedLingerMs?: number;
};

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

/**
 * Group commit over a store: the pending jobs (pending-jobs.ts), when to commit them
 * (commit-pacing.ts) and what was done (commit-counters.ts) are parts of their own; this
 * holds the timer and runs one flush at a time.
 */
class GroupCommitter implements Committer {
  private readonly opts: CommitterOptions;
  private readonly pending = new PendingJobs();
  private readonly pacing: CommitPacing;
  private readonly counters = new CommitCounters();
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (performance.now()). */
  private timerAt = Infinity;
  private closed = false;
  /** The flush under way: one at a time, so commits keep the order jobs came in. */
  private flushing: Promise<boolean> | undefined;

  constructor(opts: CommitterOptions) {
    this.opts = opts;
    this.pacing = new CommitPacing(opts);
  }

  submit(job: Submitted): Promise<JobOutcome> {
    if (this.closed) return Promise.reject(new CommitterClosedError());
    return new Promise<JobOutcome>((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (this.pacing.failing) return; // a retry is already scheduled
      if (this.pending.jobs >= this.opts.maxJobs || this.pending.events >= this.opts.maxEvents) {
        this.cancelTimer();
        this.schedule(0);
      } else {
        this.schedule(this.pacing.lingerMs(job));
      }
    });
  }

  stats(): CommitterStats {
    return this.counters.snapshot();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.cancelTimer();
    this.closed = true; // from here on, a failed flush schedules no retry
    await this.flushing;
    const ok = this.pending.jobs === 0 || (await this.flush());
    if (!ok) this.pending.rejectAll(new CommitterClosedError());
  }

  private cancelTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Flushes within delayMs: sooner if a flush is already due sooner. */
  private schedule(delayMs: number): void {
    if (this.closed) return;
    const at = performance.now() + delayMs;
    if (this.timer !== undefined) {
      if (at >= this.timerAt) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  /** Commits everything pending, group by group; false if the store failed. */
  private flush(): Promise<boolean> {
    this.flushing ??= this.flushAll().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushAll(): Promise<boolean> {
    while (this.pending.jobs > 0) {
      const group = this.pending.takeGroup(this.opts.maxJobs, this.opts.maxEvents);
      const started = performance.now();
      let outcomes: JobOutcome[];
      try {
        outcomes = await this.opts.commit(group.map((p) => p.job));
      } catch (err) {
        this.pending.putBack(group);
        this.failed(err, group.length);
        return false;
      }
      this.committed(group, outcomes, performance.now() - started);
    }
    return true;
  }

  /** A commit failed: it is tried again soon if it only lost the write lock, else after a backoff. */
  private failed(err: unknown, jobs: number): void {
    const retryBusyInMs = isBusy(err) && !this.closed ? this.pacing.busy() : undefined;
    if (retryBusyInMs !== undefined) return this.schedule(retryBusyInMs);
    const delay = this.pacing.failed();
    const message = errorMessage(err);
    if (this.counters.failed(message)) this.opts.onHealth?.(message);
    this.opts.log.error({ err, jobs, retryInMs: delay }, 'store commit failed; jobs kept unacknowledged');
    this.schedule(delay);
  }

  private committed(group: Pending[], outcomes: JobOutcome[], ms: number): void {
    const failures = this.pacing.succeeded();
    const events = eventsOf(group);
    if (this.counters.committed(group.length, events, ms)) {
      this.opts.log.info({ failures }, 'store commits succeed again');
      this.opts.onHealth?.(null);
    }
    this.opts.onCommitted?.(
      group.map((p) => p.job),
      outcomes,
    );
    for (let i = 0; i < group.length; i++) group[i]!.resolve(outcomes[i]!);
    this.opts.log.debug({ jobs: group.length, events, ms: +ms.toFixed(2) }, 'batch committed');
  }
}

export function createCommitter(opts: CommitterOptions): Committer {
  return new GroupCommitter(opts);
}
