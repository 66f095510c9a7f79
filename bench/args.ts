// The bench's command line: the help text, the flags, and the scenarios they select.
import { parseArgs } from 'node:util';
import type { StoreKind } from '../tools/harness/cluster.js';
import { PRESETS, type Scenario } from './scenarios.js';
import type { IdOrder } from './workload.js';

export const HELP = `npm run bench -- [options]

Runs the service as real processes and measures it. With no scenario options it runs the
four target scenarios (batched-random, batched-ordered, single, growth) and the stage limits.

  --scenario NAME     one of: batched-random, batched-ordered, single, empty-batched, wait,
                      recovery, writers, all (default: all: the first four, wait,
                      recovery and writers)
                      wait: one event per request with ?wait=5, latency until processed
                      recovery: a worker SIGKILLed mid-stream; time until its jobs are committed
                      writers: the store stage alone with 1, 2 and 4 concurrent writers, on both stores
  --store sqlite|postgres          the store of the service under test (default sqlite;
                                   postgres: a database of its own on TEST_POSTGRES_URL's server)
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
  --subscribers LIST  run each scenario once per number of live subscribers of every
                      event (GET /events/stream), e.g. 0,1,100: delivery latency, and
                      publishing throughput against the run with 0 (STREAM_* and
                      MAX_SUBSCRIBERS from the environment reach the API)
  --subscribe-to all|one-topic   what each subscriber follows: every event (default),
                      or one of the scenario's topics, round robin
  --no-stages         skip the stage limits
  --no-write          do not write BENCHMARKS.md
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

/** The scenarios `--scenario` names, each preset overridden by the flags given. */
export function scenariosOf(values: BenchArgs, names: string[]): Scenario[] {
  return names.map((n) => {
    const preset = PRESETS[n];
    if (!preset) throw new Error(`unknown scenario ${n}; see --help`);
    return {
      ...preset,
      events: num(values.events, preset.events),
      batch: num(values.batch, preset.batch),
      concurrency: num(values.concurrency, preset.concurrency),
      dupRatio: num(values.dup, preset.dupRatio),
      workers: num(values.workers, preset.workers),
      topics: num(values.topics, preset.topics),
      ids: (values.ids as IdOrder | undefined) ?? preset.ids,
      prefill: num(values.prefill, preset.prefill),
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
