// What workers tell API processes after each group commit, over Redis pub/sub: the highest
// seq now visible (live subscribers of GET /events/stream read from there), and the
// per-event results of the jobs a producer waits for (POST /publish?wait=s).
//
// Pub/sub is fire-and-forget, and that is enough here: a notice lost (an API process
// reconnecting) delays a stream until the next notice, whose seq covers everything before
// it, and turns a `?wait` into its usual 202. Nothing durable ever depends on a notice.
import type { Redis } from 'ioredis';
import { queueKey } from './queue.js';
import type { EventResult } from './store/port.js';

export type JobResults = { job: string; results: EventResult[] };

export type CommitNotice = {
  /** Every event with a seq up to this one is visible to readers. */
  seq: number;
  /** Results of the committed jobs whose producer waits for them. */
  jobs: JobResults[];
  /** When the commit ended (ms since the epoch, the worker's clock): delivery latency is measured from here. */
  committed_at?: number;
};

export function commitsChannel(queueName: string): string {
  return queueKey(queueName, 'aggregator:commits');
}

export async function publishNotice(redis: Redis, queueName: string, notice: CommitNotice): Promise<void> {
  await redis.publish(commitsChannel(queueName), JSON.stringify(notice));
}

/** A notice from its wire form; undefined for anything malformed (never trusted blindly). */
export function parseNotice(message: string): CommitNotice | undefined {
  try {
    const n = JSON.parse(message) as Partial<CommitNotice>;
    if (typeof n.seq !== 'number' || !Array.isArray(n.jobs)) return undefined;
    return { seq: n.seq, jobs: n.jobs, ...(typeof n.committed_at === 'number' && { committed_at: n.committed_at }) };
  } catch {
    return undefined;
  }
}
