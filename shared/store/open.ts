// Which store a process opens, from its configuration: SQLite in DATA_DIR by default.
import type { Config } from '../config.js';
import type { Store } from './port.js';
import { openSqliteStore } from './sqlite/store.js';

/**
 * Workers write: they never wait for SQLite's write lock inside the driver (that sleeps on
 * the event loop), the committer retries a busy store itself. The API only reads.
 */
export type StoreRole = 'api' | 'worker';

export function openStore(config: Config, role: StoreRole): Promise<Store> {
  return Promise.resolve(
    openSqliteStore({
      dataDir: config.dataDir,
      cacheMb: config.sqliteCacheMb,
      synchronous: config.sqliteSynchronous,
      busyTimeoutMs: role === 'worker' ? 0 : config.sqliteBusyTimeoutMs,
    }),
  );
}
