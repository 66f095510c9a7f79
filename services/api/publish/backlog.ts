// How full the queue is, sampled a few times a second rather than asked on every request,
// plus the jobs this API added since the sample was asked for: a publish that would push the
// backlog past its limit is refused with 503 up front. Without the jobs added since, a flood
// overshot the limit by all that arrived between two samples, more the slower the machine.
// A job added while a sample is on its way may be counted twice, for that one sample: the
// limit then holds a little early, never late.
import type { Queue } from 'bullmq';
import type { Logger } from '../../../shared/log.js';

export type Backlog = {
  full(): boolean;
  /** A job was added to the queue (by the enqueuer), counted until the next sample holds it. */
  added(): void;
  /** Settles once the first sample is taken (or sampling stopped before it): till then full() is false. */
  readonly sampled: Promise<void>;
  /** Stops sampling; safe to call twice. */
  close(): Promise<void>;
};

export function watchBacklog(queue: Queue, limit: number, log: Logger, intervalMs = 250): Backlog {
  let waiting: number | undefined;
  /** Jobs added by this process, ever, and how many of them the last sample may not hold. */
  let adds = 0;
  let addsAtSample = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  let firstSampled: () => void = () => undefined;
  const sampled = new Promise<void>((resolve) => (firstSampled = resolve));

  async function sample(): Promise<void> {
    const mark = adds;
    try {
      const counts = await queue.getJobCounts('wait', 'paused', 'prioritized', 'delayed');
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      if (waiting !== undefined && (waiting > limit) !== (total > limit)) {
        log.warn({ waiting: total, limit }, total > limit ? 'backlog over its limit: refusing publishes' : 'backlog back under its limit');
      }
      waiting = total;
      addsAtSample = mark;
      firstSampled();
    } catch {
      // Redis away: publishes fail fast on their own; keep the last sample.
    }
    if (!closed) {
      timer = setTimeout(() => void sample(), intervalMs);
      timer.unref();
    }
  }
  void sample();

  return {
    full: () => waiting !== undefined && waiting + (adds - addsAtSample) > limit,
    added: () => void adds++,
    sampled,
    close() {
      closed = true;
      firstSampled();
      clearTimeout(timer);
      return Promise.resolve();
    },
  };
}
