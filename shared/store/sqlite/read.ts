// The SQLite store's read path: events by cursor, one identity explained, counts and topics.
import type Database from 'better-sqlite3';
import { eventJson, type EventJsonPage, type EventJsonQuery } from '../event-json.js';
import type { EventHistory, GoneReason, StoreCounts, StoredEvent, TopicCounts } from '../port.js';
import { cutoffMs, type Retention } from '../retention.js';
import { isGone, type Lookup, type StoredRow } from './lookup.js';
import { MAX_SEQ_SQL } from './schema.js';

export type Reader = {
  listEvents(q: { topic?: string | undefined; after: number; limit: number }): StoredEvent[];
  listEventsJson(q: EventJsonQuery): EventJsonPage;
  lastSeq(): number;
  getEvent(topic: string, eventId: string): EventHistory | undefined;
  goneReason(topic: string, eventId: string): GoneReason | undefined;
  counts(q: { jobIds: readonly string[]; topicsLimit: number }): StoreCounts;
  listTopics(q: { after?: string | undefined; limit: number }): TopicCounts[];
  committedJobIds(ids: readonly string[]): Set<string>;
};

const iso = (ms: number) => new Date(ms).toISOString();

export function toStoredEvent(r: StoredRow): StoredEvent {
  return {
    seq: r.seq,
    topic: r.topic,
    event_id: r.event_id,
    timestamp: r.timestamp,
    source: r.source,
    payload: JSON.parse(r.payload) as unknown,
    processed_at: iso(r.processed_at),
  };
}

export function createReader(db: Database.Database, lookup: Lookup, retention: Retention): Reader {
  const columns = 'seq, topic, event_id, timestamp, source, payload, processed_at';
  // Every list skips expired events (processed_at before the cutoff, @cutoff below) whether or not
  // the background deletion has reached them yet.
  const listAll = db.prepare(`SELECT ${columns} FROM events WHERE seq > @after AND processed_at >= @cutoff ORDER BY seq LIMIT @limit`);
  const listTopic = db.prepare(
    `SELECT ${columns} FROM events WHERE topic = @topic AND seq > @after AND processed_at >= @cutoff ORDER BY seq LIMIT @limit`,
  );
  // Rows as arrays, not objects: the JSON path reads each column once.
  const listAllRaw = db.prepare(`SELECT ${columns} FROM events WHERE seq > @after AND processed_at >= @cutoff ORDER BY seq LIMIT @limit`).raw();
  const listTopicRaw = db
    .prepare(`SELECT ${columns} FROM events WHERE topic = @topic AND seq > @after AND processed_at >= @cutoff ORDER BY seq LIMIT @limit`)
    .raw();
  // Several topics: along seq from the cursor ('+topic' keeps the planner off the topic
  // index, which would read each topic's range and sort). The live stream reads near the
  // head, so the rows skipped are few, and skipping one in SQLite costs far less than
  // handing it to JavaScript.
  const listTopicsRaw = db
    .prepare(
      `SELECT ${columns} FROM events WHERE seq > @after AND processed_at >= @cutoff AND +topic IN (SELECT value FROM json_each(@topic)) ORDER BY seq LIMIT @limit`,
    )
    .raw();
  // Deleted events keep their seqs: a cursor moves past them, never back.
  const maxSeq = db.prepare(MAX_SEQ_SQL).pluck();
  const copiesOf = db.prepare(
    'SELECT count(*) AS copies, coalesce(sum(conflict), 0) AS conflicts, max(seen_at) AS last FROM copies WHERE seq = ?',
  );
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
    listEvents({ topic, after, limit }) {
      const cutoff = cutoffMs(retention);
      const rows = (topic === undefined ? listAll.all({ after, cutoff, limit }) : listTopic.all({ after, cutoff, limit, topic })) as StoredRow[];
      return rows.map(toStoredEvent);
    },
    // One read transaction: `through` must come from the snapshot the page came from.
    listEventsJson: db.transaction(({ topics, after, limit }: EventJsonQuery): EventJsonPage => {
      type Raw = [number, string, string, string, string, string, number];
      const cutoff = cutoffMs(retention);
      const rows = (
        topics === undefined
          ? listAllRaw.all({ after, cutoff, limit })
          : topics.length === 1
            ? listTopicRaw.all({ after, cutoff, limit, topic: topics[0] })
            : listTopicsRaw.all({ after, cutoff, limit, topic: JSON.stringify(topics) })
      ) as Raw[];
      // The events of one commit share their processed_at: formatted once.
      let stampMs = NaN;
      let stamp = '';
      const events = rows.map(([seq, t, eventId, timestamp, source, payload, processedAt]) => {
        if (processedAt !== stampMs) stamp = iso((stampMs = processedAt));
        return { seq, topic: t, json: eventJson(seq, t, eventId, timestamp, source, payload, stamp) };
      });
      const through = limit > 0 && events.length === limit ? events[limit - 1]!.seq : Math.max(after, maxSeq.get() as number);
      return { events, through };
    }),
    lastSeq: () => maxSeq.get() as number,
    getEvent(topic, eventId) {
      // One read transaction: the event and its copies as of one moment.
      return db.transaction(() => {
        const row = lookup.find(topic, eventId);
        if (row === undefined || isGone(row) || row.processed_at < cutoffMs(retention)) return undefined;
        const c = copiesOf.get(row.seq) as { copies: number; conflicts: number; last: number | null };
        return {
          event: toStoredEvent(row),
          copies: 1 + c.copies,
          conflicts: c.conflicts,
          first_seen_at: iso(row.processed_at),
          last_seen_at: iso(c.last ?? row.processed_at),
        };
      })();
    },
    goneReason(topic, eventId) {
      const row = lookup.find(topic, eventId);
      if (row === undefined) return undefined;
      if (isGone(row)) return row.gone;
      return row.processed_at < cutoffMs(retention) ? 'expired' : undefined;
    },
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
