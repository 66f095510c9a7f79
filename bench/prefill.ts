// Builds a store holding N events, through the store's own commit path (the one workers
// use), and caches it so later runs start from a copy: a SQLite file under bench-results/,
// or a PostgreSQL database kept on the server as a template.
import fs from 'node:fs';
import path from 'node:path';
import { STORE_FILE, STORE_FORMAT } from '../shared/store/sqlite/schema.js';
import { openSqliteStore } from '../shared/store/sqlite/store.js';
import { openPostgresStore } from '../shared/store/postgres/store.js';
import { createTestDatabase, databaseExists, renameDatabase } from '../tools/harness/postgres.js';
import type { Store } from '../shared/store/port.js';
import { newJobId } from '../shared/queue.js';
import { stream, type IdOrder } from './workload.js';

export async function prefilledDir(opts: { events: number; ids: IdOrder; into: string; cacheDir: string; log: (s: string) => void }) {
  fs.mkdirSync(opts.into, { recursive: true });
  if (opts.events === 0) return;
  // The format in the name: a cache made by code that keys the store differently is never
  // taken (opening it would migrate it, inside the measurement).
  const name = `prefill-f${STORE_FORMAT}-${opts.ids}-${opts.events}`;
  const cached = path.join(opts.cacheDir, `${name}.db`);
  if (!fs.existsSync(cached)) {
    const tmp = path.join(opts.cacheDir, `${name}.tmp`);
    fs.rmSync(tmp, { recursive: true, force: true });
    const store = openSqliteStore({ dataDir: tmp, synchronous: 'NORMAL', cacheMb: 256 });
    await fill(store, opts);
    await store.close();
    fs.renameSync(path.join(tmp, STORE_FILE), cached);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.copyFileSync(cached, path.join(opts.into, STORE_FILE));
}

/** Commits `events` prefill events into a store, showing progress. */
async function fill(store: Store, opts: { events: number; ids: IdOrder; log: (s: string) => void }): Promise<void> {
  const s = stream({ ids: opts.ids, topics: 8, dupRatio: 0, seed: 7, prefix: 'pre' });
  const started = performance.now();
  let last = started;
  for (let done = 0; done < opts.events; ) {
    const jobs = [];
    for (let j = 0; j < 20 && done < opts.events; j++) {
      const n = Math.min(1000, opts.events - done);
      jobs.push({ id: newJobId(n), events: Array.from({ length: n }, () => s.next()) });
      done += n;
    }
    await store.commitJobs(jobs);
    if (performance.now() - last > 5000 || done === opts.events) {
      last = performance.now();
      opts.log(`prefill ${opts.ids}: ${done.toLocaleString()} / ${opts.events.toLocaleString()} events, ${Math.round(done / ((last - started) / 1000)).toLocaleString()} rows/s`);
    }
  }
}

/**
 * The name of a PostgreSQL database holding `events` prefill events, to copy from
 * (CREATE DATABASE ... TEMPLATE); built once and kept on the server. Undefined for 0.
 */
export async function prefilledDatabase(opts: { events: number; ids: IdOrder; log: (s: string) => void }): Promise<string | undefined> {
  if (opts.events === 0) return undefined;
  const name = `agg_bench_prefill_${opts.ids}_${opts.events}`;
  if (await databaseExists(name)) return name;
  // Built under a temporary name and renamed only when complete, so an interrupted build
  // is never taken for a finished one.
  const building = await createTestDatabase({ prefix: 'agg_bench_building' });
  const store = await openPostgresStore({ url: building.url });
  try {
    await fill(store, opts);
  } finally {
    await store.close();
  }
  await renameDatabase(building.name, name);
  return name;
}
