// Events by cursor: as objects (listEvents), or as their JSON text, formatted once (listEventsJson).
import type Database from 'better-sqlite3';
import { eventJson, type EventJsonPage, type EventJsonQuery } from '../event-json.js';
import type { StoredEvent } from '../port.js';
import { cutoffMs, type Retention } from '../retention.js';
import type { StoredRow } from './lookup.js';
import { MAX_SEQ_SQL } from './schema.js';

export const iso = (ms: number) => new Date(ms).toISOString();

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

export type EventReader = {
  listEvents(q: { topic?: string | undefined; after: number; limit: number }): StoredEvent[];
  listEventsJson(q: EventJsonQuery): EventJsonPage;
  lastSeq(): number;
};

type Raw = [number, string, string, string, string, string, number];

export function createEventReader(db: Database.Database, retention: Retention): EventReader {
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

  const rawRows = ({ topics, after, limit }: EventJsonQuery, cutoff: number): Raw[] =>
    (topics === undefined
      ? listAllRaw.all({ after, cutoff, limit })
      : topics.length === 1
        ? listTopicRaw.all({ after, cutoff, limit, topic: topics[0] })
        : listTopicsRaw.all({ after, cutoff, limit, topic: JSON.stringify(topics) })) as Raw[];

  return {
    listEvents({ topic, after, limit }) {
      const cutoff = cutoffMs(retention);
      const rows = (topic === undefined ? listAll.all({ after, cutoff, limit }) : listTopic.all({ after, cutoff, limit, topic })) as StoredRow[];
      return rows.map(toStoredEvent);
    },
    // One read transaction: `through` must come from the snapshot the page came from.
    listEventsJson: db.transaction((q: EventJsonQuery): EventJsonPage => {
      const { after, limit } = q;
      const rows = rawRows(q, cutoffMs(retention));
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
  };
}
