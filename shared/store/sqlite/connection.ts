// One connection to the SQLite store's file, set up as every process needs it: WAL, a
// durable commit, a small cache, the format migrated, deleted content overwritten.
import Database from 'better-sqlite3';
import { migrate } from './schema.js';

const OPEN_TIMEOUT_MS = 30 * 60_000;

export type ConnectionOptions = {
  cacheMb?: number | undefined;
  synchronous?: 'FULL' | 'NORMAL' | undefined;
  /** How long SQLite itself waits for another writer's lock; workers pass 0 and retry themselves. */
  busyTimeoutMs?: number | undefined;
};

export function openDatabase(file: string, opts: ConnectionOptions): Database.Database {
  // Opening and migrating waits for other writers whatever the busy timeout asked for, and
  // long enough for another process' migration of a large store (schema.ts, rekey).
  const db = new Database(file, { timeout: OPEN_TIMEOUT_MS });
  db.pragma('journal_mode = WAL');
  // FULL: a commit is on disk before the job is acknowledged. NORMAL is safe against
  // process crashes, not against power loss (see README, "Guarantees").
  db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
  // A small page cache: measured, 16 MB commits as fast as 256 MB at 10 million events
  // (the OS page cache holds the file), and keeps each process' memory small.
  db.pragma(`cache_size = ${-1024 * (opts.cacheMb ?? 16)}`);
  // Checkpoint every ~40 MB of WAL rather than every 4 MB: pages rewritten by each commit
  // (the tail of `events`, the recent dedup tier) are copied into the file once per
  // checkpoint, not once per commit. Measured: about 5% more commits per second.
  db.pragma('wal_autocheckpoint = 10000');
  migrate(db);
  // Only after migrating: rebuilding the dedup index sorts every event's key, which in memory
  // took 1.2 GB at 10 million events; in temporary files 100 MB, and 44 s instead of 61.
  db.pragma('temp_store = MEMORY');
  db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 10_000}`);
  // Deleted content is overwritten with zeros, not only unlinked: an erased payload must not
  // linger in a free page or a cell's old bytes. Every connection, since any may delete.
  db.pragma('secure_delete = ON');
  return db;
}
