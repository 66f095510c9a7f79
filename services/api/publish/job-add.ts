// Adding one job to the queue, bounded by a timeout, and what a failed add answers.
//
// A failed add is not always an add that did not happen: once the command has left for
// Redis, a timeout or a dropped connection says nothing about whether Redis ran it (a slow
// Redis runs it late). Only an add refused before it was sent answers `unavailable`
// (nothing queued); any other failure answers `outcome_unknown`: maybe queued, and a retry
// is safe because copies are dropped.
import { jobDataOf } from '../../../shared/job.js';
import { JOB_NAME, JobBytes, newJobId, type QueuedJobData } from '../../../shared/queue.js';
import { unavailable } from '../http/errors.js';
import type { Event } from '../../../shared/schema.js';
import type { Logger } from '../../../shared/log.js';
import type { Queue } from 'bullmq';
import { jobBytesScan, SLICED_JOB_BYTES } from './job-bytes.js';
import { nextTurn, Pace } from './pace.js';

/** Where a request's events travel: their job, and the position of the first in it. */
export type Placement = { job: string; offset: number };

/** Told the placement before the job is added, so a waiter is in place before any result can come back. */
export type OnPlaced = (placement: Placement) => void;

/** A request whose events are in a job: where its first event stands, and who waits for the results. */
export type Rider = { offset: number; onPlaced?: OnPlaced };

export type JobAdder = {
  /**
   * Resolves with the job's id once it is in Redis; rejects with a 503 HttpError. `bytes`:
   * what the events weighed as a body; a heavy job's text is built in slices.
   */
  add(events: readonly Event[], riders: readonly Rider[], bytes?: number): Promise<string>;
  /** Waits for every add in flight now. */
  close(): Promise<void>;
};

type JobAdderOptions = {
  queue: Queue<QueuedJobData>;
  timeoutMs: number;
  log: Logger;
  /** Told of each add as it is sent (the backlog counts it before Redis confirms it). */
  onAdd?: () => void;
};

/**
 * ioredis refuses a command it cannot write (the connection is not open, and the API keeps
 * no offline queue) before anything reaches Redis: the one failure that proves nothing was
 * queued.
 */
function neverSent(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return message.includes("Stream isn't writeable") || message.includes('enableOfflineQueue');
}

export function createJobAdder(opts: JobAdderOptions): JobAdder {
  const inFlight = new Set<Promise<unknown>>();

  async function addJob(id: string, data: QueuedJobData, count: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`queue add timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
    opts.onAdd?.();
    const adding = opts.queue.add(JOB_NAME, data, { jobId: id });
    inFlight.add(adding);
    try {
      await Promise.race([adding, timeout]);
      return id;
    } catch (err) {
      opts.log.warn({ err, events: count }, 'enqueue failed');
      if (neverSent(err)) throw unavailable('the queue is unavailable; retry later', 1);
      throw unavailable(
        'Redis did not confirm the add in time: the events may or may not be queued; retrying is safe (copies are dropped)',
        1,
        'outcome_unknown',
      );
    } finally {
      clearTimeout(timer);
      inFlight.delete(adding);
      // A late rejection of an add that already timed out is not an unhandled one.
      adding.catch(() => undefined);
    }
  }

  return {
    // The events are let go once their job data is built: a large payload is then held as
    // the job's text alone while Redis takes it, not also as the object it was parsed into.
    add(events, riders, bytes = 0) {
      const id = newJobId(events.length);
      const reply = riders.some((r) => r.onPlaced !== undefined);
      for (const r of riders) r.onPlaced?.({ job: id, offset: r.offset });
      if (bytes >= SLICED_JOB_BYTES) {
        // The add (ioredis copies the bytes once more into its command) starts on a turn of its own.
        return new Pace()
          .run(jobBytesScan(events, reply))
          .then(async (utf8) => {
            await nextTurn();
            return addJob(id, new JobBytes(utf8), events.length);
          });
      }
      let data: QueuedJobData;
      try {
        data = jobDataOf(events, reply);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      return addJob(id, data, events.length);
    },
    async close() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
