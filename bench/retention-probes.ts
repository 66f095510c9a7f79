// What the retention bench reads of the store between its samples: rows of each table and
// the size on disk, straight from SQLite's file or PostgreSQL's catalog (a measuring tool may;
// the service never sees it), and the upkeep a PostgreSQL server without autovacuum needs.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';

export type Stats = { received: number; unique_processed: number; duplicate_dropped: number; pending: number | null; expired?: number; erased?: number };

export type Sample = {
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
export type Probe = {
  sample(): Promise<Omit<Sample, 'elapsedS' | 'sent' | 'stats'>>;
  /** Anything the store needs from outside the service to reuse deleted rows' space; a note on it, or undefined. */
  upkeep(): Promise<string | undefined>;
  close(): Promise<void>;
};

export function sqliteProbe(dataDir: string): Probe {
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

export function postgresProbe(url: string): Probe {
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
