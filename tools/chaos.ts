// `npm run chaos`: the real processes (Redis, the API, N workers) under sustained mixed load
// while they are killed at random, and Redis, the run's own PostgreSQL and the links to them
// fail; then a check, from the outside, that every event answered 202 is stored exactly once
// and the counters add up.
//
//   npm run chaos -- [--seconds 60] [--kills N] [--workers 2] [--publishers 4] [--seed S]
//                    [--appendfsync everysec|always] [--store sqlite|postgres] [--keep]
//
// With --kills the run lasts until that many faults were injected, else for --seconds.
// Publishers behave as real producers: a request answered anything but 202, or not answered
// in time, is sent again, as it was, until it is accepted.
//
// This file wires the parts in chaos/: options (the flags), random (the seeded choices),
// ledger and requests (what the producers sent), publishers (the load), infra (Redis,
// PostgreSQL and the proxies on their links), faults (what fails), audit (the books) and
// report (the summary).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, type Cluster } from './harness/cluster.js';
import { checks, drained, stopAndReadStore, walkEvents } from './chaos/audit.js';
import { Faults } from './chaos/faults.js';
import { startInfra, stopInfra, type Infra } from './chaos/infra.js';
import { Ledger } from './chaos/ledger.js';
import { parseOptions, UsageError, USAGE, type ChaosOptions } from './chaos/options.js';
import { Publishers } from './chaos/publishers.js';
import { pause, Random, say } from './chaos/random.js';
import { report } from './chaos/report.js';
import { RequestMaker } from './chaos/requests.js';

/** What is running, for the cleanup whatever happens. */
type Running = { infra: Partial<Infra>; cluster?: Cluster; faults?: Faults };

async function startService(o: ChaosOptions, dir: string, running: Running): Promise<{ infra: Infra; cluster: Cluster }> {
  const infra = await startInfra(dir, o.storeKind, o.appendfsync, running.infra);
  const cluster = (running.cluster = await startCluster({
    redisUrl: infra.redisUrl,
    workers: o.workerCount,
    dataDir: path.join(dir, 'data'),
    logDir: path.join(dir, 'logs'),
    queueName: 'chaos',
    store: o.storeKind,
    ...(infra.databaseUrl !== undefined && { databaseUrl: infra.databaseUrl }),
    env: { LOG_LEVEL: 'info', MAX_BACKLOG_JOBS: '5000' },
  }));
  return { infra, cluster };
}

/** Injects faults every 0.8 to 2.5 s until the run is done; the seconds it lasted. */
async function injectUntilDone(o: ChaosOptions, random: Random, faults: Faults, ledger: Ledger): Promise<number> {
  const started = Date.now();
  let injected = 0;
  const done = () => (o.killTarget !== undefined ? injected >= o.killTarget : Date.now() - started >= o.seconds * 1000);
  while (!done()) {
    await pause(random.between(800, 2500));
    if (done()) break;
    const fault = await faults.inject();
    injected++;
    if (injected % 10 === 0 || o.killTarget === undefined) {
      say(`${((Date.now() - started) / 1000).toFixed(0)} s: fault ${injected} (${fault}); ${ledger.counts.requests} requests, ${ledger.acked.size} events accepted`);
    }
  }
  return (Date.now() - started) / 1000;
}

async function run(o: ChaosOptions, dir: string, running: Running): Promise<boolean> {
  say(`seed ${o.seed}, ${o.killTarget !== undefined ? `${o.killTarget} faults` : `${o.seconds} s`}, ${o.workerCount} workers, ${o.publisherCount} publishers, appendfsync ${o.appendfsync}, store ${o.storeKind}, dir ${dir}`);
  const random = new Random(o.seed);
  const ledger = new Ledger();
  const { infra, cluster } = await startService(o, dir, running);
  const faults = (running.faults = new Faults(cluster, infra, random, ledger));
  const publishers = new Publishers(cluster.baseUrl, random, ledger, new RequestMaker(o.seed, random, ledger));
  publishers.start(o.publisherCount);
  const loadSeconds = await injectUntilDone(o, random, faults, ledger);
  await publishers.close();
  say(`load stopped after ${loadSeconds.toFixed(0)} s; waiting for the queue to drain`);

  const final = await drained(cluster.baseUrl);
  const walk = await walkEvents(cluster.baseUrl, ledger);
  const stopped = await stopAndReadStore(cluster, faults);
  const results = checks(ledger, walk, final, faults, stopped);
  await faults.close();
  return report({ seed: o.seed, loadSeconds, jobLockMs: cluster.env.JOB_LOCK_MS, final, walk }, ledger, faults, results);
}

let options: ChaosOptions;
try {
  options = parseOptions();
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  console.error(`chaos: ${err.message}${err.withUsage ? `\n\n${USAGE}` : ''}`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-chaos-'));
const running: Running = { infra: {} };
let passed = false;
try {
  passed = await run(options, dir, running);
} catch (err) {
  console.error(`chaos: ${(err as Error).stack ?? String(err)}`);
  if (running.cluster) console.error(running.cluster.logTail(20));
} finally {
  if (running.cluster) {
    running.faults?.expectAllToStop();
    await running.cluster.destroy().catch(() => undefined);
  }
  await stopInfra(running.infra);
  if (passed && !options.keep) fs.rmSync(dir, { recursive: true, force: true });
  else say(`processes' logs and data kept in ${dir}`);
}
process.exit(passed ? 0 : 1);
