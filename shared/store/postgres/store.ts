// The PostgreSQL store (DATABASE_URL=postgres://...): a connection pool, the tables made on
// first start, and the port's methods wired to write.ts and read.ts.
import pg from 'pg';
import type { Logger } from '../../log.js';
import { StoreConfigError, type Store } from '../port.js';
import { isStoreUnreachable, StoreUnavailableError } from '../unavailable.js';
import * as read from './read.js';
import { checkSchema, migrate, TABLES } from './schema.js';
import * as sweep from './sweep.js';
import { cutoffMs, retentionOf } from '../retention.js';
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

/** How long opening waits for the database before it says it cannot reach it. */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * A session idle inside a transaction (its process frozen, say) is ended after this long:
 * a commit holding the seq lock would otherwise stop every writer until then.
 */
const IDLE_IN_TRANSACTION_MS = 30_000;

/** SQLSTATE of "relation ... does not exist". */
const UNDEFINED_TABLE = '42P01';

const EXPECTED = 'expected postgres://user:password@host:5432/database';

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    for (const name of ['password', 'sslpassword']) u.searchParams.delete(name);
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreConfigError(`DATABASE_URL is not a valid URL; ${EXPECTED}`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new StoreConfigError(`DATABASE_URL must start with postgres:// or postgresql://; ${EXPECTED}`);
  }
  return u;
}

/** An error's message with every form of the password taken out. */
function withoutSecrets(message: string, u: URL): string {
  const secrets = [u.password, u.searchParams.get('password') ?? ''];
  try {
    secrets.push(decodeURIComponent(u.password));
  } catch {
    // a password that is not valid percent-encoding appears only as written
  }
  let out = message;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<Store> {
  const u = parseUrl(opts.url);
  const location = redactUrl(opts.url);
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
      application_name: 'event-aggregator',
    });
  } catch (err) {
    throw new StoreConfigError(`DATABASE_URL (${location}) cannot be used: ${withoutSecrets(String(err), u)}`);
  }
  // An idle connection that breaks (database restart) must not crash the process; the
  // pool replaces it, and the next query tells its caller.
  pool.on('error', (err) => opts.log?.warn({ err: withoutSecrets(err.message, u) }, 'PostgreSQL connection lost'));
  // A session that ends while checked out (pg_terminate_backend, a reset between two
  // statements of a transaction) emits 'error' on its client, where the pool listens only
  // while it is idle: unheard, that event would end the process. Its holder learns of it
  // from its next query, which fails, and gives the client back as broken.
  pool.on('connect', (client) => {
    client.on('error', (err) => opts.log?.debug({ err: withoutSecrets(err.message, u) }, 'PostgreSQL session ended'));
  });

  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    await pool.end().catch(() => undefined);
    const reason = err instanceof Error ? err.message : String(err);
    throw new StoreConfigError(`DATABASE_URL: cannot connect to PostgreSQL at ${location}: ${withoutSecrets(reason, u)}`);
  }
  try {
    if (opts.migrate ?? true) await migrate(client);
    else await checkSchema(client);
  } catch (err) {
    client.release();
    await pool.end().catch(() => undefined);
    throw err;
  }
  client.release();
  opts.log?.info({ location }, 'PostgreSQL store open');

  /**
   * A database that came back empty (dropped and re-created, restored from nothing) is
   * given its tables again by the first call that misses one: one migration at a time.
   */
  let migrating: Promise<void> | undefined;
  function migrateAgain(): Promise<void> {
    migrating ??= (async () => {
      const c = await pool.connect();
      try {
        await migrate(c);
        c.release();
        opts.log?.warn({ location }, 'PostgreSQL store tables were missing: created again');
      } catch (err) {
        c.release(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    })().finally(() => (migrating = undefined));
    return migrating;
  }

  /** The database out of reach, as the error callers know (503 for readers, retry for workers). */
  function unreachable(err: unknown): unknown {
    if (!isStoreUnreachable(err) || err instanceof StoreUnavailableError) return err;
    const reason = withoutSecrets(err instanceof Error ? err.message : String(err), u);
    return new StoreUnavailableError(`PostgreSQL at ${location} is unavailable: ${reason}`, { cause: err });
  }

  /** One store call: a missing table migrates and tries once more; an unreachable database is said so. */
  async function call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!(opts.migrate ?? true) || (err as { code?: unknown }).code !== UNDEFINED_TABLE) throw unreachable(err);
      try {
        await migrateAgain();
        return await fn();
      } catch (again) {
        throw unreachable(again);
      }
    }
  }

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

/**
 * PostgreSQL checks its pages itself (and amcheck, where installed, checks the indexes);
 * what only this store knows is how its tables agree: every identity has its event, and
 * the counters match the rows. Reads every row: for tools and tests, not for a hot path.
 */
async function integrityCheck(pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const problems: string[] = [];
    const { rows } = await client.query<Record<string, string>>(
      `SELECT
         (SELECT count(*) FROM events)::text AS events,
         (SELECT count(*) FROM identities)::text AS identities,
         (SELECT count(*) FROM gone)::text AS gone,
         (SELECT count(*) FROM identities i WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.claim = i.claim)
            AND NOT EXISTS (SELECT 1 FROM gone g WHERE g.claim = i.claim))::text AS orphans,
         (SELECT coalesce(sum(expired + erased), 0) FROM counters)::text AS removed,
         (SELECT coalesce(sum(unique_processed), 0) FROM counters)::text AS unique_processed,
         (SELECT coalesce(sum(received - unique_processed - duplicate_dropped), 0) FROM counters)::text AS unbalanced,
         (SELECT coalesce(sum(duplicate_dropped), 0) FROM counters)::text AS dropped,
         (SELECT count(*) FROM copies)::text AS copies,
         (SELECT coalesce(sum(events), 0) FROM topic_counts)::text AS topic_events`,
    );
    const r = rows[0]!;
    // Deleted events (expired, erased) keep their identity in `gone`, and take their copy log with them.
    const kept = String(Number(r.events) + Number(r.gone));
    if (kept !== r.identities) problems.push(`${r.identities} identities but ${r.events} events and ${r.gone} deleted`);
    if (r.orphans !== '0') problems.push(`${r.orphans} identities without their event`);
    if (r.unique_processed !== kept) problems.push(`unique_processed is ${r.unique_processed}, events hold ${r.events} and ${r.gone} deleted`);
    if (r.removed !== r.gone) problems.push(`expired + erased is ${r.removed}, ${r.gone} events were deleted`);
    if (r.unbalanced !== '0') problems.push(`received differs from unique_processed + duplicate_dropped by ${r.unbalanced}`);
    if (r.gone === '0' && r.dropped !== r.copies) problems.push(`duplicate_dropped is ${r.dropped}, the copy log holds ${r.copies}`);
    if (r.topic_events !== kept) problems.push(`per-topic counts sum to ${r.topic_events}, events hold ${kept}`);
    const amcheck = await client.query("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'");
    if (amcheck.rowCount !== 0) {
      const indexes = await client.query<{ name: string }>(
        `SELECT i.indexrelid::regclass::text AS name FROM pg_index i
          WHERE i.indrelid = ANY(SELECT to_regclass(t) FROM unnest($1::text[]) AS t)`,
        [TABLES],
      );
      for (const { name } of indexes.rows) {
        try {
          await client.query('SELECT bt_index_check($1::regclass)', [name]);
        } catch (err) {
          problems.push(`index ${name}: ${err instanceof Error ? err.message : String(err)}`);
          break; // the transaction is aborted now
        }
      }
    }
    return problems;
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}
