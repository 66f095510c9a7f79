// The store's size on disk at the end of a scenario, for bytes per stored identity: the SQLite
// file with its WAL (its shared-memory index is not data), or the PostgreSQL database.
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';
import type { BenchService } from './service.js';

const size = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : 0);

export async function storeBytes(service: BenchService): Promise<number> {
  if (service.database === undefined) {
    const file = path.join(service.dataDir, STORE_FILE);
    return size(file) + size(`${file}-wal`);
  }
  const client = new pg.Client({ connectionString: service.database.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ bytes: string }>('SELECT pg_database_size(current_database())::text AS bytes');
    return Number(rows[0]!.bytes);
  } finally {
    await client.end();
  }
}
