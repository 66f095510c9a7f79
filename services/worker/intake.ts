// Taking jobs: the BullMQ consumer (consumer.ts) and the committer it hands them to
// (committer.ts), built and closed together, since neither runs without the other.
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/log.js';
import type { PublishJobData } from '../../shared/queue.js';
import type { Store } from '../../shared/store/port.js';
import { createCommitter, type Committer, type CommitterOptions } from './committer.js';
import { createConsumer } from './consumer.js';

/** How long active jobs may take to commit once stopping began before they are handed back. */
const HAND_BACK_MS = 5000;

type IntakeOptions = {
  config: Config;
  connection: Redis;
  store: Store;
  log: Logger;
  onCommitted: NonNullable<CommitterOptions['onCommitted']>;
  onHealth: NonNullable<CommitterOptions['onHealth']>;
  /** Called when closing begins. */
  onStopping: () => void;
  /** The consumer stopped by itself (not closed): the process cannot go on. */
  onFatal: (err: unknown) => void;
};

export class JobIntake {
  readonly committer: Committer;
  private readonly worker: Worker<PublishJobData, void>;
  private readonly onStopping: () => void;
  private readonly onFatal: (err: unknown) => void;
  private readonly connection: Redis;
  private started = false;
  private closing: Promise<void> | undefined;

  constructor({ config, connection, store, log, onCommitted, onHealth, onStopping, onFatal }: IntakeOptions) {
    this.onStopping = onStopping;
    this.onFatal = onFatal;
    this.connection = connection;
    this.committer = createCommitter({
      commit: (jobs) => store.commitJobs(jobs),
      maxJobs: config.workerBatchJobs,
      maxEvents: config.workerBatchEvents,
      lingerMs: config.workerLingerMs,
      waitLingerMs: config.workerWaitLingerMs,
      contendedLingerMs: config.workerContendedLingerMs,
      busyPatienceMs: config.sqliteBusyTimeoutMs,
      log,
      onCommitted,
      onHealth,
    });
    this.worker = createConsumer({
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
      committer: this.committer,
    });
  }

  /** Takes jobs until closed or told to stand by: the first call starts the consumer, later ones resume it. */
  take(): void {
    if (this.closing !== undefined) return;
    if (this.started) return this.worker.resume();
    this.started = true;
    this.worker.run().catch(this.onFatal);
  }

  /** Stops taking jobs; resolves once those under way are committed (or handed back). */
  async standBy(): Promise<void> {
    if (this.closing !== undefined || !this.started) return;
    await this.worker.pause();
  }

  /** Stops taking jobs and waits for the active ones to commit, or hands them back. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onStopping();
      // With Redis away, no active job can be acknowledged and BullMQ's own connection would
      // wait for Redis to quit: let go at once. The jobs' locks lapse and another worker takes
      // them; what the committer holds is still committed below, so a copy is only a duplicate.
      const closing = this.worker.close(this.connection.status !== 'ready');
      // Active jobs normally commit within milliseconds; if the store keeps failing,
      // give the jobs back after a few seconds instead of waiting for the deadline.
      const handBack = setTimeout(() => void this.committer.close(), HAND_BACK_MS);
      await closing;
      clearTimeout(handBack);
      await this.committer.close();
    })();
    return this.closing;
  }
}
