// The PostgreSQL store (DATABASE_URL=postgres://...): a connection pool (pool.ts), the tables
// made on first start, and the port's methods wired to write.ts, read.ts and sweep.ts, each
// through one guarded call (calls.ts).
import type { Logger } from '../../log.js';
import type { Store } from '../port.js';
import { cutoffMs, retentionOf } from '../retention.js';
import { storeCalls } from './calls.js';
import { integrityCheck } from './integrity.js';
import { openPool } from './pool.js';
import * as read from './read.js';
import { TABLES } from './schema.js';
import * as sweep from './sweep.js';
import { parseUrl, redactUrl } from './url.js';
import { commitJobs } from './write.js';

export type PostgresStoreOptions = {
  url: string;
  /** Connections this process keeps at most (node-postgres' default: 10). */
  poolSize?: number;
  log?: Logger;
  /** Create missing tables (default). A process told not to only checks they are there. */
  migrate?: boolean;
  /** EVENT_RETENTION in ms; unset: events are kept forever. */
  retentionMs?: number | undefined;
  /** The clock expiry is judged by (tests move it). */
  clock?: () => number;
};

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<Store> {
  const parsed = parseUrl(opts.url);
  const location = redactUrl(opts.url);
  const migrate = opts.migrate ?? true;
  const pool = await openPool({ url: opts.url, parsed, location, poolSize: opts.poolSize ?? 10, migrate, log: opts.log });
  const call = storeCalls(pool, { parsed, location, migrate, log: opts.log });

  let closed: Promise<void> | undefined;
  const retention = retentionOf(opts);
  const cutoff = () => new Date(cutoffMs(retention));
  return {
    kind: 'postgres',
    location,
    commitJobs: (jobs) => call(() => commitJobs(pool, jobs, cutoff())),
    listEvents: (q) => call(() => read.listEvents(pool, q, cutoff())),
    listEventsJson: (q) => call(() => read.listEventsJson(pool, q, cutoff())),
    lastSeq: () => call(() => read.lastSeq(pool)),
    getEvent: (topic, eventId) => call(() => read.getEvent(pool, topic, eventId, cutoff())),
    goneReason: (topic, eventId) => call(() => read.goneReason(pool, topic, eventId, cutoff())),
    eraseEvent: (topic, eventId) => call(() => sweep.eraseEvent(pool, topic, eventId, cutoff())),
    expireStep: (limit) => (retention.ms === undefined ? Promise.resolve(0) : call(() => sweep.expireStep(pool, limit, cutoff()))),
    jobsCommittedBefore: (q) => call(() => sweep.jobsCommittedBefore(pool, q)),
    forgetJobs: (ids) => call(() => sweep.forgetJobs(pool, ids)),
    counts: (q) => call(() => read.counts(pool, q)),
    listTopics: (q) => call(() => read.listTopics(pool, q)),
    committedJobIds: (ids) => call(() => read.committedJobIds(pool, ids)),
    async ping() {
      await call(() => pool.query('SELECT 1 FROM store_meta LIMIT 1'));
    },
    integrityCheck: () => call(() => integrityCheck(pool)),
    async sizeBytes() {
      const { rows } = await pool.query<{ bytes: string }>(
        'SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::text AS bytes FROM unnest($1::text[]) AS t',
        [TABLES],
      );
      return Number(rows[0]!.bytes);
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}
