// A short memory of the deployment's totals, one sample a second for the last five minutes,
// so that the dashboard's throughput chart has a line the moment the page opens instead of
// starting empty. The totals are what /stats says (received; processed = stored + copies
// dropped), counted as read/stats.ts counts them but without what the chart does not need
// (topics, queue and workers, the store's size), since this runs every second whether or
// not anyone looks. Counts only, no event data: served with the page, open like /metrics.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { eventCountOfJobId, unfinishedJobIds } from '../../../shared/queue.js';
import type { Store } from '../../../shared/store/port.js';

export type Totals = { received: number; processed: number };
export type RateSample = Totals & { t: number };

export type RateRingOptions = {
  /** How often a sample is taken. */
  periodMs?: number;
  /** How many samples are kept (the oldest is dropped). */
  size?: number;
  /** The clock (tests pass their own). */
  now?: () => number;
};

export class RateRing {
  readonly #read: () => Promise<Totals | null>;
  readonly #size: number;
  readonly #now: () => number;
  readonly #samples: RateSample[] = [];
  readonly #timer: NodeJS.Timeout;
  #inFlight: Promise<void> | null = null;
  #closed = false;

  /** `read` gives the current totals, or null when they cannot be known (Redis away): no sample then. */
  constructor(read: () => Promise<Totals | null>, options: RateRingOptions = {}) {
    this.#read = read;
    this.#size = options.size ?? 300;
    this.#now = options.now ?? Date.now;
    this.#timer = setInterval(() => void this.sample(), options.periodMs ?? 1000);
    // Memory for a page, not work to finish: it never keeps the process alive.
    this.#timer.unref();
  }

  /** Takes one sample now; a sample still being read makes this a no-op (a slow store skips a beat). */
  sample(): Promise<void> {
    if (this.#closed || this.#inFlight !== null) return this.#inFlight ?? Promise.resolve();
    this.#inFlight = this.#read()
      .then((totals) => {
        if (totals === null || this.#closed) return;
        this.#samples.push({ t: this.#now(), received: totals.received, processed: totals.processed });
        if (this.#samples.length > this.#size) this.#samples.shift();
      })
      // A failed read is a gap in the chart, never an error: /ready reports the store.
      .catch(() => undefined)
      .finally(() => {
        this.#inFlight = null;
      });
    return this.#inFlight;
  }

  /** The samples, oldest first (a copy). */
  samples(): RateSample[] {
    return this.#samples.slice();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#inFlight;
  }
}

/**
 * received and processed as /stats gives them: the store's committed counts plus the events
 * of jobs still in Redis that the store has not committed. Null while Redis is away (the
 * received total would dip: no sample rather than a wrong one).
 */
export async function readTotals(deps: { store: Store; queue: Queue; redis: Redis }): Promise<Totals | null> {
  let ids: string[];
  try {
    ids = await unfinishedJobIds(deps.redis, deps.queue);
  } catch {
    return null;
  }
  const counts = await deps.store.counts({ jobIds: ids, topicsLimit: 0 });
  let pending = 0;
  for (const id of new Set(ids)) if (!counts.committed.has(id)) pending += eventCountOfJobId(id);
  return { received: counts.received + pending, processed: counts.uniqueProcessed + counts.duplicateDropped };
}
