// The SQLite store's tables, and the migration every process runs when it opens the file.
//
// Layout, chosen so that the cost of a write does not grow with history:
// - `events` is appended in `seq` order (the rowid), so new rows land on the last page;
// - the dedup index maps a 53-bit key of (topic, event_id) (identity.ts: ordered like growing
//   ids, spread like a hash otherwise) to the seq of the first copy: a compact integer key
//   instead of a unique index over two text columns. A key hit is verified against the
//   stored event; identities sharing a key go to `dedup_overflow`, keyed by the full
//   identity, so the answer is exact;
// - that index has two tiers, as an LSM tree does: new keys go to the small
//   `dedup_recent`, and are merged into the large `dedup` in key order once `dedup_recent`
//   holds a sixteenth as many (see write.ts); a writer keeps a Bloom filter of every key
//   (key-filter.ts), so most new keys are never looked up in either tier;
// - `jobs` holds every committed job id with the seq range it stored, written in the same
//   transaction as its events: a job redelivered after its commit (the worker died before
//   acknowledging it) is recognised, changes nothing, and gets the same answer again;
// - `copies` is an append-only log of the copies dropped, aggregated when one identity is
//   looked up: counting copies per identity in place would make every duplicate a random
//   write into a large table;
// - `gone` keeps the identity of each event deleted (expired or erased): its seq, its topic as
//   a small integer (`topic_ids`: a topic name once, not once per identity) and its event_id,
//   no content. The dedup tiers still point at that seq, and a key hit is verified against
//   this row once the event's own row is gone, so dedup stays exact and permanent. It is what
//   the store holds forever per identity, so every byte of its row counts (docs/retention.md).
import type Database from 'better-sqlite3';
import { dedupKey } from '../identity.js';

export const STORE_FILE = 'events.db';

/**
 * The store's format, kept in the file (PRAGMA user_version): 0 before it was recorded
 * (dedup keyed by a plain hash), 2 since the dedup key keeps the order of growing ids, 3
 * since events may be deleted (`gone`): an older program would reuse deleted seqs, 4 since
 * `gone` keeps a topic id rather than the topic's name. Opening a store older than 2 rebuilds
 * its dedup index from `events` (see rekey); one of format 3, its `gone` table (see
 * topicsAsIds).
 */
export const STORE_FORMAT = 4;
const KEY_FORMAT = 2;

const TOPIC_IDS = 'CREATE TABLE IF NOT EXISTS topic_ids (id INTEGER PRIMARY KEY, topic TEXT NOT NULL UNIQUE);';

/** A topic id of 1 takes no byte in a row, up to 127 one, up to 32,767 two (SQLite's integer encoding). */
const goneTable = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  seq INTEGER PRIMARY KEY,
  topic_id INTEGER NOT NULL, -- topic_ids.id
  event_id NOT NULL, -- text, or a lowercase UUID's 16 bytes (compact-id.ts)
  erased INTEGER NOT NULL
);`;

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
CREATE TABLE IF NOT EXISTS dedup (k INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dedup_recent (k INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
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
${TOPIC_IDS}
${goneTable('gone')}
INSERT OR IGNORE INTO counters (name, value) VALUES
  ('received', 0), ('unique_processed', 0), ('duplicate_dropped', 0), ('jobs', 0), ('dedup_recent', 0),
  ('conflicts', 0), ('redeliveries', 0), ('topics', 0), ('expired', 0), ('erased', 0);
`;

/** Columns added after a store was first made: added at 0 (or null) on open. */
const ADDED_COLUMNS: [table: string, column: string, definition: string][] = [
  ['topics', 'dropped', 'INTEGER NOT NULL DEFAULT 0'],
  ['topics', 'conflicts', 'INTEGER NOT NULL DEFAULT 0'],
  ['jobs', 'first_seq', 'INTEGER'],
  ['jobs', 'conflicts', 'INTEGER NOT NULL DEFAULT 0'],
];

/**
 * The highest seq ever given: an event's row may be deleted (expired, erased), never its seq,
 * which lives on in `gone`; a seq is never given twice.
 */
export const MAX_SEQ_SQL = 'SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM gone), 0))';

/** Creates what is missing; idempotent, and safe while other processes use the file. */
export function migrate(db: Database.Database): void {
  db.transaction(() => {
    const format = db.pragma('user_version', { simple: true }) as number;
    if (format > STORE_FORMAT) throw new Error(`the store is of format ${format}, newer than this program's (${STORE_FORMAT})`);
    // Dropped and made again below, with the column named for what it now holds.
    if (format < KEY_FORMAT) db.exec('DROP TABLE IF EXISTS dedup; DROP TABLE IF EXISTS dedup_recent');
    if (columnsOf(db, 'gone').includes('topic')) topicsAsIds(db);
    db.exec(TABLES);
    for (const [table, column, definition] of ADDED_COLUMNS) {
      if (!columnsOf(db, table).includes(column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
    }
    // Stores made before the topic count kept it: count once.
    db.prepare("UPDATE counters SET value = (SELECT count(*) FROM topics) WHERE name = 'topics' AND value = 0").run();
    // Committed jobs by time, for pruning those no redelivery can still need (sweep.ts).
    db.exec('CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (committed_at)');
    if (format < KEY_FORMAT) rekey(db);
    if (format < STORE_FORMAT) db.pragma(`user_version = ${STORE_FORMAT}`);
  }).immediate();
}

const columnsOf = (db: Database.Database, table: string) =>
  db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all() as string[];

/**
 * A `gone` table of format 3 (each row with its topic's name) made again with topic ids, in
 * seq order. Reads and writes the table once (1.5 s per million rows measured); other
 * processes opening the store wait for it, as for rekey.
 */
function topicsAsIds(db: Database.Database): void {
  db.exec(`
    ${TOPIC_IDS}
    INSERT OR IGNORE INTO topic_ids (topic) SELECT DISTINCT topic FROM gone ORDER BY topic;
    ${goneTable('gone_by_topic_id')}
    INSERT INTO gone_by_topic_id (seq, topic_id, event_id, erased)
      SELECT g.seq, t.id, g.event_id, g.erased FROM gone AS g JOIN topic_ids AS t ON t.topic = g.topic ORDER BY g.seq;
    DROP TABLE gone;
    ALTER TABLE gone_by_topic_id RENAME TO gone;`);
}

/**
 * Fills the dedup index from `events`, all in the main tier: the first copy of each key
 * there, any later identity with the same key in `dedup_overflow`. Both passes read the
 * events sorted by key, so the tables are written in order (measured at 10 million events:
 * 44 s for random ids; other processes opening the store wait for it, see store.ts).
 */
function rekey(db: Database.Database): void {
  db.function('dedup_key', { deterministic: true }, (topic, eventId) => dedupKey(topic as string, eventId as string));
  db.exec(`
    DELETE FROM dedup_overflow;
    INSERT OR IGNORE INTO dedup (k, seq)
      SELECT dedup_key(topic, event_id) AS k, seq FROM events ORDER BY k, seq;
    UPDATE counters SET value = 0 WHERE name = 'dedup_recent';`);
  const keys = db.prepare('SELECT count(*) FROM dedup').pluck().get() as number;
  const events = db.prepare('SELECT count(*) FROM events').pluck().get() as number;
  if (keys === events) return;
  db.exec(`
    INSERT INTO dedup_overflow (topic, event_id, seq)
      SELECT e.topic, e.event_id, e.seq
      FROM (SELECT k, seq, lag(k) OVER (ORDER BY k, seq) AS before
            FROM (SELECT dedup_key(topic, event_id) AS k, seq FROM events)) AS s
      JOIN events AS e ON e.seq = s.seq
      WHERE s.k = s.before;`);
}
