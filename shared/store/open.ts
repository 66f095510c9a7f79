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

export async function openStore(config: Config, role: StoreRole, log?: Logger): Promise<Store> {
  if (config.databaseUrl !== undefined) {
    return openPostgresStore({ url: config.databaseUrl, poolSize: config.databasePoolSize, ...(log && { log }) });
  }
  const store = openSqliteStore({
    dataDir: config.dataDir,
    cacheMb: config.sqliteCacheMb,
    synchronous: config.sqliteSynchronous,
    busyTimeoutMs: role === 'worker' ? 0 : config.sqliteBusyTimeoutMs,
  });
  // Before the first job, not during it: reading every stored key took 4.9 to 6.0 s at 10 million
  // events, and a worker holding a job meanwhile would only delay it.
  if (role === 'worker') {
    try {
      store.prepareWrites();
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}
