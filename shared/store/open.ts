// Which store a process opens, from its configuration: PostgreSQL when DATABASE_URL is set,
// else SQLite in DATA_DIR.
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Store } from './port.js';
import { openPostgresStore } from './postgres/store.js';
import { openSqliteStore, type SqliteStore } from './sqlite/store.js';

/**
 * Workers write: on SQLite they never wait for the write lock inside the driver (that sleeps
 * on the event loop), the committer retries a busy store itself. The API only reads.
 */
export type StoreRole = 'api' | 'worker';

/**
 * `stopped`: asked between pages of a worker's filter build, which then gives up (the store
 * is closing anyway).
 */
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
    keyFilterMaxMb: config.sqliteKeyFilterMaxMb,
  });
  // Started now, not awaited: reading every stored key took 6 s at 10 million identities, and
  // would take minutes at a billion. The worker takes jobs at once; until the filter is built
  // its commits look each key up in the dedup index (exact, only slower).
  if (role === 'worker') buildFilterInBackground(store, log, stopped);
  return store;
}

function buildFilterInBackground(store: SqliteStore, log: Logger | undefined, stopped: (() => boolean) | undefined): void {
  const started = performance.now();
  const say = log && filterProgress(log);
  store
    .prepareWrites((read, total) => {
      if (stopped?.()) throw new Error('stopped while building the filter of stored keys');
      say?.(read, total);
    })
    .then((outcome) => {
      const seconds = +((performance.now() - started) / 1000).toFixed(1);
      if (outcome.status === 'built') log?.info({ seconds, keys: outcome.keys, bytes: outcome.bytes }, 'filter of stored keys built');
      if (outcome.status === 'over-bound') {
        log?.warn(
          { keys: outcome.keys, max_mb: outcome.maxBytes / 1024 / 1024 },
          'the filter of stored keys would pass SQLITE_KEY_FILTER_MAX_MB: this worker keeps no filter and looks every key up',
        );
      }
    })
    .catch((err: unknown) => {
      if (stopped?.()) return;
      log?.warn({ err }, 'filter of stored keys not built: this worker looks every key up');
    });
}
const PROGRESS_EVERY_MS = 5000;

/** Says how far a long build of the filter is, every few seconds. */
function filterProgress(log: Logger): (read: number, total: number) => void {
  let said = performance.now();
  return (read, total) => {
    const now = performance.now();
    if (now - said < PROGRESS_EVERY_MS) return;
    said = now;
    log.info({ keys: read, of: total }, 'building the filter of stored keys (jobs are taken meanwhile)');
  };
}
