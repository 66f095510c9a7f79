// Which store a process opens, from its configuration: PostgreSQL when DATABASE_URL is set,
// else SQLite in DATA_DIR.
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Store } from './port.js';
import { openPostgresStore } from './postgres/store.js';
import { openSqliteStore } from './sqlite/store.js';

/**
 * Workers write: on SQLite they never wait for the write lock inside the driver (that sleeps
 * on the event loop), the committer retries a busy store itself. The API only reads.
 */
export type StoreRole = 'api' | 'worker';

/** `stopped`: asked between pages of a worker's filter build, which then gives up. */
export async function openStore(config: Config, role: StoreRole, log?: Logger, stopped?: () => boolean): Promise<Store> {
  if (config.databaseUrl !== undefined) {
    return openPostgresStore({
      url: config.databaseUrl,
      poolSize: config.databasePoolSize,
      retentionMs: config.eventRetentionMs,
      ...(log && { log }),
    });
  }
  const store = openSqliteStore({
    dataDir: config.dataDir,
    cacheMb: config.sqliteCacheMb,
    synchronous: config.sqliteSynchronous,
    busyTimeoutMs: role === 'worker' ? 0 : config.sqliteBusyTimeoutMs,
    retentionMs: config.eventRetentionMs,
  });
  // Before the first job, not during it: reading every stored key took 4.9 to 6.0 s at 10 million
  // events, and a worker holding a job meanwhile would only delay it.
  if (role === 'worker') {
    try {
      const started = performance.now();
      const say = log && filterProgress(log);
      await store.prepareWrites((read, total) => {
        if (stopped?.()) throw new Error('stopped while building the filter of stored keys');
        say?.(read, total);
      });
      const seconds = (performance.now() - started) / 1000;
      if (seconds >= 1) log?.info({ seconds: +seconds.toFixed(1) }, 'filter of stored keys built');
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}

const PROGRESS_EVERY_MS = 5000;

/** Says how far a long build of the filter is, every few seconds. */
function filterProgress(log: Logger): (read: number, total: number) => void {
  let said = performance.now();
  return (read, total) => {
    const now = performance.now();
    if (now - said < PROGRESS_EVERY_MS) return;
    said = now;
    log.info({ keys: read, of: total }, 'building the filter of stored keys before taking jobs');
  };
}
