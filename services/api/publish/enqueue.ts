// Enqueueing with coalescing: events of requests that arrive within a millisecond or two
// travel as one BullMQ job, because one job per single-event request caps throughput at
// what Redis does per job. Every request still waits for its own 202 until the job that
// carries its events is in Redis, and a failed add fails every request in it, so nothing
// of a refused request is queued.
import { JOB_NAME, newJobId, type PublishJobData } from '../../../shared/queue.js';
import { unavailable } from '../http/errors.js';
import type { Event } from '../../../shared/schema.js';
import type { Logger } from '../../../shared/log.js';
import type { Queue } from 'bullmq';

export type Enqueuer = {
  /** Resolves with the job id once the events are in Redis; rejects with a 503 HttpError. */
  enqueue(events: Event[]): Promise<string>;
  /** Sends what is gathered now and waits for every add in flight. */
  flush(): Promise<void>;
};

export type EnqueuerOptions = {
  queue: Queue<PublishJobData>;
  lingerMs: number;
  maxEvents: number;
  timeoutMs: number;
  log: Logger;
};

type Gathering = {
  events: Event[];
  waiters: { resolve: (id: string) => void; reject: (err: Error) => void }[];
  timer: NodeJS.Timeout | undefined;
};

export function createEnqueuer(opts: EnqueuerOptions): Enqueuer {
  let gathering: Gathering | undefined;
  const inFlight = new Set<Promise<unknown>>();
  // Adds of gathered events under way. With none, what gathers goes out on the next turn
  // of the event loop (no waiting when the API is quiet); while one is under way, events
  // gather until it returns, so batches grow exactly as fast as Redis is slow. COALESCE_MS
  // bounds the wait either way.
  let gatheredAdds = 0;
  let immediate: NodeJS.Immediate | undefined;

  async function add(events: Event[]): Promise<string> {
    const id = newJobId(events.length);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`queue add timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
    const adding = opts.queue.add(JOB_NAME, { events }, { jobId: id });
    inFlight.add(adding);
    try {
      await Promise.race([adding, timeout]);
      return id;
    } catch (err) {
      opts.log.warn({ err, events: events.length }, 'enqueue failed');
      throw unavailable('the queue is unavailable; retry later', 1);
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
    const sending = add(g.events).then(
      (id) => g.waiters.forEach((w) => w.resolve(id)),
      (err: Error) => g.waiters.forEach((w) => w.reject(err)),
    );
    inFlight.add(sending);
    void sending.finally(() => {
      inFlight.delete(sending);
      gatheredAdds--;
      if (gatheredAdds === 0) send();
    });
  }

  function sendSoon(): void {
    immediate ??= setImmediate(() => {
      immediate = undefined;
      if (gatheredAdds === 0) send();
    });
  }

  return {
    enqueue(events) {
      if (opts.lingerMs === 0 || events.length >= opts.maxEvents) return add(events);
      if (gathering !== undefined && gathering.events.length + events.length > opts.maxEvents) send();
      return new Promise<string>((resolve, reject) => {
        if (gathering === undefined) {
          gathering = { events: [], waiters: [], timer: undefined };
          gathering.timer = setTimeout(send, opts.lingerMs);
        }
        for (const e of events) gathering.events.push(e);
        gathering.waiters.push({ resolve, reject });
        if (gathering.events.length >= opts.maxEvents) send();
        else if (gatheredAdds === 0) sendSoon();
      });
    },
    async flush() {
      send();
      await Promise.allSettled([...inFlight]);
    },
  };
}
