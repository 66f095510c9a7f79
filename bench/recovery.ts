// Recovery, as the bench measures it: a worker is killed (SIGKILL) in the middle of a
// stream, holding jobs, and is not restarted. Its jobs stay locked in Redis until their lock
// expires and a surviving worker's stalled-job check moves them back (JOB_LOCK_MS and half of
// it, shared/config.ts); the time to recover runs from the kill until every job that was
// active at that moment is committed in the store. Jobs the survivors held at the kill are
// among them, and finish sooner: the slowest is the dead worker's.
import { Redis } from 'ioredis';
import { KEY_PREFIX } from '../shared/queue.js';
import type { Store } from '../shared/store/port.js';
import type { Proc } from '../tools/harness/cluster.js';

export type RecoveryResult = {
  /** Jobs active (held by any worker) at the kill. */
  heldJobs: number;
  /** From the kill until all of them were committed; undefined if that never happened. */
  seconds: number | undefined;
  /** The lock duration the workers ran with (undefined: the service's default). */
  jobLockMs: string | undefined;
};

export async function killMidStream(o: {
  redisUrl: string;
  queueName: string;
  victim: Proc;
  /** Opened by the bench itself, to see commits as readers do. */
  store: Store;
  /** True once the stream is far enough along to kill. */
  ready: () => boolean;
  jobLockMs: string | undefined;
  timeoutMs?: number;
}): Promise<RecoveryResult> {
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
  try {
    while (!o.ready()) await new Promise((r) => setTimeout(r, 20));
    // Active jobs read right before the kill: none can be taken by the victim in between
    // that would not be recovered just as slowly, and the count is what the table reports.
    const held = await redis.lrange(`${KEY_PREFIX}:${o.queueName}:active`, 0, -1);
    await o.victim.kill();
    const killedAt = performance.now();
    const deadline = killedAt + (o.timeoutMs ?? 120_000);
    let seconds: number | undefined;
    while (performance.now() < deadline) {
      const committed = await o.store.committedJobIds(held);
      if (committed.size === held.length) {
        seconds = (performance.now() - killedAt) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { heldJobs: held.length, seconds, jobLockMs: o.jobLockMs };
  } finally {
    redis.disconnect();
  }
}
