// Storing a new job: each event either stored at the next seq, or judged a copy of the stored
// one (logged unless that one outlived its retention); then the job's row, which a
// redelivery of it finds (replay.ts).
import type Database from 'better-sqlite3';
import { payloadJson } from '../../schema.js';
import type { EventResult, JobOutcome, JobToCommit } from '../port.js';
import type { Claimer } from './claim.js';
import { copyResult, outlived } from './copy-verdict.js';
import type { CommitTally } from './counters.js';
import type { KeyFilter } from './key-filter.js';

/** What the jobs of one commit share: the next seq to give, its clock and expiry cutoff, the filter, the tally. */
export type CommitRun = {
  nextSeq: number;
  readonly now: number;
  readonly cutoff: number;
  readonly filter: KeyFilter | undefined;
  readonly tally: CommitTally;
};

type Event = JobToCommit['events'][number];

export function createJobStorer(db: Database.Database, claim: Claimer): (job: JobToCommit, run: CommitRun) => JobOutcome {
  const insertJob = db.prepare(
    'INSERT INTO jobs (id, events, stored, dropped, conflicts, first_seq, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertEvent = db.prepare(
    'INSERT INTO events (seq, topic, event_id, timestamp, source, payload, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertCopy = db.prepare('INSERT INTO copies (seq, conflict, seen_at) VALUES (?, ?, ?)');

  /** One event stored, or judged a copy; `topic` is its topic's stored, dropped, conflicts. */
  function storeEvent(e: Event, run: CommitRun, topic: [number, number, number]): EventResult {
    const { row, newKey } = claim(run.filter, e.topic, e.event_id, run.nextSeq);
    if (newKey) run.tally.recent++;
    if (row === undefined) {
      insertEvent.run(run.nextSeq, e.topic, e.event_id, e.timestamp, e.source, payloadJson(e.payload), run.now);
      topic[0]++;
      return { status: 'stored', seq: run.nextSeq++ };
    }
    const result = copyResult(e, row, run.cutoff);
    if (!outlived(row, run.cutoff)) insertCopy.run(row.seq, result.status === 'conflict' ? 1 : 0, run.now);
    topic[1]++;
    if (result.status === 'conflict') topic[2]++;
    return result;
  }

  return (job, run) => {
    const firstSeq = run.nextSeq;
    const results: EventResult[] = new Array<EventResult>(job.events.length);
    let conflicts = 0;
    for (let i = 0; i < job.events.length; i++) {
      const e = job.events[i]!;
      let topic = run.tally.perTopic.get(e.topic);
      if (topic === undefined) run.tally.perTopic.set(e.topic, (topic = [0, 0, 0]));
      const result = (results[i] = storeEvent(e, run, topic));
      if (result.status === 'conflict') conflicts++;
    }
    const stored = run.nextSeq - firstSeq;
    const dropped = job.events.length - stored;
    insertJob.run(job.id, job.events.length, stored, dropped, conflicts, stored > 0 ? firstSeq : null, run.now);
    const t = run.tally;
    t.received += job.events.length;
    t.stored += stored;
    t.dropped += dropped;
    t.conflicts += conflicts;
    t.jobs++;
    return { id: job.id, stored, dropped, conflicts, redelivered: false, results };
  };
}
