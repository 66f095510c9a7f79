// The BullMQ side of a worker: each job is checked (a bad one is poison, parked in the
// failed set) and handed to the committer; its promise settles only after the commit.
import { DelayedError, UnrecoverableError, Worker, type Job, type JobJsonRaw, type WorkerOptions } from 'bullmq';
import { errorMessage } from '../../shared/errors.js';
import { decodeJob } from '../../shared/job.js';
import type { Logger } from '../../shared/log.js';
import { KEY_PREFIX, type PublishJobData } from '../../shared/queue.js';
import { CommitterClosedError, type Committer } from './committer.js';

/** Jobs whose stored data could not even be parsed, with the parser's complaint. */
const unreadable = new WeakMap<object, string>();

/**
 * BullMQ parses a job's data while moving it to active; a parse error there leaves the job
 * active with no lock renewal, so it stalls, returns to wait and comes back forever. Such a
 * job is handed to the processor with empty data instead, where it fails as a poison message.
 */
class PoisonTolerantWorker extends Worker<PublishJobData, void> {
  protected override createJob(raw: JobJsonRaw, jobId: string): Job<PublishJobData, void> {
    try {
      return super.createJob(raw, jobId);
    } catch (err) {
      const job = super.createJob({ ...raw, data: '{}', opts: '{}', progress: '0' }, jobId);
      unreadable.set(job, errorMessage(err));
      return job;
    }
  }
}

export type ConsumerOptions = Omit<WorkerOptions, 'autorun' | 'prefix'> & {
  queueName: string;
  committer: Committer;
  log: Logger;
};

export function createConsumer(opts: ConsumerOptions): Worker<PublishJobData, void> {
  const { queueName, committer, log, ...workerOptions } = opts;

  // Nothing is returned to BullMQ: a return value is serialised, stored with the job and
  // written to the queue's events stream on every completion, and no one reads it (results
  // reach waiting producers in the commit notice; the store keeps the counts).
  async function processJob(job: Job<PublishJobData>, token?: string): Promise<void> {
    const parseError = unreadable.get(job);
    const decoded =
      parseError === undefined ? decodeJob(job.id, job.data) : { ok: false as const, reason: `job data is not JSON: ${parseError}` };
    if (!decoded.ok) {
      log.error({ jobId: job.id, reason: decoded.reason }, 'poison job moved to the failed set');
      throw new UnrecoverableError(`poison job: ${decoded.reason}`);
    }
    try {
      await committer.submit({ id: job.id!, events: decoded.events, reply: job.data.reply === true });
    } catch (err) {
      if (err instanceof CommitterClosedError && token !== undefined) {
        // Shutting down with a failing store: hand the job back without spending an attempt.
        await job.moveToDelayed(Date.now() + 1000, token);
        throw new DelayedError();
      }
      throw err;
    }
  }

  const worker = new PoisonTolerantWorker(queueName, processJob, {
    ...workerOptions,
    prefix: KEY_PREFIX,
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
  return worker;
}
