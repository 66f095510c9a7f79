// Waiting for results (POST /publish?wait=s), all of `?wait` in one file: the query read
// (waitSeconds), the API process' one subscription to the workers' commit notices
// (../commits.ts) with a table of the requests waiting on each job, and the answer a wait
// ends with (answerAfterWait). A request registers before its job is added (see
// enqueue.ts), so no result can come back before someone listens for it. Each waiter costs
// one timer and one map entry, freed the moment it is answered or gives up: a thousand
// waiting requests are a thousand small objects.
import type { EventResult } from '../../../shared/store/port.js';
import { HttpError } from '../http/errors.js';
import type { CommitFeed } from '../commits.js';
import type { Placement } from './enqueue.js';

/** The longest a producer may wait for its results, in seconds. */
const MAX_WAIT_SECONDS = 30;

/**
 * `?wait=s` of a query string ('' when none): undefined when absent, else a number of
 * seconds with 0 < s <= 30; a repeated `wait` is refused.
 */
export function waitSeconds(query: string): number | undefined {
  if (query === '') return undefined;
  const values = new URLSearchParams(query).getAll('wait');
  if (values.length === 0) return undefined;
  const text = values.length === 1 ? values[0]!.trim() : undefined;
  const seconds = text !== undefined && /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds > 0 && seconds <= MAX_WAIT_SECONDS)) {
    // The value as given: a repeated one as the list of its values.
    const given = JSON.stringify(values.length === 1 ? values[0] : values);
    throw new HttpError(400, 'invalid_query', `wait must be a number of seconds above 0 and at most ${MAX_WAIT_SECONDS} (got ${given})`);
  }
  return seconds;
}

type Waiter = { offset: number; count: number; done: (results: EventResult[] | undefined) => void };

export type Registration = {
  wait(timeoutMs: number): Promise<EventResult[] | undefined>;
  /** For a request whose job never made it into the queue. */
  cancel(): void;
};

export type ResultWaiter = {
  /**
   * Registers a request's events; `wait()` resolves with their results, in order, or with
   * undefined when `timeoutMs` passes first (or the API stops).
   */
  register(placement: Placement, count: number): Registration;
  /** Answers every waiter with undefined: the API is stopping. Safe to call twice. */
  close(): Promise<void>;
};

export function createResultWaiter(feed: CommitFeed): ResultWaiter {
  const waiting = new Map<string, Set<Waiter>>();
  feed.onNotice((notice) => {
    for (const { job, results } of notice.jobs) {
      const set = waiting.get(job);
      if (set === undefined) continue;
      waiting.delete(job);
      for (const w of set) w.done(results.slice(w.offset, w.offset + w.count));
    }
  });

  function forget(job: string, w: Waiter): void {
    const set = waiting.get(job);
    if (set === undefined) return;
    set.delete(w);
    if (set.size === 0) waiting.delete(job);
  }

  return {
    register(placement, count) {
      let settle: (results: EventResult[] | undefined) => void = () => undefined;
      const answered = new Promise<EventResult[] | undefined>((resolve) => (settle = resolve));
      const waiter: Waiter = { offset: placement.offset, count, done: (results) => settle(results) };
      let set = waiting.get(placement.job);
      if (set === undefined) waiting.set(placement.job, (set = new Set()));
      set.add(waiter);
      return {
        async wait(timeoutMs) {
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
          try {
            return await Promise.race([answered, timedOut]);
          } finally {
            clearTimeout(timer);
            forget(placement.job, waiter);
          }
        },
        cancel: () => forget(placement.job, waiter),
      };
    },
    close() {
      for (const set of waiting.values()) for (const w of set) w.done(undefined);
      waiting.clear();
      return Promise.resolve();
    },
  };
}

/** A publish the producer waited for: 200 with every result when all came in time, else the 202 it would have had. */
export async function answerAfterWait(waiting: Registration, timeoutMs: number, accepted: { accepted: number; job: string }) {
  const results = await waiting.wait(timeoutMs);
  if (results === undefined || results.length !== accepted.accepted) return { status: 202 as const, body: { status: 'accepted', ...accepted } };
  return {
    status: 200 as const,
    body: { status: 'processed', ...accepted, results: results.map((r, index) => ({ index, status: r.status, seq: r.seq })) },
  };
}
