// A redelivered job (its id committed before): its results recomputed, nothing stored again.
import type Database from 'better-sqlite3';
import type { EventResult, JobOutcome, JobToCommit } from '../port.js';
import { copyResult } from './copy-verdict.js';
import type { Lookup } from './lookup.js';

/** The outcome of a job committed before, or undefined for a job not seen yet. */
type Replayer = (job: JobToCommit, cutoff: number) => JobOutcome | undefined;

export function createReplayer(db: Database.Database, lookup: Lookup): Replayer {
  const jobRow = db.prepare('SELECT first_seq, stored FROM jobs WHERE id = ?');

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

  return (job, cutoff) => {
    const done = jobRow.get(job.id) as { first_seq: number | null; stored: number } | undefined;
    if (done === undefined) return undefined;
    const results = replay(job, done.first_seq, done.stored, cutoff);
    const conflicts = results.filter((r) => r.status === 'conflict').length;
    return { id: job.id, stored: 0, dropped: 0, conflicts, redelivered: true, results };
  };
}
