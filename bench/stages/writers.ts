// Stage limit of a store: commitJobs alone, with N writers at once, each its own process
// with its own connection (as N worker processes), on a fresh store: a SQLite file in a
// temporary directory, or a PostgreSQL database made for the run and dropped after.
//   npm run build && node dist/bench/stages/writers.js [--store sqlite|postgres]
//     [--writers 1,2,4] [--events 200000] [--batch 1000] [--jobs-per-commit 20] [--dup 0.3]
//     [--ids random|ordered] [--prefill 0] [--repeat 1]
// The PostgreSQL server is TEST_POSTGRES_URL's (tools/harness/postgres.ts).
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../tools/harness/postgres.js';
import { newJobId } from '../../shared/queue.js';
import type { JobToCommit, Store } from '../../shared/store/port.js';
import { openPostgresStore } from '../../shared/store/postgres/store.js';
import { STORE_FILE } from '../../shared/store/sqlite/schema.js';
import { openSqliteStore } from '../../shared/store/sqlite/store.js';
import { postgresCpuSeconds } from '../procstat.js';

export type StoreKind = 'sqlite' | 'postgres';
import { stream, type IdOrder } from '../workload.js';

type WriterSpec = {
  kind: StoreKind;
  /** A database URL, or a SQLite data directory. */
  url: string;
  events: number;
  batch: number;
  jobsPerCommit: number;
  dupRatio: number;
  ids: IdOrder;
  seed: number;
  prefix: string;
};

/** `cpuSeconds`: the writer process's own, over its commits. */
type WriterResult = { events: number; commits: number; seconds: number; cpuSeconds: number };


/** The groups one writer commits, built before the clock starts: only commits are timed. */
function groups(spec: WriterSpec): JobToCommit[][] {
  const s = stream({ ids: spec.ids, topics: 8, dupRatio: spec.dupRatio, seed: spec.seed, prefix: spec.prefix });
  const out: JobToCommit[][] = [];
  for (let done = 0; done < spec.events; ) {
    const group: JobToCommit[] = [];
    for (let j = 0; j < spec.jobsPerCommit && done < spec.events; j++) {
      const n = Math.min(spec.batch, spec.events - done);
      group.push({ id: newJobId(n), events: Array.from({ length: n }, () => s.next()) });
      done += n;
    }
    out.push(group);
  }
  return out;
}

/** As a worker opens it; SQLite writers wait for each other's lock inside the driver here. */
function openFor(kind: StoreKind, url: string, migrate: boolean): Promise<Store> {
  if (kind === 'postgres') return openPostgresStore({ url, poolSize: 1, migrate });
  return Promise.resolve(openSqliteStore({ dataDir: url, busyTimeoutMs: 60_000 }));
}

async function runWriter(spec: WriterSpec): Promise<void> {
  const store = await openFor(spec.kind, spec.url, false);
  const work = groups(spec);
  process.send!('ready');
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const started = performance.now();
  const cpuAt = process.cpuUsage();
  for (const group of work) await store.commitJobs(group);
  const cpu = process.cpuUsage(cpuAt);
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  process.send!({ events: spec.events, commits: work.length, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 } satisfies WriterResult, () => process.exit(0));
}

function startWriter(spec: WriterSpec): { child: ChildProcess; ready: Promise<void>; done: Promise<WriterResult> } {
  // From the sources (tsx) or from dist/, the writer is this very file.
  const execArgv = import.meta.filename.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = fork(import.meta.filename, ['writer', JSON.stringify(spec)], { execArgv });
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const done = new Promise<WriterResult>((resolve, reject) => {
    child.on('message', (m) => (m === 'ready' ? onReady() : resolve(m as WriterResult)));
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`writer exited with ${code}`))));
  });
  return { child, ready, done };
}

/** Shares of the writers' session time, sampled from pg_stat_activity. */
type SessionShares = { seqLock: number; rowLock: number; database: number; client: number };

type StageResult = {
  writers: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  commitsPerSecond: number;
  /** CPU per event of the writers, and of the PostgreSQL server (its processes, those ended included). */
  cpuMicrosPerEvent: number;
  sessions: SessionShares;
};

/**
 * Where the writers' sessions are, every few milliseconds: waiting for the seq lock (the
 * serial part), for another commit's row (a claim or a counter shard), working in the
 * database, or waiting for their client (its own work inside or between transactions).
 * This tells whether the seq lock or the machine limits N writers.
 */
function sampleSessions(url: string): { stop(): Promise<SessionShares> } {
  const client = new pg.Client({ connectionString: url });
  const n = { seqLock: 0, rowLock: 0, database: 0, client: 0 };
  let running = true;
  const loop = (async () => {
    await client.connect();
    while (running) {
      const { rows } = await client.query<{ state: string; wait_event_type: string | null; wait_event: string | null }>(
        `SELECT state, wait_event_type, wait_event FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'event-aggregator'`,
      );
      for (const r of rows) {
        if (r.state !== 'active') n.client++;
        else if (r.wait_event === 'advisory') n.seqLock++;
        else if (r.wait_event_type === 'Lock') n.rowLock++;
        else n.database++;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await client.end();
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const total = n.seqLock + n.rowLock + n.database + n.client || 1;
      return { seqLock: n.seqLock / total, rowLock: n.rowLock / total, database: n.database / total, client: n.client / total };
    },
  };
}

export async function runStoreStage(o: {
  kind: StoreKind;
  writers: number;
  events: number;
  batch: number;
  jobsPerCommit: number;
  dupRatio: number;
  ids: IdOrder;
  prefill: number;
  /** PostgreSQL: start from a copy of this database (a prefilled one) instead of an empty one. */
  template?: string;
  /** SQLite: start from a copy of this store file. */
  templateFile?: string;
}): Promise<StageResult> {
  let where: string;
  let db: TestDatabase | undefined;
  if (o.kind === 'postgres') {
    db = await createTestDatabase({ prefix: 'agg_bench', ...(o.template && { template: o.template }) });
    where = db.url;
  } else {
    where = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-writers-'));
    if (o.templateFile) fs.copyFileSync(o.templateFile, path.join(where, STORE_FILE));
  }
  try {
    const store = await openFor(o.kind, where, true);
    if (o.prefill > 0) {
      const spec = { kind: o.kind, url: where, events: o.prefill, batch: o.batch, jobsPerCommit: o.jobsPerCommit, dupRatio: 0, ids: o.ids, seed: 7, prefix: 'prefill' };
      for (const group of groups(spec)) await store.commitJobs(group);
    }
    await store.close();
    const per = Math.floor(o.events / o.writers);
    const writers = Array.from({ length: o.writers }, (_, i) =>
      startWriter({ kind: o.kind, url: where, events: per, batch: o.batch, jobsPerCommit: o.jobsPerCommit, dupRatio: o.dupRatio, ids: o.ids, seed: 100 + i, prefix: `w${i}` }),
    );
    await Promise.all(writers.map((w) => w.ready));
    const sampler = o.kind === 'postgres' ? sampleSessions(where) : undefined;
    const serverCpuAt = o.kind === 'postgres' ? postgresCpuSeconds() : 0;
    const started = performance.now();
    for (const w of writers) w.child.send('go');
    const results = await Promise.all(writers.map((w) => w.done));
    const seconds = (performance.now() - started) / 1000;
    const sessions = (await sampler?.stop()) ?? { seqLock: 0, rowLock: 0, database: 0, client: 0 };
    const events = per * o.writers;
    const commits = results.reduce((n, r) => n + r.commits, 0);
    // The server's CPU also holds the session sampler's queries, a few hundred a second. A
    // backend's CPU moves to the postmaster's account once it is reaped, just after its
    // writer disconnects: the short wait keeps it from falling between the two readings.
    if (o.kind === 'postgres') await new Promise((r) => setTimeout(r, 500));
    const serverCpu = o.kind === 'postgres' ? postgresCpuSeconds() - serverCpuAt : 0;
    const cpuMicrosPerEvent = ((results.reduce((n, r) => n + r.cpuSeconds, 0) + serverCpu) * 1e6) / events;
    return { writers: o.writers, events, seconds, eventsPerSecond: events / seconds, commitsPerSecond: commits / seconds, cpuMicrosPerEvent, sessions };
  } finally {
    await db?.drop();
    if (o.kind === 'sqlite') fs.rmSync(where, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'writer' && process.send) {
  await runWriter(JSON.parse(process.argv[3]!) as WriterSpec);
} else if (process.argv[1] === import.meta.filename) {
  const { values } = parseArgs({
    options: {
      store: { type: 'string', default: 'postgres' },
      writers: { type: 'string', default: '1,2,4' },
      events: { type: 'string', default: '200000' },
      batch: { type: 'string', default: '1000' },
      'jobs-per-commit': { type: 'string', default: '20' },
      dup: { type: 'string', default: '0.3' },
      ids: { type: 'string', default: 'random' },
      prefill: { type: 'string', default: '0' },
      repeat: { type: 'string', default: '1' },
    },
  });
  const base = {
    events: Number(values.events),
    batch: Number(values.batch),
    jobsPerCommit: Number(values['jobs-per-commit']),
    dupRatio: Number(values.dup),
    ids: values.ids as IdOrder,
    prefill: Number(values.prefill),
  };
  const kind = values.store as StoreKind;
  console.log(`${kind} store stage: ${JSON.stringify(base)}`);
  // Rounds run 1, 2, 4 writers back to back: on a shared machine the load drifts over
  // minutes, so the ratio within a round says more than rates from far-apart runs.
  const rates = new Map<number, number[]>();
  const ratios = new Map<number, number[]>();
  for (let r = 0; r < Number(values.repeat); r++) {
    let one: number | undefined;
    for (const writers of values.writers.split(',').map(Number)) {
      const res = await runStoreStage({ ...base, kind, writers });
      (rates.get(writers) ?? rates.set(writers, []).get(writers)!).push(res.eventsPerSecond);
      if (writers === 1) one = res.eventsPerSecond;
      else if (one !== undefined) (ratios.get(writers) ?? ratios.set(writers, []).get(writers)!).push(res.eventsPerSecond / one);
      const pct = (x: number) => `${Math.round(100 * x)}%`;
      const sh = res.sessions;
      console.log(
        `round ${r + 1} writers=${writers} events=${res.events} seconds=${res.seconds.toFixed(2)} events/s=${Math.round(res.eventsPerSecond)} commits/s=${res.commitsPerSecond.toFixed(1)}` +
          (kind === 'sqlite' ? ` (load ${os.loadavg()[0]!.toFixed(1)})` :
            ` sessions: seq lock ${pct(sh.seqLock)}, row locks ${pct(sh.rowLock)}, in database ${pct(sh.database)}, client ${pct(sh.client)} (load ${os.loadavg()[0]!.toFixed(1)})`),
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [writers, xs] of rates) {
    const within = ratios.get(writers);
    const ratio = within === undefined ? '' : `, ${median(within).toFixed(2)}x of 1 writer (median of per-round ratios ${within.map((x) => x.toFixed(2)).join(' ')})`;
    console.log(`writers=${writers}: median ${Math.round(median(xs))} events/s${ratio}`);
  }
}
