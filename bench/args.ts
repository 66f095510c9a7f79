// The bench's command line: the help text, the flags, and the scenarios they select.
import { parseArgs } from 'node:util';
import type { StoreKind } from '../tools/harness/cluster.js';
import { PRESETS, type Scenario } from './scenarios.js';
import type { IdOrder } from './workload.js';

export const HELP = `npm run bench -- [options]

Runs the service as real processes and measures it against round three's targets
(BENCHMARKS.md), with the stage limits and the references measured in the same run.

  --scenario LIST     comma-separated scenarios and parts (default: all of them):
                      empty-batched, batched-random, batched-ordered, single, wait, recovery,
                      pg-batched, pg-single (these two always on PostgreSQL, on
                      TEST_POSTGRES_URL's server, in a database of their own);
                      jetstream: NATS JetStream's deduplicating publish, the reference
                      (a nats-server of the bench's own on a free port);
                      fanout: one topic without subscribers, with N, and paced at half
                      the rate with N (see --fanout-subscribers);
                      worker-start: a worker's start to first commit on the 10 M prefill;
                      writers: the store stage alone with 1, 2 and 4 writers, on both stores;
                      identity-cost: bytes on disk per expired identity, on both stores;
                      profile: empty-batched, single and pg-batched again at 40% of their
                      events, each Node process of the service under V8's CPU profiler
                      (its heaviest frames in the tables; no target is read from them)
                      wait: one event per request with ?wait=5, latency until processed
                      recovery: a worker SIGKILLed mid-stream; time until its jobs are committed
  --scale F           every size times F (events, prefills, JetStream messages, writers'
                      events), for a short run (--scale 0.01: about four minutes on a loaded two-core machine)
  --store sqlite|postgres          the store of the scenarios that do not name theirs (default sqlite)
  --events N          events to publish per scenario (default per scenario)
  --batch N           events per request; 1 = one event per request
  --concurrency N     requests in flight
  --dup R             share of copies, 0..1
  --workers N         worker processes
  --topics N          topics
  --ids random|ordered
  --prefill N         events stored before measuring
  --appendfsync everysec|always   Redis durability (default everysec)
  --synchronous FULL|NORMAL        SQLite durability (default FULL)
  --jetstream-messages N           messages of each JetStream run (default 100000)
  --fanout-subscribers N           subscribers of the fanout runs (default 100)
  --fanout-paced-rate N            events/s of the paced fanout run (default: half the
                      rate of the run without subscribers)
  --subscribers LIST  run each scenario once per number of live subscribers of every
                      event (GET /events/stream), e.g. 0,1,100: delivery latency, and
                      publishing throughput against the run with 0 (STREAM_* and
                      MAX_SUBSCRIBERS from the environment reach the API)
  --subscribe-to all|one-topic   what each subscriber follows: every event (default),
                      or one of the scenario's topics, round robin
  --no-stages         skip the stage limits
  --no-write          do not write BENCHMARKS.md (a full run at scale 1 rewrites its top section)
  --help
`;

/** A command line the bench refuses: the message to print before the help, exit code 2. */
export class UsageError extends Error {}

export type BenchArgs = ReturnType<typeof parseFlags>;

/** The flags as given; throws UsageError on an unknown or malformed one. */
export function parseFlags(argv?: string[]) {
  try {
    return parseArgs({
      ...(argv && { args: argv }),
      options: {
        scenario: { type: 'string', default: 'all' },
        events: { type: 'string' },
        batch: { type: 'string' },
        concurrency: { type: 'string' },
        dup: { type: 'string' },
        workers: { type: 'string' },
        topics: { type: 'string' },
        ids: { type: 'string' },
        prefill: { type: 'string' },
        scale: { type: 'string', default: '1' },
        'jetstream-messages': { type: 'string', default: '100000' },
        'fanout-subscribers': { type: 'string', default: '100' },
        'fanout-paced-rate': { type: 'string' },
        appendfsync: { type: 'string', default: 'everysec' },
        synchronous: { type: 'string', default: 'FULL' },
        store: { type: 'string', default: 'sqlite' },
        subscribers: { type: 'string' },
        'subscribe-to': { type: 'string', default: 'all' },
        'no-stages': { type: 'boolean', default: false },
        'no-write': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));

/** The store flag, checked. */
export function storeOf(values: BenchArgs): StoreKind {
  const store = values.store as StoreKind;
  if (store !== 'sqlite' && store !== 'postgres') throw new UsageError('--store must be sqlite or postgres');
  return store;
}

/** Everything a full run measures, in the order it runs. */
export const ALL_PARTS = ['jetstream', 'empty-batched', 'batched-random', 'batched-ordered', 'single', 'wait', 'recovery', 'pg-batched', 'pg-single', 'fanout', 'worker-start', 'writers', 'identity-cost', 'profile'];
const PARTS = new Set(['jetstream', 'fanout', 'worker-start', 'writers', 'identity-cost', 'profile']);

/** What `--scenario` asks for: scenario names and the parts that are not scenarios. */
export function partsOf(values: BenchArgs): { scenarios: string[]; parts: Set<string>; all: boolean } {
  const asked = values.scenario === 'all' ? ALL_PARTS : values.scenario.split(',');
  const unknown = asked.filter((n) => !PARTS.has(n) && (!PRESETS[n] || n === 'fanout-paced'));
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')}`);
  return { scenarios: asked.filter((n) => !PARTS.has(n)), parts: new Set(asked.filter((n) => PARTS.has(n))), all: values.scenario === 'all' };
}

/** `--scale`: a positive factor. */
export function scaleOf(values: BenchArgs): number {
  const scale = Number(values.scale);
  if (!(scale > 0 && scale <= 1)) throw new UsageError('--scale must be a number above 0, at most 1');
  return scale;
}

export const scaled = (n: number, scale: number) => (n === 0 ? 0 : Math.max(100, Math.round(n * scale)));

/** The scenarios `--scenario` names, each preset scaled and overridden by the flags given. */
export function scenariosOf(values: BenchArgs, names: string[]): Scenario[] {
  const scale = scaleOf(values);
  return names.map((n) => {
    const preset = PRESETS[n];
    if (!preset) throw new UsageError(`unknown scenario ${n}; see --help`);
    return {
      ...preset,
      events: num(values.events, scaled(preset.events, scale)),
      batch: num(values.batch, preset.batch),
      concurrency: num(values.concurrency, preset.concurrency),
      dupRatio: num(values.dup, preset.dupRatio),
      workers: num(values.workers, preset.workers),
      topics: num(values.topics, preset.topics),
      ids: (values.ids as IdOrder | undefined) ?? preset.ids,
      prefill: num(values.prefill, scaled(preset.prefill, scale)),
    };
  });
}

/** `--subscribers`: one run per count, or one run without subscribers (undefined). */
export function subscriberCountsOf(values: BenchArgs): (number | undefined)[] {
  const counts = values.subscribers === undefined ? [undefined] : values.subscribers.split(',').map(Number);
  if (counts.some((n) => n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= 10_000))) {
    throw new UsageError('--subscribers must be a comma-separated list of whole numbers from 0 to 10000');
  }
  return counts;
}
