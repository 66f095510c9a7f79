// The queue between the API and the workers: its name, its job shape, its connections,
// and the one exact way to ask how many accepted events are still waiting in it.
import { createHash, randomUUID } from 'node:crypto';
import { Job, Queue, type JobJson, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { Event, EventFields } from './schema.js';

export const JOB_NAME = 'publish';

/** BullMQ's key prefix (its default): every key of a queue starts with `bull:<name>:`. */
export const KEY_PREFIX = 'bull';

/** A key of the queue's own namespace, for what the aggregator keeps beside BullMQ's keys. */
export function queueKey(queueName: string, suffix: string): string {
  return `${KEY_PREFIX}:${queueName}:${suffix}`;
}

/**
 * A job's data as the API writes it (version 2): each event as its fields in order, the
 * payload as the JSON text the API made of it, so a worker neither builds the payload
 * object from the job nor serialises it again for the store (shared/job.ts).
 */
export type FieldsJobData = {
  v: 2;
  events: EventFields[];
  /** A producer waits for this job's results (POST /publish?wait=s): the worker publishes them. */
  reply?: boolean;
};

/** A job's data as written before version 2 (and by the replay tool): still read. */
type EventsJobData = { events: Event[]; reply?: boolean };

export type PublishJobData = FieldsJobData | EventsJobData;

/**
 * Every job id carries its event count (`p-<count>-<uuid>`). The count then lives exactly
 * where the job lives, atomically with it, so pending events can be summed from the ids
 * in Redis without loading any job's data.
 */
export function newJobId(eventCount: number): string {
  return `p-${eventCount}-${randomUUID()}`;
}

/**
 * The id a replayed failed job gets: new (its count is what it carries now), yet the same
 * on every replay of that failed job, so a replay run again after a crash re-adds nothing
 * new (the store recognises a job id it has already committed).
 */
export function replayJobId(failedJobId: string, eventCount: number): string {
  const h = createHash('sha256').update(`replay:${failedJobId}`).digest('hex');
  return `p-${eventCount}-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function eventCountOfJobId(id: string): number {
  const m = /^p-(\d+)-/.exec(id);
  return m ? Number(m[1]) : 0;
}

export const JOB_OPTIONS: JobsOptions = {
  // The store records every finished job id, so Redis need not keep completed jobs.
  removeOnComplete: true,
  // Failed jobs stay for inspection and replay, up to a bound.
  removeOnFail: { count: 100_000 },
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
};

type Role = 'api' | 'worker' | 'tool';

/**
 * The API's connection fails fast (no offline queue, a command timeout), so a publish
 * answers 503 instead of hanging while Redis is away; a worker's connection waits and
 * retries forever, as BullMQ's blocking commands require.
 */
export function createRedis(url: string, role: Role, commandTimeoutMs = 3000, connectionName = `aggregator-${role}`): Redis {
  const common: RedisOptions = {
    retryStrategy: (times) => Math.min(100 * times, 1000),
    connectionName,
    lazyConnect: false,
  };
  const options: RedisOptions =
    role === 'worker'
      ? { ...common, maxRetriesPerRequest: null, enableOfflineQueue: true }
      : { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: commandTimeoutMs };
  return new Redis(url, options);
}

/**
 * Lets go of a connection: QUIT when Redis answers (its replies under way arrive first), else
 * at once. A Redis that is away is no reason for an unclean stop: there is nothing to hand back
 * on a connection that is down, and QUIT there would fail (API) or wait for Redis (worker).
 */
export async function closeRedis(redis: Redis, waitMs = 2000): Promise<void> {
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), waitMs)));
  const outcome = await Promise.race([redis.quit().then(() => 'quit' as const, () => 'failed' as const), late]);
  clearTimeout(timer);
  if (outcome !== 'quit') redis.disconnect();
}

/**
 * A job's data as the JSON the API wrote itself, in UTF-8, a slice at a time (a large
 * request): BullMQ's one JSON.stringify of the whole data, and ioredis' one UTF-8 encoding of
 * that text, would each hold the event loop for as long as they run (about 100 ms each for
 * 16 MiB). The bytes are what JSON.stringify would have written, so a worker reads the job
 * as any other.
 */
export class JobBytes {
  constructor(readonly utf8: Buffer) {}
}

/** What the API adds: job data, or its JSON already written. */
export type QueuedJobData = PublishJobData | JobBytes;

const NO_DATA = {} as QueuedJobData;

/**
 * BullMQ's job, but JobBytes are handed to Redis as they are instead of being serialised:
 * BullMQ passes the data on as one argument of its add script, and ioredis writes a Buffer
 * argument unchanged (a string it would encode first).
 */
class BytesJob extends Job<QueuedJobData> {
  override asJSON(): JobJson {
    const held = this.data;
    if (!(held instanceof JobBytes)) return super.asJSON();
    this.data = NO_DATA; // the rest of the job as BullMQ writes it, without serialising the data
    try {
      return { ...super.asJSON(), data: held.utf8 as unknown as string };
    } finally {
      this.data = held;
    }
  }
}

class PublishQueue extends Queue<QueuedJobData> {
  protected override get Job(): typeof Job {
    return BytesJob as unknown as typeof Job;
  }
}

export function createQueue(name: string, connection: Redis): Queue<QueuedJobData> {
  return new PublishQueue(name, { connection, prefix: KEY_PREFIX, defaultJobOptions: JOB_OPTIONS });
}

/** Ids of every job that is queued and not finished: waiting, active, delayed or prioritized. */
export async function unfinishedJobIds(redis: Redis, queue: Queue): Promise<string[]> {
  const k = queue.keys;
  const replies = await redis
    .multi()
    .lrange(k.wait!, 0, -1)
    .lrange(k.paused!, 0, -1)
    .lrange(k.active!, 0, -1)
    .zrange(k.delayed!, 0, -1)
    .zrange(k.prioritized!, 0, -1)
    .exec();
  if (!replies) throw new Error('redis transaction aborted');
  const ids: string[] = [];
  for (const [err, list] of replies) {
    if (err) throw err;
    for (const id of list as string[]) ids.push(id);
  }
  return ids;
}

/** Redis settings that would silently lose jobs; empty when Redis is safe to use. */
export async function unsafeRedisSettings(redis: Redis): Promise<string[]> {
  const problems: string[] = [];
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    if (policy !== undefined && policy !== 'noeviction') {
      problems.push(
        `Redis maxmemory-policy is "${policy}": it must be "noeviction", or Redis may evict queued jobs (lost events)`,
      );
    }
  } catch {
    // CONFIG may be disabled on managed Redis; nothing can be checked then.
  }
  return problems;
}
