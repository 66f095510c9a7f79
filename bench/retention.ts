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
import Database from 'better-sqlite3';
import pg from 'pg';
import { startRedisServer } from '../scripts/redis-server.js';
import { startCluster, type Cluster, type StoreKind } from '../tools/harness/cluster.js';
import { get } from '../tools/harness/http.js';
import { ROOT } from '../tools/harness/root.js';
import { waitFor } from '../tools/harness/wait.js';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';
import { Connection, prepareRequest } from './http-client.js';
import { stream } from './workload.js';

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

type Stats = { received: number; unique_processed: number; duplicate_dropped: number; pending: number | null; expired?: number; erased?: number };

type Sample = {
  elapsedS: number;
  sent: number;
  stats: Stats;
  rows: { events: number; gone: number; jobs: number; copies: number };
  /** The store on disk: SQLite file + WAL; PostgreSQL: the store's tables with their indexes and TOAST. */
  sizeBytes: number;
  /** SQLite: the WAL alone, and the pages free for reuse. */
  walBytes?: number;
  freePages?: number;
  pageSize?: number;
  /** PostgreSQL: the events table with its indexes. */
  eventsBytes?: number;
};

/** Row counts and sizes, read straight from the store (a measuring tool may; the service never sees it). */
type Probe = {
  sample(): Promise<Omit<Sample, 'elapsedS' | 'sent' | 'stats'>>;
  /** Anything the store needs from outside the service to reuse deleted rows' space; a note on it, or undefined. */
  upkeep(): Promise<string | undefined>;
  close(): Promise<void>;
};

function sqliteProbe(dataDir: string): Probe {
  const file = path.join(dataDir, STORE_FILE);
  const size = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
  return {
    sample() {
      // A connection per sample: nothing of the bench holds a read snapshot between samples,
      // which would keep the workers' checkpoints from resetting the WAL.
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        db.pragma('busy_timeout = 5000');
        const count = (t: string) => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
        const rows = { events: count('events'), gone: count('gone'), jobs: count('jobs'), copies: count('copies') };
        const freePages = db.pragma('freelist_count', { simple: true }) as number;
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        const walBytes = size(`${file}-wal`);
        return Promise.resolve({ rows, sizeBytes: size(file) + walBytes, walBytes, freePages, pageSize });
      } finally {
        db.close();
      }
    },
    upkeep: () => Promise.resolve(undefined),
    close: () => Promise.resolve(),
  };
}

function postgresProbe(url: string): Probe {
  const client = new pg.Client({ connectionString: url });
  const vacuumClient = new pg.Client({ connectionString: url });
  const connected = Promise.all([client.connect(), vacuumClient.connect()]);
  const vacuumMs: number[] = [];
  let server: { autovacuum: boolean } | undefined;
  const upkeeper = async () =>
    (server ??= { autovacuum: (await client.query<{ autovacuum: string }>('SHOW autovacuum')).rows[0]!.autovacuum === 'on' });
  return {
    async sample() {
      await connected;
      const count = async (t: string) => Number((await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${t}`)).rows[0]!.n);
      const rows = { events: await count('events'), gone: await count('gone'), jobs: await count('jobs'), copies: await count('copies') };
      const { rows: sz } = await client.query<{ total: string; events: string }>(
        `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::text AS total,
                pg_total_relation_size('events')::text AS events
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = current_schema() AND c.relkind = 'r'`,
      );
      return { rows, sizeBytes: Number(sz[0]!.total), eventsBytes: Number(sz[0]!.events) };
    },
    // PostgreSQL reuses a deleted row's space once VACUUM has marked it free, which
    // autovacuum does by itself (on by default). A server where it is off (some test setups
    // turn it off) would show the table growing by every deleted row: there the bench does
    // autovacuum's job, a plain VACUUM of the database at every sample (autovacuum's default
    // naptime is a minute), and says so in the results.
    async upkeep() {
      await connected;
      const on = (await upkeeper()).autovacuum;
      if (on) return undefined;
      const t = performance.now();
      await vacuumClient.query('VACUUM');
      vacuumMs.push(performance.now() - t);
      return `autovacuum is off on this server: the bench ran a plain \`VACUUM\` of the database after each sample, as autovacuum would (${vacuumMs.length} runs, ${(vacuumMs.reduce((a, b) => a + b, 0) / vacuumMs.length / 1000).toFixed(1)} s on average, at most ${(Math.max(...vacuumMs) / 1000).toFixed(1)} s)`;
    },
    close: async () => {
      await client.end();
      await vacuumClient.end();
    },
  };
}

/**
 * The paced producer: batch i is due at i x batch / rate seconds after the start; `lanes`
 * keep-alive connections take the batches in turn, so a slow answer delays no other lane.
 * A 503 (backlog over its limit) is retried after its Retry-After, as producers do.
 */
class PacedLoad {
  sent = 0;
  retries = 0;
  private stopping = false;
  private next = 0;
  private readonly events;
  private readonly url: URL;
  private running: Promise<void>[] = [];
  private started = 0;

  constructor(baseUrl: string) {
    this.url = new URL('/publish', baseUrl);
    this.events = stream({ ids: 'random', topics: 10, dupRatio, seed: 24, prefix: 'ret' });
  }

  start(): void {
    this.started = performance.now();
    this.running = Array.from({ length: lanes }, () => this.lane());
  }

  private async lane(): Promise<void> {
    const connection = new Connection(Number(this.url.port), this.url.hostname);
    try {
      while (!this.stopping) {
        const i = this.next++;
        const due = this.started + (i * batch * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (this.stopping) return;
        const body = JSON.stringify({ events: Array.from({ length: batch }, () => this.events.next()) });
        const req = prepareRequest(this.url.host, this.url.pathname, 'application/json', body);
        for (;;) {
          const res = await connection.request(req).catch(() => undefined);
          if (res?.status === 202) break;
          if (res !== undefined && res.status !== 503) throw new Error(`publish answered ${res.status}`);
          this.retries++;
          await new Promise((r) => setTimeout(r, Math.min(1000, (res?.retryAfter ?? 0.05) * 1000)));
        }
        this.sent += batch;
      }
    } finally {
      connection.close();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }
}

const mb = (b: number) => (b / 1e6).toFixed(1);

/**
 * What grows with the identities: on SQLite the database file alone, since the WAL's size
 * is a high-water mark of writes between checkpoints, not of what is stored.
 */
const grown = (s: Sample) => s.sizeBytes - (s.walBytes ?? 0);

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function table(samples: Sample[], perIdentity: number): string {
  const head =
    store === 'sqlite'
      ? '| elapsed | stored so far | expired | `events` rows | `gone` rows | `jobs` rows | `copies` rows | size on disk (MB) | WAL (MB) | database file (MB) | free pages (MB) | file − `gone` × slope (MB) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
      : '| elapsed | stored so far | expired | `events` rows | `gone` rows | `jobs` rows | `copies` rows | store tables (MB) | `events` table (MB) | size − `gone` × slope (MB) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  const lines = samples.map((s) => {
    const common = [
      `${Math.round(s.elapsedS)} s`,
      s.stats.unique_processed,
      s.stats.expired ?? 0,
      s.rows.events,
      s.rows.gone,
      s.rows.jobs,
      s.rows.copies,
      mb(s.sizeBytes),
    ];
    const rest = mb(grown(s) - s.rows.gone * perIdentity);
    const extra =
      store === 'sqlite'
        ? [mb(s.walBytes ?? 0), mb(s.sizeBytes - (s.walBytes ?? 0)), mb((s.freePages ?? 0) * (s.pageSize ?? 0)), rest]
        : [mb(s.eventsBytes ?? 0), rest];
    return `| ${[...common, ...extra].join(' | ')} |`;
  });
  return [head, ...lines].join('\n');
}

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

    const load = new PacedLoad(c.baseUrl);
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
      table(samples, perIdentity),
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
