// The PostgreSQL store's connection pool: made from DATABASE_URL, its first connection tried
// at once (so a wrong URL or a database out of reach stops the process that opens it), and
// the tables made (or, for a process told not to, checked).
import pg from 'pg';
import type { Logger } from '../../log.js';
import { StoreConfigError } from '../port.js';
import { checkSchema, migrate } from './schema.js';
import { withoutSecrets } from './url.js';

/** How long opening waits for the database before it says it cannot reach it. */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * A session idle inside a transaction (its process frozen, say) is ended after this long:
 * a commit holding the seq lock would otherwise stop every writer until then.
 */
const IDLE_IN_TRANSACTION_MS = 30_000;

type PoolOptions = {
  url: string;
  /** The URL as parsed, whose password is kept out of every message. */
  parsed: URL;
  /** The URL without its password. */
  location: string;
  poolSize: number;
  migrate: boolean;
  log: Logger | undefined;
};

function createPool(o: PoolOptions): pg.Pool {
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({
      connectionString: o.url,
      max: o.poolSize,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
      application_name: 'event-aggregator',
    });
  } catch (err) {
    throw new StoreConfigError(`DATABASE_URL (${o.location}) cannot be used: ${withoutSecrets(String(err), o.parsed)}`);
  }
  // An idle connection that breaks (database restart) must not crash the process; the
  // pool replaces it, and the next query tells its caller.
  pool.on('error', (err) => o.log?.warn({ err: withoutSecrets(err.message, o.parsed) }, 'PostgreSQL connection lost'));
  // A session that ends while checked out (pg_terminate_backend, a reset between two
  // statements of a transaction) emits 'error' on its client, where the pool listens only
  // while it is idle: unheard, that event would end the process. Its holder learns of it
  // from its next query, which fails, and gives the client back as broken.
  pool.on('connect', (client) => {
    client.on('error', (err) => o.log?.debug({ err: withoutSecrets(err.message, o.parsed) }, 'PostgreSQL session ended'));
  });
  return pool;
}

export async function openPool(o: PoolOptions): Promise<pg.Pool> {
  const pool = createPool(o);
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    await pool.end().catch(() => undefined);
    const reason = err instanceof Error ? err.message : String(err);
    throw new StoreConfigError(`DATABASE_URL: cannot connect to PostgreSQL at ${o.location}: ${withoutSecrets(reason, o.parsed)}`);
  }
  try {
    if (o.migrate) await migrate(client);
    else await checkSchema(client);
  } catch (err) {
    client.release();
    await pool.end().catch(() => undefined);
    throw err;
  }
  client.release();
  o.log?.info({ location: o.location }, 'PostgreSQL store open');
  return pool;
}
