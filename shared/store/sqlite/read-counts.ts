// The counts: totals, topics by name, and which job ids are committed.
import type Database from 'better-sqlite3';
import type { StoreCounts, TopicCounts } from '../port.js';

export type CountReader = {
  counts(q: { jobIds: readonly string[]; topicsLimit: number }): StoreCounts;
  listTopics(q: { after?: string | undefined; limit: number }): TopicCounts[];
  committedJobIds(ids: readonly string[]): Set<string>;
};

export function createCountReader(db: Database.Database): CountReader {
  const readCounters = db.prepare('SELECT name, value FROM counters');
  const topicsFrom = db.prepare(
    'SELECT topic, events, dropped, conflicts FROM topics WHERE events > 0 AND topic > ? ORDER BY topic LIMIT ?',
  );
  const committedAmong = db.prepare('SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))').pluck();

  const committedJobIds = (ids: readonly string[]) =>
    ids.length === 0 ? new Set<string>() : new Set(committedAmong.all(JSON.stringify(ids)) as string[]);
  const listTopics = (q: { after?: string | undefined; limit: number }) =>
    topicsFrom.all(q.after ?? '', q.limit) as TopicCounts[];

  return {
    counts({ jobIds, topicsLimit }) {
      // One read transaction, so the counters, the topics and the committed job ids agree:
      // a job committed between two separate reads would be counted in neither.
      return db.transaction((): StoreCounts => {
        const c = new Map((readCounters.all() as { name: string; value: number }[]).map((r) => [r.name, r.value]));
        return {
          received: c.get('received') ?? 0,
          uniqueProcessed: c.get('unique_processed') ?? 0,
          duplicateDropped: c.get('duplicate_dropped') ?? 0,
          conflicts: c.get('conflicts') ?? 0,
          expired: c.get('expired') ?? 0,
          erased: c.get('erased') ?? 0,
          redeliveries: c.get('redeliveries') ?? 0,
          jobs: c.get('jobs') ?? 0,
          topicsCount: c.get('topics') ?? 0,
          topics: listTopics({ limit: topicsLimit }),
          committed: committedJobIds(jobIds),
        };
      })();
    },
    listTopics,
    committedJobIds,
  };
}
