// What every call of the PostgreSQL store goes through: a database that came back empty
// (dropped and re-created, restored from nothing) is given its tables again by the first call
// that misses one, and a database out of reach is reported as the error callers know.
import type pg from 'pg';
import type { Logger } from '../../log.js';
import { isStoreUnreachable, StoreUnavailableError } from '../unavailable.js';
import { migrate } from './schema.js';
import { withoutSecrets } from './url.js';

/** SQLSTATE of "relation ... does not exist". */
const UNDEFINED_TABLE = '42P01';

/** One store call: a missing table migrates and tries once more; an unreachable database is said so. */
type StoreCall = <T>(fn: () => Promise<T>) => Promise<T>;

export function storeCalls(pool: pg.Pool, o: { parsed: URL; location: string; migrate: boolean; log: Logger | undefined }): StoreCall {
  /** One migration at a time, however many calls missed a table. */
  let migrating: Promise<void> | undefined;
  function migrateAgain(): Promise<void> {
    migrating ??= (async () => {
      const c = await pool.connect();
      try {
        await migrate(c);
        c.release();
        o.log?.warn({ location: o.location }, 'PostgreSQL store tables were missing: created again');
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
    const reason = withoutSecrets(err instanceof Error ? err.message : String(err), o.parsed);
    return new StoreUnavailableError(`PostgreSQL at ${o.location} is unavailable: ${reason}`, { cause: err });
  }

  return async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (!o.migrate || (err as { code?: unknown }).code !== UNDEFINED_TABLE) throw unreachable(err);
      try {
        await migrateAgain();
        return await fn();
      } catch (again) {
        throw unreachable(again);
      }
    }
  };
}
