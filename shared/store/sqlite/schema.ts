// The SQLite store's tables, and the migration every process runs when it opens the file.
//
// Layout, chosen so that the cost of a write does not grow with history:
// - `events` is appended in `seq` order (the rowid), so new rows land on the last page;
// - the dedup index maps a 53-bit hash of (topic, event_id) to the seq of the first copy: a
//   compact integer key instead of a unique index over two text columns. A hash hit is
//   verified against the stored event; the rare true collision goes to `dedup_overflow`,
//   keyed by the full identity, so the answer is exact;
// - that index has two tiers, as an LSM tree does: new hashes go to the small
//   `dedup_recent`, and are merged into the large `dedup` in key order once `dedup_recent`
//   holds a sixteenth as many (see write.ts);
// - `jobs` holds every committed job id with the seq range it stored, written in the same
//   transaction as its events: a job redelivered after its commit (the worker died before
//   acknowledging it) is recognised, changes nothing, and gets the same answer again;
// - `copies` is an append-only log of the copies dropped, aggregated when one identity is
//   looked up: counting copies per identity in place would make every duplicate a random
//   write into a large table.
import type Database from 'better-sqlite3';

export const STORE_FILE = 'events.db';

const TABLES = `
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,
  topic TEXT NOT NULL,
  event_id TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  source TEXT NOT NULL,
  payload TEXT NOT NULL,
  processed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, seq);
CREATE TABLE IF NOT EXISTS dedup (h INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dedup_recent (h INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dedup_overflow (
  topic TEXT NOT NULL,
  event_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (topic, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  events INTEGER NOT NULL,
  stored INTEGER NOT NULL,
  dropped INTEGER NOT NULL,
  committed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (
  topic TEXT PRIMARY KEY,
  events INTEGER NOT NULL,
  dropped INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS copies (seq INTEGER NOT NULL, conflict INTEGER NOT NULL, seen_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS copies_by_seq ON copies (seq);
INSERT OR IGNORE INTO counters (name, value) VALUES
  ('received', 0), ('unique_processed', 0), ('duplicate_dropped', 0), ('jobs', 0), ('dedup_recent', 0),
  ('conflicts', 0), ('redeliveries', 0), ('topics', 0);
`;

/** Columns added after a store was first made: added at 0 (or null) on open. */
const ADDED_COLUMNS: [table: string, column: string, definition: string][] = [
  ['topics', 'dropped', 'INTEGER NOT NULL DEFAULT 0'],
  ['topics', 'conflicts', 'INTEGER NOT NULL DEFAULT 0'],
  ['jobs', 'first_seq', 'INTEGER'],
  ['jobs', 'conflicts', 'INTEGER NOT NULL DEFAULT 0'],
];

/** Creates what is missing; idempotent, and safe while other processes use the file. */
export function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec(TABLES);
    for (const [table, column, definition] of ADDED_COLUMNS) {
      const columns = db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all() as string[];
      if (!columns.includes(column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
    }
    // Stores made before the topic count kept it: count once.
    db.prepare("UPDATE counters SET value = (SELECT count(*) FROM topics) WHERE name = 'topics' AND value = 0").run();
  }).immediate();
}
