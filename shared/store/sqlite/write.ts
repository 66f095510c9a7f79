// The SQLite store's write path: a group of jobs in one immediate transaction (workers on
// one host share the file; SQLite gives one writer at a time, so seq order is commit order
// and readers always see a prefix of it). Each job is replayed if it was committed before
// (replay.ts), else stored (store-job.ts); the counters (counters.ts) and the dedup tiers
// (tier-merge.ts) are brought up to date once per commit.
import type Database from 'better-sqlite3';
import type { JobOutcome, JobToCommit } from '../port.js';
import { cutoffMs, type Retention } from '../retention.js';
import { createClaimer } from './claim.js';
import { createCounters, emptyTally } from './counters.js';
import type { KeyFilter } from './key-filter.js';
import type { Lookup } from './lookup.js';
import { createReplayer } from './replay.js';
import { MAX_SEQ_SQL } from './schema.js';
import { createJobStorer, type CommitRun } from './store-job.js';
import { StoredKeys, type FilterBuild, type FilterProgress, type StoredKeysOptions } from './stored-keys.js';
import { createTierMerge } from './tier-merge.js';

export type Writer = {
  commit(jobs: readonly JobToCommit[]): JobOutcome[];
  /**
   * Starts building the filter of stored keys (unless started), a page of keys per turn of
   * the event loop, and resolves once it is built. Commits need not wait: until then each
   * looks its keys up in the dedup tiers, exact, only slower. A worker calls it at its start;
   * otherwise the first commit starts it.
   */
  prepare(onProgress?: FilterProgress): Promise<FilterBuild>;
  /** Whether the next commit has a filter, and whether it is being brought up to date aside. */
  filterStatus(): 'none' | 'catching-up' | 'current';
};

export function createWriter(db: Database.Database, lookup: Lookup, retention: Retention, opts: StoredKeysOptions = {}): Writer {
  const maxSeq = db.prepare(MAX_SEQ_SQL).pluck();
  const counters = createCounters(db);
  const keys = new StoredKeys(db, counters, opts);
  const replayed = createReplayer(db, lookup);
  const storeJob = createJobStorer(db, createClaimer(db, lookup));
  const mergeTiers = createTierMerge(db, counters);

  /** The outcomes, and the last seq the commit used. */
  const commit = db.transaction((filter: KeyFilter | undefined, jobs: readonly JobToCommit[]): { outcomes: JobOutcome[]; through: number } => {
    const now = Date.now();
    const cutoff = cutoffMs(retention);
    const run: CommitRun = { nextSeq: (maxSeq.get() as number) + 1, now, cutoff, filter, tally: emptyTally() };
    if (filter !== undefined) keys.catchUp(filter, run.nextSeq - 1);
    const outcomes = jobs.map((job) => {
      const again = replayed(job, cutoff);
      if (again === undefined) return storeJob(job, run);
      run.tally.redeliveries++;
      return again;
    });
    counters.add(run.tally);
    mergeTiers(run.tally.recent);
    return { outcomes, through: run.nextSeq - 1 };
  });

  return {
    commit(jobs) {
      const f = keys.forCommit();
      // Immediate: take the write lock at BEGIN, so two writers never deadlock upgrading a read.
      const { outcomes, through } = commit.immediate(f, jobs);
      keys.committed(f, through);
      return outcomes;
    },
    prepare: (onProgress) => keys.prepare(onProgress),
    filterStatus: () => keys.status(),
  };
}
