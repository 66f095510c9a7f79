// A real PostgreSQL for tests, the chaos run and the benchmark: each gets a database of its
// own, made on the server at TEST_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres, trust auth, as .ci/run sets up) and dropped
// after. Never a mock.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The maintenance database the test databases are created from. */
export const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type TestDatabase = { url: string; name: string; drop(): Promise<void> };

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Whether a PostgreSQL server answers at ADMIN_URL. */
export async function postgresAnswers(): Promise<boolean> {
  try {
    await withAdmin((c) => c.query('SELECT 1'));
    return true;
  } catch {
    return false;
  }
}

/** Whether a database of this name exists (a cached template, say). */
export async function databaseExists(name: string): Promise<boolean> {
  return withAdmin(async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
}

/** Renames a database no session is using. */
export async function renameDatabase(from: string, to: string): Promise<void> {
  await withAdmin((c) => c.query(`ALTER DATABASE ${from} RENAME TO ${to}`));
}

/** The URL of a database on the test server. */
export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A fresh, uniquely named database, empty or a copy of `template` (a file-level copy: fast
 * however large); `drop()` removes it, sessions still open included.
 */
export async function createTestDatabase(opts: { template?: string; prefix?: string } = {}): Promise<TestDatabase> {
  const name = `${opts.prefix ?? 'agg_test'}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${name}${opts.template ? ` TEMPLATE ${opts.template}` : ''}`));
  let dropped = false;
  return {
    url: databaseUrl(name),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
