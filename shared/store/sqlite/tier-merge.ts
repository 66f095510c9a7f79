// The two dedup tiers: new keys go into the small `dedup_recent`, merged into the large
// `dedup` now and then. Random keys inserted straight into a large B-tree dirty about one page
// per key per commit (the cost that grows with history); the small tier keeps each commit's
// writes within a few MB, and the sorted merge writes each page of the large tier once per merge.
import type Database from 'better-sqlite3';
import type { Counters } from './counters.js';

/** The small dedup tier is merged into the large one once it holds this many, or a sixteenth of all. */
const MERGE_MIN_ROWS = 100_000;

/**
 * Counts the keys a commit claimed in the small tier and merges it into the large one once it
 * holds enough, in the commit's transaction (after its counters are added).
 */
export function createTierMerge(db: Database.Database, counters: Counters): (claimed: number) => void {
  const mergeRecent = db.prepare('INSERT OR IGNORE INTO dedup (k, seq) SELECT k, seq FROM dedup_recent ORDER BY k');
  const clearRecent = db.prepare('DELETE FROM dedup_recent');
  return (claimed) => {
    if (claimed === 0) return;
    const recent = counters.get('dedup_recent') + claimed;
    const total = counters.get('unique_processed');
    if (recent >= Math.max(MERGE_MIN_ROWS, total / 16)) {
      mergeRecent.run();
      clearRecent.run();
      counters.set('dedup_recent', 0);
    } else {
      counters.set('dedup_recent', recent);
    }
  };
}
