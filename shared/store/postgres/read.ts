// Reads of the PostgreSQL store. Each answer is one statement, so it comes from one
// snapshot: counts agree with the committed job ids read beside them, and an identity's
// stored copy with its copy log.
//
// listEvents and lastSeq need nothing special for the cursor rule: write.ts makes every
// commit's seqs larger than those of every commit visible before it, so any snapshot holds
// a prefix of the seqs (see the top of write.ts).
import type { Pool } from 'pg';
import { eventJson, type EventJsonPage, type EventJsonQuery } from '../event-json.js';
import type { EventHistory, GoneReason, StoreCounts, StoredEvent, TopicCounts } from '../port.js';
import { MAX_SEQ_SQL } from './schema.js';

type EventRow = {
  seq: string;
  topic: string;
  event_id: string;
  ts: string;
  source: Buffer;
  payload: string;
  processed_at: Date;
};

const EVENT_COLUMNS = 'e.seq, e.topic, e.event_id, e.ts, e.source, e.payload, e.processed_at';

function toEvent(r: EventRow): StoredEvent {
  return {
    seq: Number(r.seq),
    topic: r.topic,
    event_id: r.event_id,
    timestamp: r.ts,
    source: r.source.toString('utf8'),
    payload: JSON.parse(r.payload) as unknown,
    processed_at: r.processed_at.toISOString(),
  };
}

// Every read skips expired events (processed_at before `cutoff`), whether or not the
// background deletion has reached them yet.
function listRows(pool: Pool, q: { topic?: string | undefined; after: number; limit: number }, cutoff: Date) {
  return q.topic === undefined
    ? pool.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events e WHERE e.seq > $1 AND e.processed_at >= $3 ORDER BY e.seq LIMIT $2`, [
        q.after,
        q.limit,
        cutoff,
      ])
    : pool.query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events e WHERE e.topic = $4 AND e.seq > $1 AND e.processed_at >= $3 ORDER BY e.seq LIMIT $2`,
        [q.after, q.limit, cutoff, q.topic],
      );
}

export async function listEvents(
  pool: Pool,
  q: { topic?: string | undefined; after: number; limit: number },
  cutoff: Date = new Date(0),
): Promise<StoredEvent[]> {
  return (await listRows(pool, q, cutoff)).rows.map(toEvent);
}

/**
 * One statement, so one snapshot: the page, and the highest seq visible beside it (a row
 * with no event when the page is empty).
 */
export async function listEventsJson(
  pool: Pool,
  { topics, after, limit }: EventJsonQuery,
  cutoff: Date = new Date(0),
): Promise<EventJsonPage> {
  const { rows } = await pool.query<Partial<EventRow> & { top: string }>(
    `SELECT top.seq::text AS top, ${EVENT_COLUMNS}
       FROM (SELECT ${MAX_SEQ_SQL} AS seq) top
       LEFT JOIN LATERAL (
         SELECT * FROM events WHERE seq > $1 AND processed_at >= $3 ${topics === undefined ? '' : topics.length === 1 ? 'AND topic = $4' : 'AND topic = ANY($4)'} ORDER BY seq LIMIT $2
       ) e ON true
      ORDER BY e.seq`,
    topics === undefined ? [after, limit, cutoff] : [after, limit, cutoff, topics.length === 1 ? topics[0] : topics],
  );
  const events = rows
    .filter((r): r is EventRow & { top: string } => r.seq !== null && r.seq !== undefined)
    .map((r) => {
      const seq = Number(r.seq);
      return { seq, topic: r.topic, json: eventJson(seq, r.topic, r.event_id, r.ts, r.source.toString('utf8'), r.payload, r.processed_at.toISOString()) };
    });
  const top = rows.length > 0 ? Number(rows[0]!.top) : after;
  const through = limit > 0 && events.length === limit ? events[limit - 1]!.seq : Math.max(after, top);
  return { events, through };
}

export async function lastSeq(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ seq: string }>(`SELECT (${MAX_SEQ_SQL})::text AS seq`);
  return Number(rows[0]!.seq);
}

export async function getEvent(pool: Pool, topic: string, eventId: string, cutoff: Date = new Date(0)): Promise<EventHistory | undefined> {
  // The stored copy is the first copy; the log holds the copies dropped after it.
  const { rows } = await pool.query<EventRow & { dropped: string; conflicts: string; last_seen: Date | null }>(
    `SELECT ${EVENT_COLUMNS}, log.dropped, log.conflicts, log.last_seen
       FROM identities i
       JOIN events e ON e.claim = i.claim
       CROSS JOIN LATERAL (
         SELECT count(*) AS dropped, count(*) FILTER (WHERE c.conflict) AS conflicts, max(c.seen_at) AS last_seen
           FROM copies c WHERE c.claim = i.claim) log
      WHERE i.topic = $1 AND i.event_id = $2 AND e.processed_at >= $3`,
    [topic, eventId, cutoff],
  );
  const r = rows[0];
  if (r === undefined) return undefined;
  const event = toEvent(r);
  const lastSeen = r.last_seen === null ? event.processed_at : r.last_seen.toISOString();
  return {
    event,
    copies: 1 + Number(r.dropped),
    conflicts: Number(r.conflicts),
    first_seen_at: event.processed_at,
    // A copy logged in the same transaction as its stored copy has the same instant.
    last_seen_at: lastSeen < event.processed_at ? event.processed_at : lastSeen,
  };
}

export async function goneReason(pool: Pool, topic: string, eventId: string, cutoff: Date = new Date(0)): Promise<GoneReason | undefined> {
  const { rows } = await pool.query<{ erased: boolean | null; expired: boolean | null }>(
    `SELECT g.erased, e.processed_at < $3 AS expired
       FROM identities i
       LEFT JOIN events e ON e.claim = i.claim
       LEFT JOIN gone g ON g.claim = i.claim
      WHERE i.topic = $1 AND i.event_id = $2`,
    [topic, eventId, cutoff],
  );
  const r = rows[0];
  if (r === undefined) return undefined;
  if (r.erased !== null) return r.erased ? 'erased' : 'expired';
  return r.expired === true ? 'expired' : undefined;
}

type TopicRow = { topic: string; events: string; dropped: string; conflicts: string };

const toTopic = (r: TopicRow): TopicCounts => ({
  topic: r.topic,
  events: Number(r.events),
  dropped: Number(r.dropped),
  conflicts: Number(r.conflicts),
});

/** Per-topic sums over the shards; a topic is listed once it has a stored event. */
const TOPIC_SUMS = `SELECT topic, sum(events) AS events, sum(dropped) AS dropped, sum(conflicts) AS conflicts
  FROM topic_counts`;

export async function listTopics(pool: Pool, q: { after?: string | undefined; limit: number }): Promise<TopicCounts[]> {
  const { rows } =
    q.after === undefined
      ? await pool.query<TopicRow>(`${TOPIC_SUMS} GROUP BY topic HAVING sum(events) > 0 ORDER BY topic LIMIT $1`, [q.limit])
      : await pool.query<TopicRow>(
          `${TOPIC_SUMS} WHERE topic > $1 GROUP BY topic HAVING sum(events) > 0 ORDER BY topic LIMIT $2`,
          [q.after, q.limit],
        );
  return rows.map(toTopic);
}

export async function counts(pool: Pool, q: { jobIds: readonly string[]; topicsLimit: number }): Promise<StoreCounts> {
  const { rows } = await pool.query<{
    totals: Record<string, string | number>;
    topics: TopicRow[];
    topics_count: string;
    committed: string[];
  }>(
    `WITH topics AS (${TOPIC_SUMS} GROUP BY topic HAVING sum(events) > 0)
     SELECT
       (SELECT json_build_object(
          'received', coalesce(sum(received), 0), 'unique_processed', coalesce(sum(unique_processed), 0),
          'duplicate_dropped', coalesce(sum(duplicate_dropped), 0), 'conflicts', coalesce(sum(conflicts), 0),
          'redeliveries', coalesce(sum(redeliveries), 0), 'jobs', coalesce(sum(jobs), 0),
          'expired', coalesce(sum(expired), 0), 'erased', coalesce(sum(erased), 0))
          FROM counters) AS totals,
       (SELECT coalesce(json_agg(t ORDER BY t.topic), '[]')
          FROM (SELECT topic, events::text, dropped::text, conflicts::text FROM topics ORDER BY topic LIMIT $2) t) AS topics,
       (SELECT count(*) FROM topics)::text AS topics_count,
       ARRAY(SELECT id FROM jobs WHERE id = ANY($1::text[])) AS committed`,
    [q.jobIds, q.topicsLimit],
  );
  const r = rows[0]!;
  const n = (name: string) => Number(r.totals[name]);
  return {
    received: n('received'),
    uniqueProcessed: n('unique_processed'),
    duplicateDropped: n('duplicate_dropped'),
    conflicts: n('conflicts'),
    redeliveries: n('redeliveries'),
    expired: n('expired'),
    erased: n('erased'),
    jobs: n('jobs'),
    topicsCount: Number(r.topics_count),
    topics: r.topics.map(toTopic),
    committed: new Set(r.committed),
  };
}

export async function committedJobIds(pool: Pool, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>('SELECT id FROM jobs WHERE id = ANY($1::text[])', [ids]);
  return new Set(rows.map((r) => r.id));
}
