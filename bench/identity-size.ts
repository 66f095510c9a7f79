// What the store keeps per expired identity, on disk: `npm run bench` (its `identity-cost`
// part) and `npm run bench:identity-cost` (identity-cost.ts) measure it. Events with random
// lowercase UUIDs under the topic `orders` are committed through the store's own write path
// (jobs of 1,000), all expired by the store's own sweeper (its clock moved past the
// retention), every job id pruned as the jobs horizon would, then the store compacted
// (SQLite `VACUUM`, PostgreSQL `VACUUM FULL`) and measured table by table. Two sizes, so the
// slope between them leaves out what an empty store holds.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Event } from '../shared/schema.js';
import type { Store } from '../shared/store/port.js';
import { openPostgresStore } from '../shared/store/postgres/store.js';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';
import { openSqliteStore } from '../shared/store/sqlite/store.js';
import { createTestDatabase, postgresAnswers } from '../tools/harness/postgres.js';
import { runMeta } from './meta.js';

const RETENTION_MS = 60_000;
const JOB = 1000;

type Sized = { identities: number; bytes: number; tables: Map<string, number> };
export type IdentityCost = { store: 'sqlite' | 'postgres'; small: Sized; large: Sized };

/** The clock the store judges expiry by: now, until moved past every event's retention. */
function movableClock() {
  let ahead = 0;
  return { now: () => Date.now() + ahead, expireEverything: () => void (ahead = 2 * RETENTION_MS) };
}

async function fill(store: Store, clock: ReturnType<typeof movableClock>, count: number, log: (s: string) => void): Promise<void> {
  for (let at = 0; at < count; at += JOB) {
    const events: Event[] = Array.from({ length: Math.min(JOB, count - at) }, () => ({
      topic: 'orders',
      event_id: randomUUID(),
      timestamp: '2026-12-01T00:00:00Z',
      source: 'identity-cost',
      payload: { n: at },
    }));
    await store.commitJobs([{ id: `job-${at}`, events }]);
    if ((at + JOB) % 100_000 === 0) log(`${(at + JOB).toLocaleString()} committed`);
  }
  clock.expireEverything();
  let expired = 0;
  for (let n = await store.expireStep(2000); n > 0; n = await store.expireStep(2000)) expired += n;
  if (expired !== count) throw new Error(`expired ${expired} of ${count}`);
  // Every job id, as the sweeper prunes them once no redelivery can need them.
  for (let jobs = await store.jobsCommittedBefore({ before: Date.now() + 86_400_000, limit: 2000 }); jobs.length > 0; ) {
    await store.forgetJobs(jobs.map((j) => j.id));
    jobs = await store.jobsCommittedBefore({ before: Date.now() + 86_400_000, limit: 2000 });
  }
  const counts = await store.counts({ jobIds: [], topicsLimit: 1 });
  if (counts.uniqueProcessed !== count) throw new Error(`stored ${counts.uniqueProcessed} of ${count}`);
}

async function sqliteSize(count: number, log: (s: string) => void): Promise<Sized> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-identity-cost-'));
  try {
    const clock = movableClock();
    const store = openSqliteStore({ dataDir: dir, retentionMs: RETENTION_MS, clock: clock.now });
    await fill(store, clock, count, log);
    await store.close();
    const db = new Database(path.join(dir, STORE_FILE));
    try {
      db.exec('VACUUM');
      db.pragma('wal_checkpoint(TRUNCATE)');
      const rows = db.prepare('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name').all() as { name: string; bytes: number }[];
      const tables = new Map(rows.map((r) => [r.name, r.bytes]));
      return { identities: count, bytes: fs.statSync(path.join(dir, STORE_FILE)).size, tables };
    } finally {
      db.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresSize(count: number, log: (s: string) => void): Promise<Sized> {
  const database = await createTestDatabase({ prefix: 'agg_identity_cost' });
  try {
    const clock = movableClock();
    const store = await openPostgresStore({ url: database.url, retentionMs: RETENTION_MS, clock: clock.now });
    await fill(store, clock, count, log);
    await store.close();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query('VACUUM FULL');
      const { rows } = await client.query<{ name: string; bytes: string }>(
        `SELECT c.relname AS name, pg_total_relation_size(c.oid)::text AS bytes
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = current_schema() AND c.relkind = 'r'`,
      );
      const tables = new Map(rows.map((r) => [r.name, Number(r.bytes)]));
      return { identities: count, bytes: [...tables.values()].reduce((a, b) => a + b, 0), tables };
    } finally {
      await client.end();
    }
  } finally {
    await database.drop();
  }
}

/** Bytes per identity between the two sizes, for one table or the whole store. */
export const slope = (m: IdentityCost, bytes: (s: Sized) => number) => (bytes(m.large) - bytes(m.small)) / (m.large.identities - m.small.identities);

const howMeasured = (count: number) =>
  `${Math.round(count / 2).toLocaleString('en-US')} and ${count.toLocaleString('en-US')} events per store with random lowercase UUID ids under the topic \`orders\`, committed through the store's write path in jobs of ${JOB}, all expired by its sweeper, every job id pruned, then \`VACUUM\` (SQLite) or \`VACUUM FULL\` (PostgreSQL); bytes per identity are the slope between the two sizes`;

/** The table of bytes per expired identity, with a sentence saying how it was measured. */
export function identityCostTable(measured: IdentityCost[], count: number): string {
  const lines = [
    `What an expired identity costs on disk: ${howMeasured(count)}.`,
    '',
    "| store | bytes per expired identity | by table (bytes per identity; SQLite's indexes on their own, PostgreSQL's with their table) | store at the larger size (MB) | 100 M identities at that slope (GB) |",
    '| --- | ---: | --- | ---: | ---: |',
  ];
  for (const m of measured) {
    const perTable = [...m.large.tables.keys()]
      .map((name) => ({ name, per: slope(m, (s) => s.tables.get(name) ?? 0) }))
      .filter((t) => t.per >= 0.5)
      .sort((a, b) => b.per - a.per)
      .map((t) => `\`${t.name}\` ${t.per.toFixed(1)}`)
      .join(', ');
    const per = slope(m, (s) => s.bytes);
    lines.push(`| ${m.store} | **${per.toFixed(1)}** | ${perTable} | ${(m.large.bytes / 1e6).toFixed(1)} | ${((per * 1e8) / 1e9).toFixed(1)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** The file `npm run bench:identity-cost` writes: when, where and how, then the table. */
export function identityCostMarkdown(measured: IdentityCost[], count: number, command: string): string {
  const meta = runMeta({ appendfsync: '-', synchronous: '-', store: measured.map((m) => m.store).join(', ') });
  return [
    '# What an expired identity costs on disk',
    '',
    `- date: ${meta.date}; commit ${meta.commit}`,
    `- machine: ${meta.cores} cores ${meta.cpu}, ${meta.memory}; Node.js ${meta.node}`,
    `- run: \`${command}\``,
    '',
    identityCostTable(measured, count),
  ].join('\n');
}

/** Both stores (PostgreSQL where one answers at TEST_POSTGRES_URL), `count / 2` and `count` identities each. */
export async function measureIdentityCost(count: number, stores: readonly ('sqlite' | 'postgres')[], say: (line: string) => void): Promise<IdentityCost[]> {
  if (!Number.isInteger(count) || count < 2 * JOB) throw new Error(`identity cost: the count must be an integer of at least ${2 * JOB}`);
  const measured: IdentityCost[] = [];
  for (const store of stores) {
    if (store === 'postgres' && !(await postgresAnswers())) {
      say('identity cost: no PostgreSQL answers at TEST_POSTGRES_URL: skipping it');
      continue;
    }
    const size = store === 'sqlite' ? sqliteSize : postgresSize;
    const log = (s: string) => say(`identity cost, ${store}: ${s}`);
    const small = await size(Math.round(count / 2), log);
    const large = await size(count, log);
    measured.push({ store, small, large });
    log(`${slope({ store, small, large }, (s) => s.bytes).toFixed(1)} bytes per expired identity`);
  }
  return measured;
}
