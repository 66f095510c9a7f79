// The SQLite store's write path: a group of jobs in one immediate transaction (workers on
// one host share the file; SQLite gives one writer at a time, so seq order is commit order
// and readers always see a prefix of it).
import type Database from 'better-sqlite3';
import { payloadJson } from '../../schema.js';
import { sameContent } from '../content.js';
import { dedupKey } from '../identity.js';
import { unpackId } from './compact-id.js';
import { filterBytesFor, KeyFilter } from './key-filter.js';
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

/**
 * Keys per read when a writer builds its filter of stored keys, one read per turn of the event
 * loop: small, so that the jobs the worker takes meanwhile wait for one read at most (about
 * 5 ms; 50,000 keys per read made its first job wait over a second longer).
 */
const KEY_PAGE = 5_000;

/** topic -> stored, dropped, conflicts */
type TopicTally = Map<string, [number, number, number]>;

/** Stored keys read so far into the filter, of about `total`. */
export type FilterProgress = (read: number, total: number) => void;

/**
 * How a build of the filter ended: `built` (the writer uses it from its next commit, `keys`
 * in `bytes`), `over-bound` (it would need more than the bound: the writer keeps none and
 * looks every key up), `closed` (the store closed meanwhile).
 */
export type FilterBuild = { status: 'built'; keys: number; bytes: number } | { status: 'over-bound'; keys: number; maxBytes: number } | { status: 'closed' };

export type Writer = {
  commit(jobs: readonly JobToCommit[]): JobOutcome[];
  /**
   * Starts building the filter of stored keys (unless started), a page of keys per turn of
   * the event loop, and resolves once it is built. Commits need not wait: until then each
   * looks its keys up in the dedup tiers, exact, only slower. A worker calls it at its start;
   * otherwise the first commit starts it.
   */
  prepare(onProgress?: FilterProgress): Promise<FilterBuild>;
};

export type WriterOptions = {
  /** Keys per read while the filter is built (tests make it small). */
  keyPage?: number;
  /** The most the filter may hold; past it the writer keeps no filter. */
  filterMaxBytes?: number;
};

export function createWriter(db: Database.Database, lookup: Lookup, retention: Retention, opts: WriterOptions = {}): Writer {
  const keyPage = opts.keyPage ?? KEY_PAGE;
  const filterMaxBytes = opts.filterMaxBytes ?? Infinity;
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
  // In pages rather than row by row: a call per row into the driver cost a third more. The
  // small tier first: a merge moves keys from it into the large one, never back (see build).
  const keyPages = ['dedup_recent', 'dedup'].map((table) => db.prepare(`SELECT k FROM ${table} WHERE k > ? ORDER BY k LIMIT ${keyPage}`).pluck());
  // Events deleted since are still identities the filter must hold. One statement, so one
  // snapshot: an event deleted meanwhile is in one table or the other, never in neither.
  const eventsBetween = db
    .prepare(
      'SELECT topic, event_id FROM events WHERE seq > @after AND seq <= @through UNION ALL SELECT topic, event_id FROM gone WHERE seq > @after AND seq <= @through',
    )
    .raw();

  // Every key of every event up to `filterThrough` is in `filter`: the keys of both tiers read
  // by the build, the events stored since, read by its catch-up, then each commit's own, and
  // the events other processes committed since this one's last commit, read at the start of
  // the next. Keys it holds that were never committed (a commit rolled back) only cost a lookup.
  // No filter (not built yet, or over its bound): every key is looked up, exact as well.
  let filter: KeyFilter | undefined;
  let filterThrough = 0;
  let building: Promise<FilterBuild> | undefined;
  let lastBuild: FilterBuild | undefined;

  const turn = () => new Promise((resolve) => setImmediate(resolve));

  /**
   * Reads every stored key into a new filter, a page per turn of the event loop, each page its
   * own short read (no snapshot held for minutes: the write-ahead log could not be
   * checkpointed meanwhile), while this writer and others commit. Sound because:
   * - `through` is read first: every event up to it is committed, its key in one of the tiers;
   * - the small tier is read first, then the large one: a key is in the large tier for good
   *   once there, and a merge moves keys from the small tier into the large one in one
   *   transaction, so a key in the small tier at the start is read in one or the other;
   * - every event after `through` (this writer's commits during the build included, which
   *   looked their keys up and add none) is read by the catch-up, by seq, before the filter
   *   is used; only the few committed in the last turn are left to the next commit's.
   */
  async function build(onProgress: FilterProgress | undefined): Promise<FilterBuild> {
    if (!db.open) return { status: 'closed' };
    let through = maxSeq.get() as number;
    const total = counter.get('unique_processed') as number;
    if (filterBytesFor(total) > filterMaxBytes) return { status: 'over-bound', keys: total, maxBytes: filterMaxBytes };
    const f = new KeyFilter(total, filterMaxBytes);
    let read = 0;
    for (const page of keyPages) {
      // Keys are never negative.
      for (let after = -1; ; ) {
        await turn();
        if (!db.open) return { status: 'closed' };
        const keys = page.all(after) as number[];
        for (const k of keys) f.add(k);
        if (f.full) return { status: 'over-bound', keys: total, maxBytes: filterMaxBytes };
        onProgress?.((read += keys.length), total);
        if (keys.length < keyPage) break;
        after = keys[keyPage - 1]!;
      }
    }
    // The catch-up, by windows of seqs: each window's end is read before it, so every seq in
    // it is committed, in `events` or `gone`.
    for (;;) {
      const head = maxSeq.get() as number;
      if (head <= through) break;
      const upTo = Math.min(head, through + keyPage);
      for (const [topic, eventId] of eventsBetween.iterate({ after: through, through: upTo }) as IterableIterator<[string, string | Buffer]>) {
        f.add(dedupKey(topic, unpackId(eventId)));
      }
      through = upTo;
      await turn();
      if (!db.open) return { status: 'closed' };
    }
    if (f.full) return { status: 'over-bound', keys: f.size().keys, maxBytes: filterMaxBytes };
    filter = f;
    filterThrough = through;
    return { status: 'built', ...f.size() };
  }

  function startBuild(onProgress?: FilterProgress): Promise<FilterBuild> {
    building ??= build(onProgress).then((outcome) => (lastBuild = outcome));
    return building;
  }

  function catchUp(f: KeyFilter, through: number): void {
    if (through <= filterThrough) return;
    for (const [topic, eventId] of eventsBetween.iterate({ after: filterThrough, through }) as IterableIterator<[string, string | Buffer]>) {
      f.add(dedupKey(topic, unpackId(eventId)));
    }
    filterThrough = through;
  }

  /**
   * The stored copy of an identity, or a claim on it at `nextSeq` (undefined) when there is
   * none. A key lives in exactly one tier: it enters `dedup_recent` only if `dedup` lacks it.
   */
  function claim(f: KeyFilter | undefined, topic: string, eventId: string, nextSeq: number): { row: HeldRow | undefined; newKey: boolean } {
    const k = dedupKey(topic, eventId);
    // The small tier first: copies are mostly of recent events, and its pages are cached,
    // while a probe of the large tier reads a page of its own for each random key.
    // One hash for the question and the answer: a key the filter has never seen is added now.
    const seq = f === undefined || f.add(k) === 'maybe-held' ? ((seqInRecent.get(k) ?? seqInMain.get(k)) as number | undefined) : undefined;
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
  const commit = db.transaction((f: KeyFilter | undefined, jobs: readonly JobToCommit[]): { outcomes: JobOutcome[]; through: number } => {
    const now = Date.now();
    const cutoff = cutoffMs(retention);
    let nextSeq = (maxSeq.get() as number) + 1;
    if (f !== undefined) catchUp(f, nextSeq - 1);
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
      // Not awaited: this commit and the next ones look their keys up until it is built. A
      // build that failed is not tried again by every commit: the lookups stay exact.
      if (building === undefined) startBuild().catch(() => undefined);
      const f = filter;
      // Immediate: take the write lock at BEGIN, so two writers never deadlock upgrading a read.
      const { outcomes, through } = commit.immediate(f, jobs);
      if (f !== undefined && f.full) {
        // Over its bound: from now on every key is looked up, and its memory is given back.
        filter = undefined;
        lastBuild = { status: 'over-bound', keys: f.size().keys, maxBytes: filterMaxBytes };
      } else if (f !== undefined) {
        // Only once committed: a rolled-back commit's events may be stored by another later.
        filterThrough = through;
      }
      return outcomes;
    },
    prepare(onProgress) {
      return lastBuild !== undefined ? Promise.resolve(lastBuild) : startBuild(onProgress);
    },
  };
}
