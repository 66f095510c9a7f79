// Finding the stored copy of an identity: by its dedup key in either tier, checked against
// the stored row, else by its full identity in the overflow table (identities sharing a key).
import type Database from 'better-sqlite3';
import { dedupKey } from '../identity.js';

export type StoredRow = {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: string;
  processed_at: number;
};

export type Lookup = {
  /** The stored row at a seq. */
  at(seq: number): StoredRow | undefined;
  /** The stored copy of (topic, event_id), if any. */
  find(topic: string, eventId: string): StoredRow | undefined;
};

export function createLookup(db: Database.Database): Lookup {
  const rowAt = db.prepare(
    'SELECT seq, topic, event_id, timestamp, source, payload, processed_at FROM events WHERE seq = ?',
  );
  const seqInMain = db.prepare('SELECT seq FROM dedup WHERE k = ?').pluck();
  const seqInRecent = db.prepare('SELECT seq FROM dedup_recent WHERE k = ?').pluck();
  const seqInOverflow = db.prepare('SELECT seq FROM dedup_overflow WHERE topic = ? AND event_id = ?').pluck();

  const at = (seq: number) => rowAt.get(seq) as StoredRow | undefined;
  return {
    at,
    find(topic, eventId) {
      const k = dedupKey(topic, eventId);
      const seq = (seqInMain.get(k) ?? seqInRecent.get(k)) as number | undefined;
      if (seq === undefined) return undefined;
      const row = at(seq);
      if (row !== undefined && row.topic === topic && row.event_id === eventId) return row;
      const other = seqInOverflow.get(topic, eventId) as number | undefined;
      return other === undefined ? undefined : at(other);
    },
  };
}
