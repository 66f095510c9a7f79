// How full the queue is, sampled a few times a second rather than asked on every request:
// a publish that would push the backlog past its limit is refused with 503 up front.
import type { Queue } from 'bullmq';
import type { Logger } from '../../../shared/log.js';

export type Backlog = {
  full(): boolean;
  /** Stops sampling; safe to call twice. */
  close(): Promise<void>;
};

export function watchBacklog(queue: Queue, limit: number, log: Logger, intervalMs = 250): Backlog {
  let waiting: number | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  async function sample(): Promise<void> {
    try {
      const counts = await queue.getJobCounts('wait', 'paused', 'prioritized', 'delayed');
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      if (waiting !== undefined && (waiting > limit) !== (total > limit)) {
        log.warn({ waiting: total, limit }, total > limit ? 'backlog over its limit: refusing publishes' : 'backlog back under its limit');
      }
      waiting = total;
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
    full: () => waiting !== undefined && waiting > limit,
    close() {
      closed = true;
      clearTimeout(timer);
      return Promise.resolve();
    },
  };
}
