// One identity explained: its stored event with its copies, or why it is gone.
import type Database from 'better-sqlite3';
import type { EventHistory, GoneReason } from '../port.js';
import { cutoffMs, type Retention } from '../retention.js';
import { isGone, type Lookup } from './lookup.js';
import { iso, toStoredEvent } from './read-events.js';

export type IdentityReader = {
  getEvent(topic: string, eventId: string): EventHistory | undefined;
  goneReason(topic: string, eventId: string): GoneReason | undefined;
};

export function createIdentityReader(db: Database.Database, lookup: Lookup, retention: Retention): IdentityReader {
  const copiesOf = db.prepare(
    'SELECT count(*) AS copies, coalesce(sum(conflict), 0) AS conflicts, max(seen_at) AS last FROM copies WHERE seq = ?',
  );
  return {
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
  };
}
