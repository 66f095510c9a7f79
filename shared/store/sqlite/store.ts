// The embedded store: one SQLite file in DATA_DIR, shared by the API (reads) and any number
// of worker processes on the same host (writes). WAL needs a local filesystem: a Docker
// volume works, NFS does not.
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import type { EraseOutcome, Store } from '../port.js';
import { retentionOf } from '../retention.js';
import { openDatabase, type ConnectionOptions } from './connection.js';
import { createLookup } from './lookup.js';
import { createReader } from './read.js';
import { STORE_FILE } from './schema.js';
import { createSweeper, type Sweeper } from './sweep.js';
import type { FilterBuild, FilterProgress } from './stored-keys.js';
import { createWriter } from './write.js';

export type SqliteOptions = ConnectionOptions & {
  dataDir: string;
  /** Keys per read while a writer builds its filter of stored keys (tests make it small). */
  filterKeyPage?: number;
  /** Seqs others committed that a commit reads itself into its filter; more are read in the background (tests make it small). */
  filterCatchUpInCommit?: number;
  /** SQLITE_KEY_FILTER_MAX_MB: the most a writer's filter of stored keys may hold. */
  keyFilterMaxMb?: number;
  /** EVENT_RETENTION in ms; unset: events are kept forever. */
  retentionMs?: number | undefined;
  /** The clock expiry is judged by (tests move it). */
  clock?: () => number;
};

/** After an erasure, how long to keep trying to empty the WAL of the erased pages. */
const ERASE_CHECKPOINT_TRIES = 40;
const ERASE_CHECKPOINT_PAUSE_MS = 50;

/**
 * The adapter plus what only SQLite has: its file, and the in-memory filter of stored keys
 * a writer builds once, in the background (started at the first commit unless prepared).
 */
export type SqliteStore = Store & {
  readonly file: string;
  prepareWrites(onProgress?: FilterProgress): Promise<FilterBuild>;
  filterStatus(): 'none' | 'catching-up' | 'current';
};

export function openSqliteStore(opts: SqliteOptions): SqliteStore {
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const file = path.join(opts.dataDir, STORE_FILE);
  const db = openDatabase(file, opts);

  const retention = retentionOf(opts);
  const lookup = createLookup(db);
  const writer = createWriter(db, lookup, retention, {
    ...(opts.filterKeyPage !== undefined && { keyPage: opts.filterKeyPage }),
    ...(opts.filterCatchUpInCommit !== undefined && { catchUpInCommit: opts.filterCatchUpInCommit }),
    ...(opts.keyFilterMaxMb !== undefined && { filterMaxBytes: opts.keyFilterMaxMb * 1024 * 1024 }),
  });
  const read = createReader(db, lookup, retention);
  const sweeper = createSweeper(db, lookup, retention);
  const ping = db.prepare('SELECT 1');

  return {
    kind: 'sqlite',
    location: file,
    file,
    commitJobs: (jobs) => later(() => writer.commit(jobs)),
    prepareWrites: (onProgress) => writer.prepare(onProgress),
    filterStatus: () => writer.filterStatus(),
    listEvents: (q) => later(() => read.listEvents(q)),
    listEventsJson: (q) => later(() => read.listEventsJson(q)),
    lastSeq: () => later(() => read.lastSeq()),
    getEvent: (topic, eventId) => later(() => read.getEvent(topic, eventId)),
    goneReason: (topic, eventId) => later(() => read.goneReason(topic, eventId)),
    eraseEvent: (topic, eventId) => eraseAndCheckpoint(db, sweeper, topic, eventId),
    expireStep: (limit) => later(() => sweeper.expireStep(limit)),
    jobsCommittedBefore: (q) => later(() => sweeper.jobsCommittedBefore(q)),
    forgetJobs: (ids) => later(() => sweeper.forgetJobs(ids)),
    counts: (q) => later(() => read.counts(q)),
    listTopics: (q) => later(() => read.listTopics(q)),
    committedJobIds: (ids) => later(() => read.committedJobIds(ids)),
    ping: () => later(() => void ping.get()),
    integrityCheck: () =>
      later(() => (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).filter((r) => r !== 'ok')),
    sizeBytes: () => later(() => fileBytes(file)),
    close: () =>
      later(() => {
        if (db.open) db.close();
      }),
  };
}

// better-sqlite3 is synchronous; the port is not, so that a networked store fits it too.
// A thrown error becomes a rejection.
function later<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

async function eraseAndCheckpoint(db: Database.Database, sweeper: Sweeper, topic: string, eventId: string): Promise<EraseOutcome> {
  const outcome = sweeper.erase(topic, eventId);
  if (outcome.status !== 'erased') return outcome;
  // The erased row's old pages still sit in WAL frames until a checkpoint copies the new
  // ones over and empties the log; a writer committing meanwhile makes it wait its turn.
  for (let i = 0; i < ERASE_CHECKPOINT_TRIES && db.open; i++) {
    if (sweeper.checkpoint()) break;
    await new Promise((r) => setTimeout(r, ERASE_CHECKPOINT_PAUSE_MS));
  }
  return outcome;
}

/** The file and its WAL. */
function fileBytes(file: string): number {
  let total = 0;
  for (const suffix of ['', '-wal']) {
    try {
      total += fs.statSync(file + suffix).size;
    } catch {
      // no WAL yet
    }
  }
  return total;
}
