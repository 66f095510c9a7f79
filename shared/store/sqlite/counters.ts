// The SQLite store's running counts: totals in `counters`, per topic in `topics`, each bumped
// once per commit from the tally its jobs kept.
import type Database from 'better-sqlite3';

/** What one commit's jobs did, added to the counters once, at its end. */
export type CommitTally = {
  received: number;
  stored: number;
  dropped: number;
  conflicts: number;
  jobs: number;
  redeliveries: number;
  /** Keys claimed in the small dedup tier (see tier-merge.ts). */
  recent: number;
  /** topic -> stored, dropped, conflicts */
  perTopic: Map<string, [number, number, number]>;
};

export const emptyTally = (): CommitTally => ({
  received: 0,
  stored: 0,
  dropped: 0,
  conflicts: 0,
  jobs: 0,
  redeliveries: 0,
  recent: 0,
  perTopic: new Map(),
});

export type Counters = {
  get(name: string): number;
  set(name: string, value: number): void;
  /** Adds a commit's tally, in the commit's transaction. */
  add(tally: CommitTally): void;
};

export function createCounters(db: Database.Database): Counters {
  const counter = db.prepare('SELECT value FROM counters WHERE name = ?').pluck();
  const bumpCounter = db.prepare('UPDATE counters SET value = value + ? WHERE name = ?');
  const setCounter = db.prepare('UPDATE counters SET value = ? WHERE name = ?');
  const addTopic = db.prepare('INSERT OR IGNORE INTO topics (topic, events, dropped, conflicts) VALUES (?, 0, 0, 0)');
  const bumpTopic = db.prepare(
    'UPDATE topics SET events = events + ?, dropped = dropped + ?, conflicts = conflicts + ? WHERE topic = ?',
  );

  function addJobs(t: CommitTally): void {
    bumpCounter.run(t.received, 'received');
    bumpCounter.run(t.stored, 'unique_processed');
    bumpCounter.run(t.dropped, 'duplicate_dropped');
    bumpCounter.run(t.jobs, 'jobs');
    if (t.conflicts > 0) bumpCounter.run(t.conflicts, 'conflicts');
    let newTopics = 0;
    for (const [topic, [stored, dropped, conflicts]] of t.perTopic) {
      newTopics += addTopic.run(topic).changes;
      bumpTopic.run(stored, dropped, conflicts, topic);
    }
    if (newTopics > 0) bumpCounter.run(newTopics, 'topics');
  }

  return {
    get: (name) => counter.get(name) as number,
    set(name, value) {
      setCounter.run(value, name);
    },
    add(t) {
      if (t.jobs > 0) addJobs(t);
      if (t.redeliveries > 0) bumpCounter.run(t.redeliveries, 'redeliveries');
    },
  };
}
