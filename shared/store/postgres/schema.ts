// The PostgreSQL store's tables, created on first start.
//
// The API and every worker may start at the same moment on an empty database. Two
// concurrent `CREATE TABLE IF NOT EXISTS` of one table can both pass the "not exists" test
// and one then fails on the catalog's unique index, so the whole migration runs under a
// transaction-scoped advisory lock: the second process waits, then finds everything there.
//
// Why each table has the shape it has (the argument is in write.ts):
// - `identities` is the dedup key, claimed before the seq lock, in parallel;
// - `events` is appended in seq order under the seq lock; `claim` links it to its identity
//   without updating the identity row;
// - `copies` is an append-only log of dropped copies, summed per identity on read;
// - `counters` and `topic_counts` are sharded so concurrent commits rarely touch one row;
// - `gone` is what remains of an event deleted (expired or erased): its claim and its seq.
//   Its identity row stays in `identities`, so later copies are still recognised.
import type { PoolClient } from 'pg';
import { StoreConfigError } from '../port.js';

/** 2: events may be deleted (`gone`, the expired and erased counters, jobs by time). */
export const SCHEMA_VERSION = 2;

/** Serialises migrations of concurrent first starts (an arbitrary constant, unique to this store). */
const MIGRATION_LOCK = '7165440215342907001';

/**
 * Topics and event ids compare byte-wise ("C"): the order the SQLite store gives (topics
 * are listed sorted), whatever the database's default collation, and cheaper comparisons
 * in the large identity index.
 */
const DDL = `
CREATE TABLE IF NOT EXISTS store_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS commit_ids;
CREATE TABLE IF NOT EXISTS identities (
  topic text COLLATE "C" NOT NULL,
  event_id text COLLATE "C" NOT NULL,
  claim bigint NOT NULL,
  PRIMARY KEY (topic, event_id)
);
CREATE TABLE IF NOT EXISTS events (
  seq bigint PRIMARY KEY,
  claim bigint NOT NULL UNIQUE,
  topic text COLLATE "C" NOT NULL,
  event_id text COLLATE "C" NOT NULL,
  ts text NOT NULL,
  source bytea NOT NULL,
  payload text NOT NULL,
  processed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, seq);
CREATE TABLE IF NOT EXISTS copies (
  claim bigint NOT NULL,
  conflict boolean NOT NULL,
  seen_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS copies_by_claim ON copies (claim);
CREATE TABLE IF NOT EXISTS jobs (
  id text COLLATE "C" PRIMARY KEY,
  claim_base bigint NOT NULL,
  committed_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
  shard smallint PRIMARY KEY,
  received bigint NOT NULL DEFAULT 0,
  unique_processed bigint NOT NULL DEFAULT 0,
  duplicate_dropped bigint NOT NULL DEFAULT 0,
  conflicts bigint NOT NULL DEFAULT 0,
  redeliveries bigint NOT NULL DEFAULT 0,
  jobs bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS topic_counts (
  topic text COLLATE "C" NOT NULL,
  shard smallint NOT NULL,
  events bigint NOT NULL DEFAULT 0,
  dropped bigint NOT NULL DEFAULT 0,
  conflicts bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (topic, shard)
);
CREATE TABLE IF NOT EXISTS gone (
  claim bigint PRIMARY KEY,
  seq bigint NOT NULL,
  erased boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS gone_by_seq ON gone (seq);
ALTER TABLE counters ADD COLUMN IF NOT EXISTS expired bigint NOT NULL DEFAULT 0;
ALTER TABLE counters ADD COLUMN IF NOT EXISTS erased bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (committed_at, id);
`;

/** The tables this store owns, for its size and its checks. */
export const TABLES = ['store_meta', 'identities', 'events', 'copies', 'jobs', 'counters', 'topic_counts', 'gone'] as const;

/** The highest seq ever given: a deleted event keeps its seq in `gone`, and no seq is given twice. */
export const MAX_SEQ_SQL = `greatest(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM gone), 0))`;

async function storedVersion(client: PoolClient): Promise<number | undefined> {
  const exists = await client.query<{ t: string | null }>("SELECT to_regclass('store_meta')::text AS t");
  if (exists.rows[0]?.t == null) return undefined;
  const row = await client.query<{ value: string }>("SELECT value FROM store_meta WHERE key = 'schema_version'");
  return row.rows[0] === undefined ? undefined : Number(row.rows[0].value);
}

function tooNew(version: number): StoreConfigError {
  return new StoreConfigError(
    `DATABASE_URL: the database holds store schema version ${version}, newer than this build knows (${SCHEMA_VERSION}); upgrade this process`,
  );
}

/** Creates what is missing, once, however many processes start at the same time. */
export async function migrate(client: PoolClient): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    const version = await storedVersion(client);
    if (version !== undefined && version > SCHEMA_VERSION) throw tooNew(version);
    if (version !== SCHEMA_VERSION) {
      await client.query(DDL);
      await client.query(
        `INSERT INTO store_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(SCHEMA_VERSION)],
      );
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** For a process told not to migrate: the tables must already be there, at this version. */
export async function checkSchema(client: PoolClient): Promise<void> {
  const version = await storedVersion(client);
  if (version === undefined) {
    throw new StoreConfigError('DATABASE_URL: the database has no store tables yet; start a process that migrates it first');
  }
  if (version > SCHEMA_VERSION) throw tooNew(version);
  if (version < SCHEMA_VERSION) {
    throw new StoreConfigError(`DATABASE_URL: the store schema is at version ${version}, this build needs ${SCHEMA_VERSION}; migrate it first`);
  }
}
