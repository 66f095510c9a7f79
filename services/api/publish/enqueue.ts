// Enqueueing with coalescing: events of requests that arrive within a millisecond or two
// travel as one BullMQ job, because one job per single-event request caps throughput at
// what Redis does per job. Every request still waits for its own 202 until the job that
// carries its events is in Redis, and a failed add fails every request in it.
//
// A failed add is not always an add that did not happen: once the command has left for
// Redis, a timeout or a dropped connection says nothing about whether Redis ran it (a slow
// Redis runs it late). Only an add refused before it was sent answers `unavailable`
// (nothing queued); any other failure answers `outcome_unknown`: maybe queued, and a retry
// is safe because copies are dropped.
import { jobDataOf } from '../../../shared/job.js';
import { JOB_NAME, newJobId, type PublishJobData } from '../../../shared/queue.js';
import { unavailable } from '../http/errors.js';
import type { Event } from '../../../shared/schema.js';
import type { Logger } from '../../../shared/log.js';
import type { Queue } from 'bullmq';

/** Where a request's events travel: their job, and the position of the first in it. */
export type Placement = { job: string; offset: number };

type EnqueueOptions = {
  /**
   * The producer waits for the results: the job asks its worker to publish them. Called
   * with the placement before the job is added, so a waiter is in place before any result
   * can come back.
   */
  onPlaced?: (placement: Placement) => void;
  /** What the events weigh (their body's size), for COALESCE_MAX_BYTES. */
  bytes?: number;
};

export type Enqueuer = {
  /** Resolves with the placement once the events are in Redis; rejects with a 503 HttpError. */
  enqueue(events: Event[], opts?: EnqueueOptions): Promise<Placement>;
  /** Sends what is gathered now and waits for every add in flight. */
  flush(): Promise<void>;
  /** The API is stopping: flushes (no request arrives any more). Safe to call twice. */
  close(): Promise<void>;
};

type EnqueuerOptions = {
  queue: Queue<PublishJobData>;
  lingerMs: number;
  maxEvents: number;
  /** A gathered job is sent once its events weigh this much; a heavier request goes alone. */
  maxBytes?: number;
  timeoutMs: number;
  log: Logger;
};

type Waiter = { offset: number; resolve: (p: Placement) => void; reject: (err: Error) => void; onPlaced?: EnqueueOptions['onPlaced'] };

type Gathering = {
  events: Event[];
  bytes: number;
  waiters: Waiter[];
  timer: NodeJS.Timeout | undefined;
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

export function createEnqueuer(opts: EnqueuerOptions): Enqueuer {
  let gathering: Gathering | undefined;
  const inFlight = new Set<Promise<unknown>>();
  // Adds of gathered events under way. With none, what gathers goes out on the next turn
  // of the event loop (no waiting when the API is quiet); while one is under way, events
  // gather until it returns, so batches grow exactly as fast as Redis is slow. COALESCE_MS
  // bounds the wait either way.
  let gatheredAdds = 0;
  let immediate: NodeJS.Immediate | undefined;

  // The events are let go once their job data is built: a large payload is then held as
  // the job's text alone while Redis takes it, not also as the object it was parsed into.
  function add(events: readonly Event[], waiters: readonly Pick<Waiter, 'offset' | 'onPlaced'>[]): Promise<string> {
    const id = newJobId(events.length);
    const reply = waiters.some((w) => w.onPlaced !== undefined);
    for (const w of waiters) w.onPlaced?.({ job: id, offset: w.offset });
    let data: PublishJobData;
    try {
      data = jobDataOf(events, reply);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return addJob(id, data, events.length);
  }

  async function addJob(id: string, data: PublishJobData, count: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`queue add timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
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

  function send(): void {
    const g = gathering;
    if (g === undefined) return;
    gathering = undefined;
    clearTimeout(g.timer);
    gatheredAdds++;
    const { waiters } = g;
    const sending = add(g.events, waiters).then(
      (id) => waiters.forEach((w) => w.resolve({ job: id, offset: w.offset })),
      (err: Error) => waiters.forEach((w) => w.reject(err)),
    );
    inFlight.add(sending);
    void sending.finally(() => {
      inFlight.delete(sending);
      gatheredAdds--;
      // On the next turn, not now: the reply came in with other sockets' reads of this same
      // turn, and their requests join the job instead of waiting a whole add for the next.
      if (gatheredAdds === 0 && gathering !== undefined) sendSoon();
    });
  }

  function sendSoon(): void {
    immediate ??= setImmediate(() => {
      immediate = undefined;
      if (gatheredAdds === 0) send();
    });
  }

  async function flush(): Promise<void> {
    send();
    await Promise.allSettled([...inFlight]);
  }

  const maxBytes = opts.maxBytes ?? Infinity;
  return {
    enqueue(events, enqueueOptions = {}) {
      const { onPlaced, bytes = 0 } = enqueueOptions;
      if (opts.lingerMs === 0 || events.length >= opts.maxEvents || bytes >= maxBytes) {
        return add(events, [{ offset: 0, onPlaced }]).then((job) => ({ job, offset: 0 }));
      }
      if (gathering !== undefined && (gathering.events.length + events.length > opts.maxEvents || gathering.bytes + bytes > maxBytes)) send();
      return new Promise<Placement>((resolve, reject) => {
        if (gathering === undefined) {
          gathering = { events: [], bytes: 0, waiters: [], timer: undefined };
          gathering.timer = setTimeout(send, opts.lingerMs);
        }
        const offset = gathering.events.length;
        for (const e of events) gathering.events.push(e);
        gathering.bytes += bytes;
        gathering.waiters.push({ offset, resolve, reject, onPlaced });
        if (gathering.events.length >= opts.maxEvents || gathering.bytes >= maxBytes) send();
        else if (gatheredAdds === 0) sendSoon();
      });
    },
    flush,
    close: flush,
  };
}
