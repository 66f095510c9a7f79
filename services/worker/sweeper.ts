// The background deletion a worker runs beside its commits: events older than
// EVENT_RETENTION, and ids of committed jobs no redelivery can still need. Each step is one
// short transaction of the store's (a few thousand rows), with a pause between steps, so
// commits and reads never wait for more than one step. Every worker runs one; the store
// makes concurrent sweepers safe (a row deleted by one is not found by the next), so a
// step that finds nothing to do costs one small read.
//
// Which job ids can go (docs/retention.md, "The jobs horizon"): a committed job comes back
// only while BullMQ still holds it. Completed jobs are removed from Redis at once
// (removeOnComplete), and a job whose worker died is moved back to wait by the stalled
// checker, never failed (maxStalledCount is unbounded, see consumer.ts), however long it
// then waits behind a backlog: while it does, its hash `bull:<queue>:<id>` exists. So an id is
// pruned only once that hash is gone, and only after JOBS_KEEP_MS, a margin for the
// replay tool, which adds its job before it removes the failed one.
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/log.js';
import { queueKey } from '../../shared/queue.js';
import type { JobMark, Store } from '../../shared/store/port.js';

/** Rows per step: a few ms of work in one transaction. */
export const SWEEP_BATCH = 2000;
/** A committed job id is kept at least this long, whatever Redis says. */
export const JOBS_KEEP_MS = 60 * 60_000;
/** After a step failed (a busy store), the next sweep comes this soon. */
const RETRY_MS = 250;

export type SweeperOptions = {
  store: Store;
  log: Logger;
  /** EVENT_RETENTION; unset: no event expires (job ids are still pruned). */
  retentionMs: number | undefined;
  /** Of these job ids, those BullMQ still holds (waiting, active, delayed or failed). */
  heldJobs: (ids: string[]) => Promise<Set<string>>;
  /** Between sweeps of expired events. */
  intervalMs?: number;
  /** Between passes over the job ids. */
  jobsIntervalMs?: number;
  jobsKeepMs?: number;
  batch?: number;
  /** Between two steps of one sweep, so that commits interleave. */
  pauseMs?: number;
};

/** Job ids whose hash BullMQ still keeps in Redis. */
export async function heldJobIds(redis: Redis, queueName: string, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const pipe = redis.pipeline();
  for (const id of ids) pipe.exists(queueKey(queueName, id));
  const replies = (await pipe.exec()) ?? [];
  const held = new Set<string>();
  replies.forEach(([err, n], i) => {
    // An unknown answer keeps the id: pruning one too early would count a redelivery twice.
    if (err !== null || n !== 0) held.add(ids[i]!);
  });
  return held;
}

export class Sweeper {
  private readonly opts: Required<Omit<SweeperOptions, 'retentionMs'>> & { retentionMs: number | undefined };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private lastJobsPass = 0;
  /** The last sweep stopped on an error (a busy store): the next one comes sooner. */
  private failed = false;
  /** Where the pass over the job ids has got to; undefined: from the start. */
  private jobsCursor: JobMark | undefined;
  expired = 0;
  forgottenJobs = 0;

  constructor(opts: SweeperOptions) {
    this.opts = {
      intervalMs: 5000,
      jobsIntervalMs: 60_000,
      jobsKeepMs: JOBS_KEEP_MS,
      batch: SWEEP_BATCH,
      pauseMs: 20,
      ...opts,
    };
    this.schedule(Math.min(this.opts.intervalMs, 1000));
  }

  private schedule(ms: number): void {
    if (this.closing !== undefined) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep().finally(() => {
        this.running = undefined;
        this.schedule(this.failed ? Math.min(this.opts.intervalMs, RETRY_MS) : this.opts.intervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.opts.pauseMs));
  }

  /** One sweep: expired events until none is left, then, now and then, a pass over the job ids. */
  async sweep(): Promise<void> {
    this.failed = false;
    try {
      if (this.opts.retentionMs !== undefined) {
        for (;;) {
          const n = await this.opts.store.expireStep(this.opts.batch);
          this.expired += n;
          if (n > 0) this.opts.log.debug({ events: n }, 'expired events deleted');
          if (n < this.opts.batch || this.closing !== undefined) break;
          await this.pause();
        }
      }
      if (Date.now() - this.lastJobsPass >= this.opts.jobsIntervalMs) {
        await this.pruneJobs();
        this.lastJobsPass = Date.now();
      }
    } catch (err) {
      // A busy store (SQLite's write lock is another writer's, and a worker never waits for
      // it inside the driver), a database away: the next sweep comes sooner and goes on.
      this.failed = true;
      this.opts.log.debug({ err }, 'sweep step not done; trying again shortly');
    }
  }

  /** A pass over the job ids older than the keep time, a page per step. */
  private async pruneJobs(): Promise<void> {
    const before = Date.now() - this.opts.jobsKeepMs;
    for (;;) {
      const page = await this.opts.store.jobsCommittedBefore({ before, after: this.jobsCursor, limit: this.opts.batch });
      if (page.length === 0) {
        this.jobsCursor = undefined;
        return;
      }
      const held = await this.opts.heldJobs(page.map((j) => j.id));
      const n = await this.opts.store.forgetJobs(page.filter((j) => !held.has(j.id)).map((j) => j.id));
      this.forgottenJobs += n;
      if (n > 0) this.opts.log.debug({ jobs: n }, 'committed job ids forgotten');
      this.jobsCursor = page[page.length - 1];
      if (page.length < this.opts.batch || this.closing !== undefined) {
        if (page.length < this.opts.batch) this.jobsCursor = undefined;
        return;
      }
      await this.pause();
    }
  }

  /** Stops sweeping; waits for the step under way. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.timer);
      await this.running;
    })();
    return this.closing;
  }
}
