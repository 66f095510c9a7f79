// Claiming an identity: its dedup key looked up in the filter and the two tiers, and either
// the stored copy found or the key claimed for the event about to be stored.
import type Database from 'better-sqlite3';
import { dedupKey } from '../identity.js';
import type { KeyFilter } from './key-filter.js';
import type { HeldRow, Lookup } from './lookup.js';

/** The stored copy (undefined: the identity is claimed), and whether a key entered the small tier. */
type Claim = { row: HeldRow | undefined; newKey: boolean };

/**
 * The stored copy of an identity, or a claim on it at `nextSeq` (undefined) when there is
 * none. A key lives in exactly one tier: it enters `dedup_recent` only if `dedup` lacks it.
 * No filter: every key is looked up.
 */
export type Claimer = (f: KeyFilter | undefined, topic: string, eventId: string, nextSeq: number) => Claim;

export function createClaimer(db: Database.Database, lookup: Lookup): Claimer {
  const seqInMain = db.prepare('SELECT seq FROM dedup WHERE k = ?').pluck();
  const claimRecent = db.prepare('INSERT INTO dedup_recent (k, seq) VALUES (?, ?)');
  const seqInRecent = db.prepare('SELECT seq FROM dedup_recent WHERE k = ?').pluck();
  const claimOverflow = db.prepare('INSERT OR IGNORE INTO dedup_overflow (topic, event_id, seq) VALUES (?, ?, ?)');
  const seqInOverflow = db.prepare('SELECT seq FROM dedup_overflow WHERE topic = ? AND event_id = ?').pluck();

  return (f, topic, eventId, nextSeq) => {
    const k = dedupKey(topic, eventId);
    // The small tier first: copies are mostly of recent events, and its pages are cached,
    // while a probe of the large tier reads a page of its own for each random key.
    // One hash for the question and the answer: a key the filter has never seen is added now.
    const seq = f === undefined || f.add(k) === 'maybe-held' ? ((seqInRecent.get(k) ?? seqInMain.get(k)) as number | undefined) : undefined;
    if (seq === undefined) {
      claimRecent.run(k, nextSeq);
      return { row: undefined, newKey: true };
    }
    const row = lookup.at(seq);
    if (row !== undefined && row.topic === topic && row.event_id === eventId) return { row, newKey: false };
    // A different identity behind the same key: settled by the full identity.
    if (claimOverflow.run(topic, eventId, nextSeq).changes === 1) return { row: undefined, newKey: false };
    return { row: lookup.at(seqInOverflow.get(topic, eventId) as number), newKey: false };
  };
}
