// The SQLite store's read path: events by cursor (read-events.ts), one identity explained
// (read-identity.ts), counts and topics (read-counts.ts).
import type Database from 'better-sqlite3';
import type { Retention } from '../retention.js';
import type { Lookup } from './lookup.js';
import { createCountReader, type CountReader } from './read-counts.js';
import { createEventReader, type EventReader } from './read-events.js';
import { createIdentityReader, type IdentityReader } from './read-identity.js';

export type Reader = EventReader & IdentityReader & CountReader;

export function createReader(db: Database.Database, lookup: Lookup, retention: Retention): Reader {
  return { ...createEventReader(db, retention), ...createIdentityReader(db, lookup, retention), ...createCountReader(db) };
}
