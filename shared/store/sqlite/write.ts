// The SQLite store's write path: a group of jobs in one immediate transaction (workers on
// one host share the file; SQLite gives one writer at a time, so seq order is commit order
// and readers always see a prefix of it).
import type Database from 'better-sqlite3';
import { payloadJson } from '../../schema.js';
import { sameContent } from '../content.js';
import { dedupKey } from '../identity.js';
import { unpackId } from './compact-id.js';
import { KeyFilter } from './key-filter.js';
import type { EventResult, JobOutcome, JobToCommit } from '../port.js';
import { cutoffMs, type Retention } from '../retention.js';
import { isGone, type HeldRow, type Lookup } from './lookup.js';

/**
 * The highest seq ever given: an event's row may be deleted (expired, erased), never its seq,
 * which lives on in `gone`; a seq is never given twice.
 */
export const MAX_SEQ_SQL = 'SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM gone), 0))';

/** The small dedup tier is merged into the large one once it holds this many, or a sixteenth of all. */
const MERGE_MIN_ROWS = 100_000;

/** Keys per read when a writer builds its filter of stored keys. */
const KEY_PAGE = 50_000;

/** topic -> stored, dropped, conflicts */
type TopicTally = Map<string, [number, number, number]>;

/** Stored keys read so far into the filter, of about `total`. */
export type FilterProgress = (read: number, total: number) => void;

export type Writer = {
  commit(jobs: readonly JobToCommit[]): JobOutcome[];
  /**
   * Builds the filter of stored keys now rather than at the first commit (a worker's start),
   * a page of keys per turn of the event loop: a process reading ten million keys still
   * answers signals and timers meanwhile.
   */
  prepare(onProgress?: FilterProgress): Promise<void>;
};

/** `keyPage`: keys per read while the filter is built. */
export function createWriter(db: Database.Database, lookup: Lookup, retention: Retention, keyPage = KEY_PAGE): Writer {
  const maxSeq = db.prepare(MAX_SEQ_SQL).pluck();
  const jobRow = db.prepare('SELECT first_seq, stored FROM jobs WHERE id = ?');
  const insertJob = db.prepare(
    'INSERT INTO jobs (id, events, stored, dropped, conflicts, first_seq, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const seqInMain = db.prepare('SELECT seq FROM dedup WHERE k = ?').pluck();
  const claimRecent = db.prepare('INSERT INTO dedup_recent (k, seq) VALUES (?, ?)');
  const seqInRecent = db.prepare('SELECT seq FROM dedup_recent WHERE k = ?').pluck();
  const claimOverflow = db.prepare('INSERT OR IGNORE INTO dedup_overflow (topic, event_id, seq) VALUES (?, ?, ?)');
  const seqInOverflow = db.prepare('SELECT seq FROM dedup_overflow WHERE topic = ? AND event_id = ?').pluck();
  const insertEvent = db.prepare(
    'INSERT INTO events (seq, topic, event_id, timestamp, source, payload, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertCopy = db.prepare('INSERT INTO copies (seq, conflict, seen_at) VALUES (?, ?, ?)');
  const counter = db.prepare('SELECT value FROM counters WHERE name = ?').pluck();
  const bumpCounter = db.prepare('UPDATE counters SET value = value + ? WHERE name = ?');
  const setCounter = db.prepare('UPDATE counters SET value = ? WHERE name = ?');
  const addTopic = db.prepare('INSERT OR IGNORE INTO topics (topic, events, dropped, conflicts) VALUES (?, 0, 0, 0)');
  const bumpTopic = db.prepare(
    'UPDATE topics SET events = events + ?, dropped = dropped + ?, conflicts = conflicts + ? WHERE topic = ?',
  );
  const mergeRecent = db.prepare('INSERT OR IGNORE INTO dedup (k, seq) SELECT k, seq FROM dedup_recent ORDER BY k');
  const clearRecent = db.prepare('DELETE FROM dedup_recent');
  // In pages rather than row by row: a call per row into the driver cost a third more.
  const keyPages = ['dedup', 'dedup_recent'].map((table) => db.prepare(`SELECT k FROM ${table} WHERE k > ? ORDER BY k LIMIT ${keyPage}`).pluck());
  // Events deleted since are still identities the filter must hold.
  const eventsAfter = db
    .prepare('SELECT topic, event_id FROM events WHERE seq > @after UNION ALL SELECT topic, event_id FROM gone WHERE seq > @after')
    .raw();

  // Every key of every event up to `filterThrough` is in `filter`: the keys of both tiers at
  // the build, then each commit's own, and the events other processes committed since this
  // one's last commit, read at the start of the next.
  // Keys it holds that were never committed (a commit rolled back) only cost a lookup.
  let filter: KeyFilter | undefined;
  let filterThrough = 0;

  /**
   * Reads every key of both tiers into a new filter, a page at a time, and yields how many it
   * has read of about how many. One read snapshot (a deferred transaction, held until the
   * last page) makes the keys and `filterThrough` agree; writers go on meanwhile, and the
   * first commit catches up on what they stored. Driven in one go by a commit that finds no
   * filter, or a page per turn of the event loop by prepare().
   */
  function* buildFilter(): Generator<[read: number, total: number], void> {
    db.exec('BEGIN');
    try {
      const through = maxSeq.get() as number;
      const total = counter.get('unique_processed') as number;
      const f = new KeyFilter(total);
      let read = 0;
      for (const page of keyPages) {
        // Keys are never negative.
        for (let after = -1; ; ) {
          const keys = page.all(after) as number[];
          for (const k of keys) f.add(k);
          yield [(read += keys.length), total];
          if (keys.length < keyPage) break;
          after = keys[keyPage - 1]!;
        }
      }
      filter = f;
      filterThrough = through;
    } finally {
      // Closed meanwhile (a worker stopping during its start): nothing left to end.
      if (db.open && db.inTransaction) db.exec('COMMIT');
    }
  }

  let building: Promise<void> | undefined;
  async function buildFilterInTurns(onProgress: FilterProgress | undefined): Promise<void> {
    for (const [read, total] of buildFilter()) {
      onProgress?.(read, total);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  function catchUp(f: KeyFilter, through: number): void {
    if (through <= filterThrough) return;
    for (const [topic, eventId] of eventsAfter.iterate({ after: filterThrough }) as IterableIterator<[string, string | Buffer]>) {
      f.add(dedupKey(topic, unpackId(eventId)));
    }
    filterThrough = through;
  }

  /**
   * The stored copy of an identity, or a claim on it at `nextSeq` (undefined) when there is
   * none. A key lives in exactly one tier: it enters `dedup_recent` only if `dedup` lacks it.
   */
  function claim(f: KeyFilter, topic: string, eventId: string, nextSeq: number): { row: HeldRow | undefined; newKey: boolean } {
    const k = dedupKey(topic, eventId);
    // The small tier first: copies are mostly of recent events, and its pages are cached,
    // while a probe of the large tier reads a page of its own for each random key.
    // One hash for the question and the answer: a key the filter has never seen is added now.
    const seq = f.add(k) === 'maybe-held' ? ((seqInRecent.get(k) ?? seqInMain.get(k)) as number | undefined) : undefined;
    if (seq === undefined) {
      claimRecent.run(k, nextSeq);
      return { row: undefined, newKey: true };
    }
    const row = lookup.at(seq);
    if (row !== undefined && row.topic === topic && row.event_id === eventId) return { row, newKey: false };
    // A different identity behind the same key: settled by the full identity.
    if (claimOverflow.run(topic, eventId, nextSeq).changes === 1) return { row: undefined, newKey: false };
    return { row: lookup.at(seqInOverflow.get(topic, eventId) as number), newKey: false };
  }

  /**
   * A copy of an expired or erased event is a duplicate: its content is gone (or about to be),
   * so there is nothing to conflict with, and nothing to log (no lookup will show it).
   */
  const outlived = (stored: HeldRow, cutoff: number) => isGone(stored) || stored.processed_at < cutoff;

  function copyResult(e: JobToCommit['events'][number], stored: HeldRow, cutoff: number): EventResult {
    if (isGone(stored) || stored.processed_at < cutoff) return { status: 'duplicate', seq: stored.seq };
    const same = sameContent({ source: e.source, timestamp: e.timestamp, payload: payloadJson(e.payload) }, stored);
    return { status: same ? 'duplicate' : 'conflict', seq: stored.seq };
  }

  /** A committed job's results, recomputed: the events it stored are its seq range. */
  function replay(job: JobToCommit, firstSeq: number | null, stored: number, cutoff: number): EventResult[] {
    const seen = new Set<string>();
    return job.events.map((e) => {
      const key = `${e.topic}\u0000${e.event_id}`;
      const row = lookup.find(e.topic, e.event_id);
      const first = !seen.has(key);
      seen.add(key);
      if (row === undefined) return { status: 'duplicate', seq: 0 };
      if (first && firstSeq !== null && row.seq >= firstSeq && row.seq < firstSeq + stored) return { status: 'stored', seq: row.seq };
      return copyResult(e, row, cutoff);
    });
  }

  /** The outcomes, and the last seq the commit used. */
  const commit = db.transaction((f: KeyFilter, jobs: readonly JobToCommit[]): { outcomes: JobOutcome[]; through: number } => {
    const now = Date.now();
    const cutoff = cutoffMs(retention);
    let nextSeq = (maxSeq.get() as number) + 1;
    catchUp(f, nextSeq - 1);
    const totals = { received: 0, stored: 0, dropped: 0, conflicts: 0, jobs: 0, redeliveries: 0, recent: 0 };
    const perTopic: TopicTally = new Map();
    const outcomes: JobOutcome[] = [];

    for (const job of jobs) {
      const done = jobRow.get(job.id) as { first_seq: number | null; stored: number } | undefined;
      if (done !== undefined) {
        const results = replay(job, done.first_seq, done.stored, cutoff);
        const conflicts = results.filter((r) => r.status === 'conflict').length;
        outcomes.push({ id: job.id, stored: 0, dropped: 0, conflicts, redelivered: true, results });
        totals.redeliveries++;
        continue;
      }
      const firstSeq = nextSeq;
      const results: EventResult[] = new Array<EventResult>(job.events.length);
      let conflicts = 0;
      for (let i = 0; i < job.events.length; i++) {
        const e = job.events[i]!;
        let tally = perTopic.get(e.topic);
        if (tally === undefined) perTopic.set(e.topic, (tally = [0, 0, 0]));
        const { row, newKey } = claim(f, e.topic, e.event_id, nextSeq);
        if (newKey) totals.recent++;
        if (row === undefined) {
          insertEvent.run(nextSeq, e.topic, e.event_id, e.timestamp, e.source, payloadJson(e.payload), now);
          results[i] = { status: 'stored', seq: nextSeq++ };
          tally[0]++;
          continue;
        }
        const result = copyResult(e, row, cutoff);
        results[i] = result;
        if (!outlived(row, cutoff)) insertCopy.run(row.seq, result.status === 'conflict' ? 1 : 0, now);
        tally[1]++;
        if (result.status === 'conflict') {
          tally[2]++;
          conflicts++;
        }
      }
      const stored = nextSeq - firstSeq;
      const dropped = job.events.length - stored;
      insertJob.run(job.id, job.events.length, stored, dropped, conflicts, stored > 0 ? firstSeq : null, now);
      outcomes.push({ id: job.id, stored, dropped, conflicts, redelivered: false, results });
      totals.received += job.events.length;
      totals.stored += stored;
      totals.dropped += dropped;
      totals.conflicts += conflicts;
      totals.jobs++;
    }

    if (totals.jobs > 0) {
      bumpCounter.run(totals.received, 'received');
      bumpCounter.run(totals.stored, 'unique_processed');
      bumpCounter.run(totals.dropped, 'duplicate_dropped');
      bumpCounter.run(totals.jobs, 'jobs');
      if (totals.conflicts > 0) bumpCounter.run(totals.conflicts, 'conflicts');
      let newTopics = 0;
      for (const [topic, [stored, dropped, conflicts]] of perTopic) {
        newTopics += addTopic.run(topic).changes;
        bumpTopic.run(stored, dropped, conflicts, topic);
      }
      if (newTopics > 0) bumpCounter.run(newTopics, 'topics');
    }
    if (totals.redeliveries > 0) bumpCounter.run(totals.redeliveries, 'redeliveries');
    if (totals.recent > 0) {
      // Random keys inserted straight into a large B-tree dirty about one page per key per
      // commit (the cost that grows with history); the small tier keeps each commit's writes
      // within a few MB, and the sorted merge writes each page of the large tier once per merge.
      const recent = (counter.get('dedup_recent') as number) + totals.recent;
      const total = counter.get('unique_processed') as number;
      if (recent >= Math.max(MERGE_MIN_ROWS, total / 16)) {
        mergeRecent.run();
        clearRecent.run();
        setCounter.run(0, 'dedup_recent');
      } else {
        setCounter.run(recent, 'dedup_recent');
      }
    }
    return { outcomes, through: nextSeq - 1 };
  });
  return {
    commit(jobs) {
      if (building !== undefined) throw new Error('the filter of stored keys is still being built: await prepare() before committing');
      if (filter === undefined) for (const step of buildFilter()) void step;
      const f = filter!;
      // Immediate: take the write lock at BEGIN, so two writers never deadlock upgrading a read.
      const { outcomes, through } = commit.immediate(f, jobs);
      // Only once committed: a rolled-back commit's events may be stored by another later.
      filterThrough = through;
      return outcomes;
    },
    prepare(onProgress) {
      if (filter !== undefined) return Promise.resolve();
      return (building ??= buildFilterInTurns(onProgress).finally(() => (building = undefined)));
    },
  };
}
