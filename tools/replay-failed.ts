// `npm run replay-failed`: puts failed (poison) jobs back in the queue once they can succeed.
//
// Each failed job's data is read raw from Redis (BullMQ itself cannot load a job whose data
// is not JSON) and every event is checked again against shared/schema.ts. A job whose events
// all pass is re-added under a new id (replayJobId: the same id on every run, so a replay
// interrupted between the add and the removal and run again adds nothing new) and then
// removed from the failed set. Anything else stays in the failed set and is listed, unless
// --drop-invalid says to replay the valid events of a partly invalid job.
//
//   npm run replay-failed -- [--dry-run] [--drop-invalid] [--limit N]
// REDIS_URL and QUEUE_NAME as for the services.
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../shared/config.js';
import { errorMessage } from '../shared/errors.js';
import { JOB_NAME, createQueue, createRedis, replayJobId } from '../shared/queue.js';
import { inspectJob } from '../shared/job.js';
import type { Event } from '../shared/schema.js';

type Verdict =
  | { id: string; action: 'replay'; newId: string; events: Event[]; dropped: number }
  | { id: string; action: 'keep'; reason: string };

/** What to do with one failed job, from its raw data. */
function judge(id: string, rawData: string | null, dropInvalid: boolean): Verdict {
  if (rawData === null) return { id, action: 'keep', reason: 'job has no data (removed meanwhile?)' };
  let data: unknown;
  try {
    data = JSON.parse(rawData);
  } catch (err) {
    return { id, action: 'keep', reason: `data is not JSON: ${errorMessage(err)}` };
  }
  const { unreadable, valid, problems } = inspectJob(data);
  if (unreadable !== undefined) return { id, action: 'keep', reason: unreadable };
  if (problems.length > 0 && (!dropInvalid || valid.length === 0)) {
    return { id, action: 'keep', reason: `${problems.length} invalid event(s); first: ${problems[0]}` };
  }
  return { id, action: 'replay', newId: replayJobId(id, valid.length), events: valid, dropped: problems.length };
}

function ready(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function main(): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      'dry-run': { type: 'boolean', default: false },
      'drop-invalid': { type: 'boolean', default: false },
      limit: { type: 'string' },
    },
  });
  const config = loadConfig(process.env);
  const limit = args.limit === undefined ? Infinity : Number(args.limit);
  if (!(limit > 0)) throw new ConfigError([`--limit must be a positive number (got ${args.limit})`]);
  const dryRun = args['dry-run'];

  const redis = createRedis(config.redisUrl, 'tool', config.redisTimeoutMs);
  redis.on('error', () => undefined); // reported by ready() or the first command
  const queue = createQueue(config.queueName, redis);
  try {
    await ready(redis, 10_000);
    const ids = await redis.zrange(queue.keys.failed!, 0, -1);
    const chosen = ids.slice(0, Math.min(ids.length, limit));
    let replayedJobs = 0;
    let replayedEvents = 0;
    let droppedEvents = 0;
    const kept: { id: string; reason: string }[] = [];
    for (const id of chosen) {
      const verdict = judge(id, await redis.hget(queue.toKey(id), 'data'), args['drop-invalid']);
      if (verdict.action === 'keep') {
        kept.push(verdict);
        continue;
      }
      if (!dryRun) {
        // Add first, then remove: a crash in between leaves the failed job to be replayed
        // again under the same new id, never an event that is in neither place.
        await queue.add(JOB_NAME, { events: verdict.events }, { jobId: verdict.newId });
        await queue.remove(id);
      }
      replayedJobs++;
      replayedEvents += verdict.events.length;
      droppedEvents += verdict.dropped;
      console.log(`${dryRun ? 'would replay' : 'replayed'} ${id} as ${verdict.newId} (${verdict.events.length} events${verdict.dropped ? `, ${verdict.dropped} invalid dropped` : ''})`);
    }
    for (const k of kept.slice(0, 50)) console.log(`kept ${k.id}: ${k.reason}`);
    if (kept.length > 50) console.log(`... and ${kept.length - 50} more kept`);
    console.log(
      JSON.stringify({
        queue: config.queueName,
        dry_run: dryRun,
        failed_jobs: ids.length,
        examined: chosen.length,
        replayed_jobs: replayedJobs,
        replayed_events: replayedEvents,
        dropped_invalid_events: droppedEvents,
        kept_jobs: kept.length,
      }),
    );
    return 0;
  } finally {
    await queue.close().catch(() => undefined);
    await redis.quit().catch(() => undefined);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`replay-failed: ${err instanceof ConfigError ? err.message : errorMessage(err)}`);
    process.exit(1);
  },
);
