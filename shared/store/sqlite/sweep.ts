// Deleting events from the SQLite store, keeping their identities: the background expiry of
// events older than the retention, erasure of one event, and the pruning of job ids no
// redelivery can still need. Each runs in its own short immediate transaction, so a commit
// waits for one step at most, and two processes sweeping at once simply take turns: a row
// deleted by one is not found by the other.
//
// Deleting an event moves its identity (seq, topic id, event_id) into `gone` and deletes its
// row and its copy log; the dedup tiers keep pointing at the seq, and lookup.ts verifies a
// key hit against the `gone` row, so a later copy is still recognised exactly.
import type Database from 'better-sqlite3';
import type { EraseOutcome, JobMark } from '../port.js';
import { cutoffMs, type Retention } from '../retention.js';
import { packId } from './compact-id.js';
import { isGone, type Lookup } from './lookup.js';

export type Sweeper = {
  expireStep(limit: number): number;
  erase(topic: string, eventId: string): EraseOutcome;
  /** Asks for the WAL to be copied into the file and emptied; false if a reader or writer kept it. */
  checkpoint(): boolean;
  jobsCommittedBefore(q: { before: number; after?: JobMark | undefined; limit: number }): JobMark[];
  forgetJobs(ids: readonly string[]): number;
};

export function createSweeper(db: Database.Database, lookup: Lookup, retention: Retention): Sweeper {
  // The oldest events, by seq: processed_at grows with seq (commits take turns), so the
  // expired ones are at the head, and a step reads a bounded page whatever the table holds.
  const head = db.prepare('SELECT seq, topic, event_id, processed_at FROM events ORDER BY seq LIMIT ?');
  const keepIdentity = db.prepare('INSERT OR IGNORE INTO gone (seq, topic_id, event_id, erased) VALUES (?, ?, ?, ?)');
  const deleteEvent = db.prepare('DELETE FROM events WHERE seq = ?');
  const deleteCopies = db.prepare('DELETE FROM copies WHERE seq = ?');
  const bumpCounter = db.prepare('UPDATE counters SET value = value + ? WHERE name = ?');
  const topicIds = createTopicIds(db);

  /** `ids`: the topic ids read in this transaction (not kept past it: it may roll back). */
  const remove = (ids: Map<string, number>, seq: number, topic: string, eventId: string, erased: boolean) => {
    let topicId = ids.get(topic);
    if (topicId === undefined) ids.set(topic, (topicId = topicIds.idOf(topic)));
    keepIdentity.run(seq, topicId, packId(eventId), erased ? 1 : 0);
    deleteCopies.run(seq);
    return deleteEvent.run(seq).changes;
  };

  const expire = db.transaction((limit: number): number => {
    const cutoff = cutoffMs(retention);
    const ids = new Map<string, number>();
    let n = 0;
    for (const r of head.all(limit) as { seq: number; topic: string; event_id: string; processed_at: number }[]) {
      if (r.processed_at < cutoff) n += remove(ids, r.seq, r.topic, r.event_id, false);
    }
    if (n > 0) bumpCounter.run(n, 'expired');
    return n;
  });

  const erase = db.transaction((topic: string, eventId: string): EraseOutcome => {
    const row = lookup.find(topic, eventId);
    if (row === undefined) return { status: 'not_found' };
    if (isGone(row)) return { status: 'gone', reason: row.gone };
    // Already expired, not yet swept: gone for every reader already; deleted now, as expired.
    if (row.processed_at < cutoffMs(retention)) {
      remove(new Map(), row.seq, row.topic, row.event_id, false);
      bumpCounter.run(1, 'expired');
      return { status: 'gone', reason: 'expired' };
    }
    remove(new Map(), row.seq, row.topic, row.event_id, true);
    bumpCounter.run(1, 'erased');
    return { status: 'erased', seq: row.seq };
  });

  return {
    expireStep: (limit) => (retention.ms === undefined ? 0 : expire.immediate(limit)),
    erase: (topic, eventId) => erase.immediate(topic, eventId),
    checkpoint: () => checkpoint(db),
    ...createJobPruning(db),
  };
}

/** A topic's id in `topic_ids`, given on first use; an id is never given to another topic. */
export function createTopicIds(db: Database.Database): { idOf(topic: string): number } {
  const give = db.prepare('INSERT OR IGNORE INTO topic_ids (topic) VALUES (?)');
  const read = db.prepare('SELECT id FROM topic_ids WHERE topic = ?').pluck();
  return {
    idOf(topic) {
      give.run(topic);
      return read.get(topic) as number;
    },
  };
}

/**
 * TRUNCATE: the frames that held the erased rows' old pages are copied over and the WAL file
 * emptied. It fails (busy) rather than wait while a writer holds the lock.
 */
function checkpoint(db: Database.Database): boolean {
  const patience = db.pragma('busy_timeout', { simple: true }) as number;
  db.pragma('busy_timeout = 0');
  try {
    const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    return r !== undefined && r.busy === 0;
  } finally {
    db.pragma(`busy_timeout = ${patience}`);
  }
}

/** Committed job ids, oldest first, and their deletion once no redelivery can need them. */
function createJobPruning(db: Database.Database): Pick<Sweeper, 'jobsCommittedBefore' | 'forgetJobs'> {
  const jobsFrom = db.prepare(
    'SELECT id, committed_at AS at FROM jobs WHERE committed_at < ? AND (committed_at, id) > (?, ?) ORDER BY committed_at, id LIMIT ?',
  );
  const deleteJob = db.prepare('DELETE FROM jobs WHERE id = ?');
  const forget = db.transaction((ids: readonly string[]) => ids.reduce((n, id) => n + deleteJob.run(id).changes, 0));
  return {
    jobsCommittedBefore: ({ before, after, limit }) =>
      jobsFrom.all(before, after?.at ?? -1, after?.id ?? '', limit) as JobMark[],
    forgetJobs: (ids) => (ids.length === 0 ? 0 : forget.immediate(ids)),
  };
}
