// The store's size over time under retention (docs/retention.md, "Store size over time"):
// the real API and workers with a private Redis and EVENT_RETENTION set, a steady paced
// load (a share of copies) for several retention periods, and every interval the rows of
// each table and the store's size on disk. Under a steady load the events table holds about
// rate x retention rows whatever the run's length; what keeps growing is `gone`, one small
// row per expired identity (kept forever, by design), and, until the jobs horizon of an
// hour, the committed job ids. The run ends by checking the books and writes a Markdown table
// to bench-results/retention-<store>.md.
//
//   npm run bench:retention -- [--store sqlite|postgres] [--rate 2000] [--retention 60]
//     [--minutes 7] [--interval 30] [--dup 0.1] [--batch 100] [--workers 1]
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../scripts/redis-server.js';
import { startCluster, type Cluster, type StoreKind } from '../tools/harness/cluster.js';
import { get } from '../tools/harness/http.js';
import { ROOT } from '../tools/harness/root.js';
import { waitFor } from '../tools/harness/wait.js';
import { PacedLoad } from './paced-load.js';
import { grown, mb, slope, table } from './retention-report.js';
import { postgresProbe, sqliteProbe, type Probe, type Sample, type Stats } from './retention-probes.js';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: 'sqlite' },
    rate: { type: 'string', default: '2000' },
    retention: { type: 'string', default: '60' },
    minutes: { type: 'string', default: '7' },
    interval: { type: 'string', default: '30' },
    dup: { type: 'string', default: '0.1' },
    batch: { type: 'string', default: '100' },
    workers: { type: 'string', default: '1' },
    lanes: { type: 'string', default: '4' },
  },
});

const store = args.store as StoreKind;
if (store !== 'sqlite' && store !== 'postgres') throw new Error('--store is sqlite or postgres');
const rate = Number(args.rate);
const retentionS = Number(args.retention);
const runMs = Number(args.minutes) * 60_000;
const intervalMs = Number(args.interval) * 1000;
const dupRatio = Number(args.dup);
const batch = Number(args.batch);
const workers = Number(args.workers);
const lanes = Number(args.lanes);

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-retention-'));
  const log = (line: string) => console.error(`[retention ${store}] ${line}`);
  const redis = await startRedisServer({ dir: path.join(dir, 'redis') });
  let cluster: Cluster | undefined;
  let probe: Probe | undefined;
  try {
    cluster = await startCluster({
      redisUrl: redis.url,
      workers,
      store,
      dataDir: path.join(dir, 'data'),
      logDir: path.join(dir, 'logs'),
      env: {
        LOG_LEVEL: 'warn',
        EVENT_RETENTION: `${retentionS}s`,
        // A worker slowed down by the load keeps its jobs instead of seeing them stall.
        JOB_LOCK_MS: '30000',
      },
    });
    const c = cluster;
    probe = store === 'sqlite' ? sqliteProbe(c.dataDir) : postgresProbe(c.database!.url);
    const stats = async () => {
      const r = await get(c.baseUrl, '/stats');
      if (r.status !== 200) throw new Error(`/stats answered ${r.status}`);
      return r.body as Stats;
    };
    log(`rate ${rate}/s in batches of ${batch}, ${dupRatio * 100}% copies, retention ${retentionS} s, ${runMs / 60_000} min, a sample every ${intervalMs / 1000} s`);

    const load = new PacedLoad(c.baseUrl, { rate, batch, lanes, dupRatio });
    const samples: Sample[] = [];
    const t0 = performance.now();
    const take = async () => {
      const s: Sample = { elapsedS: (performance.now() - t0) / 1000, sent: load.sent, stats: await stats(), ...(await probe!.sample()) };
      samples.push(s);
      log(
        `${Math.round(s.elapsedS)} s: sent ${s.sent}, stored ${s.stats.unique_processed}, pending ${s.stats.pending}, expired ${s.stats.expired ?? 0}; rows events ${s.rows.events} gone ${s.rows.gone} jobs ${s.rows.jobs} copies ${s.rows.copies}; ${mb(s.sizeBytes)} MB` +
          (s.walBytes !== undefined ? ` (WAL ${mb(s.walBytes)} MB, free ${mb((s.freePages ?? 0) * (s.pageSize ?? 0))} MB)` : ` (events ${mb(s.eventsBytes ?? 0)} MB)`),
      );
    };
    let upkeepNote: string | undefined;
    let upkeeping: Promise<void> = Promise.resolve();
    const upkeep = () => {
      upkeeping = upkeeping.then(async () => {
        upkeepNote = await probe!.upkeep();
      });
    };
    load.start();
    await take();
    upkeep();
    for (let k = 1; k * intervalMs <= runMs; k++) {
      const wait = t0 + k * intervalMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await take();
      upkeep();
    }
    await load.stop();
    await upkeeping;
    const loadS = (performance.now() - t0) / 1000;
    log(`load stopped after ${loadS.toFixed(0)} s: ${load.sent} events sent (${(load.sent / loadS).toFixed(0)}/s), ${load.retries} retries; draining`);
    await waitFor(async () => (await stats()).pending === 0, { timeoutMs: 300_000, what: 'the queue to drain' });
    await take();
    const final = samples[samples.length - 1]!;

    const books = final.stats.received === final.stats.unique_processed + final.stats.duplicate_dropped;
    const expired = (final.stats.expired ?? 0) > 0;
    // Once a full retention period plus a sweep has passed, the events table is at its
    // steady size, and the store grows by the identities alone: the slope of size over
    // `gone` rows is what one expired identity costs, everything else included.
    const steady = samples.slice(0, -1).filter((s) => s.elapsedS >= 2 * retentionS - 1);
    const perIdentity = steady.length >= 2 ? slope(steady.map((s) => s.rows.gone), steady.map(grown)) : 0;
    const storedRate = (final.stats.unique_processed - (samples[0]?.stats.unique_processed ?? 0)) / loadS;
    const eventsRows = steady.map((s) => s.rows.events);

    const commit = execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim();
    const cpus = os.cpus();
    const md = [
      `# Store size over time under retention (${store === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`,
      '',
      `- date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; commit ${commit}`,
      `- machine: ${cpus.length} cores ${cpus[0]?.model.trim() ?? ''}, shared with other work while it ran; Node.js ${process.version}`,
      `- run: \`npm run bench:retention -- --store ${store} --rate ${rate} --retention ${retentionS} --minutes ${runMs / 60_000} --interval ${intervalMs / 1000} --dup ${dupRatio} --batch ${batch} --workers ${workers}\``,
      `- load: ${load.sent} events published in ${loadS.toFixed(0)} s (${(load.sent / loadS).toFixed(0)}/s asked ${rate}/s, ${dupRatio * 100}% copies of recent events, batches of ${batch}), ${load.retries} retries after 503; ${workers} worker(s); \`EVENT_RETENTION=${retentionS}s\``,
      ...(upkeepNote !== undefined ? [`- ${upkeepNote}`] : []),
      `- stored: ${storedRate.toFixed(0)} events/s, so the steady \`events\` table should hold about ${Math.round(storedRate * retentionS)} rows (rate x retention, plus up to one sweep interval of 5 s)`,
      '',
      table(store, samples, perIdentity),
      '',
      `The last row is taken after the load stopped and the queue drained.`,
      '',
      `- books: received ${final.stats.received} = unique_processed ${final.stats.unique_processed} + duplicate_dropped ${final.stats.duplicate_dropped}: ${books ? 'balanced' : 'NOT balanced'}; expired ${final.stats.expired ?? 0}`,
      steady.length >= 2
        ? `- from ${Math.round(steady[0]!.elapsedS)} s (two retention periods) on: \`events\` rows between ${Math.min(...eventsRows)} and ${Math.max(...eventsRows)}; the ${store === 'sqlite' ? 'database file' : 'store'} grows with \`gone\` by ${perIdentity.toFixed(0)} bytes per expired identity (least-squares slope of its size over \`gone\` rows, everything else in it included: ${store === 'sqlite' ? 'dedup index' : '`identities`'}, job ids, pages not yet reused); the last column takes that growth out`
        : '- the run was too short for a steady state (less than two retention periods)',
      '',
    ].join('\n');
    const out = path.join(ROOT, 'bench-results', `retention-${store}.md`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, md);
    console.log(md);
    log(`written to ${path.relative(ROOT, out)}`);
    if (!books || !expired) process.exitCode = 1;
  } finally {
    await probe?.close().catch(() => {});
    await cluster?.stop().catch(() => {});
    await cluster?.destroy().catch(() => {});
    await redis.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
