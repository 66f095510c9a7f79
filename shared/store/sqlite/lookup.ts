// Finding the stored copy of an identity: by its dedup key in either tier, checked against
// the stored row (or, once the event was deleted, against its kept identity in `gone`),
// else by its full identity in the overflow table (identities sharing a key).
import type Database from 'better-sqlite3';
import { dedupKey } from '../identity.js';
import { unpackId } from './compact-id.js';
import type { GoneReason } from '../port.js';

export type StoredRow = {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: string;
  processed_at: number;
};

/** The identity of an event deleted from `events`: no content left to compare with. */
export type GoneRow = { seq: number; topic: string; event_id: string; gone: GoneReason };

/** What holds an identity: its stored event, or its kept identity once the event is gone. */
export type HeldRow = StoredRow | GoneRow;

export const isGone = (row: HeldRow): row is GoneRow => 'gone' in row;

export type Lookup = {
  /** The stored row at a seq, or the identity kept there once its event is gone. */
  at(seq: number): HeldRow | undefined;
  /** The stored copy of (topic, event_id), or its kept identity, if it was ever stored. */
  find(topic: string, eventId: string): HeldRow | undefined;
};

export function createLookup(db: Database.Database): Lookup {
  const rowAt = db.prepare(
    'SELECT seq, topic, event_id, timestamp, source, payload, processed_at FROM events WHERE seq = ?',
  );
  const goneAt = db.prepare(
    'SELECT g.seq, t.topic, g.event_id, g.erased FROM gone AS g CROSS JOIN topic_ids AS t ON t.id = g.topic_id WHERE g.seq = ?',
  );
  const seqInMain = db.prepare('SELECT seq FROM dedup WHERE k = ?').pluck();
  const seqInRecent = db.prepare('SELECT seq FROM dedup_recent WHERE k = ?').pluck();
  const seqInOverflow = db.prepare('SELECT seq FROM dedup_overflow WHERE topic = ? AND event_id = ?').pluck();

  const at = (seq: number): HeldRow | undefined => {
    const row = rowAt.get(seq) as StoredRow | undefined;
    if (row !== undefined) return row;
    const g = goneAt.get(seq) as { seq: number; topic: string; event_id: string | Buffer; erased: number } | undefined;
    return g && { seq: g.seq, topic: g.topic, event_id: unpackId(g.event_id), gone: g.erased ? 'erased' : 'expired' };
  };
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
