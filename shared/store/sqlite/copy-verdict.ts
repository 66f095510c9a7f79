// What a copy of a stored event is: a duplicate of it, or a conflict with it.
import { payloadJson } from '../../schema.js';
import { sameContent } from '../content.js';
import type { EventResult, JobToCommit } from '../port.js';
import { isGone, type HeldRow } from './lookup.js';

/**
 * A copy of an expired or erased event is a duplicate: its content is gone (or about to be),
 * so there is nothing to conflict with, and nothing to log (no lookup will show it).
 */
export const outlived = (stored: HeldRow, cutoff: number) => isGone(stored) || stored.processed_at < cutoff;

export function copyResult(e: JobToCommit['events'][number], stored: HeldRow, cutoff: number): EventResult {
  if (isGone(stored) || stored.processed_at < cutoff) return { status: 'duplicate', seq: stored.seq };
  const same = sameContent({ source: e.source, timestamp: e.timestamp, payload: payloadJson(e.payload) }, stored);
  return { status: same ? 'duplicate' : 'conflict', seq: stored.seq };
}
