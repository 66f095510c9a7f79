// Builds a store holding N events, through the store's own commit path (the one workers
// use), and caches it under bench-results/ so later runs start from a copy.
import fs from 'node:fs';
import path from 'node:path';
import { STORE_FILE } from '../shared/store/sqlite/schema.js';
import { openSqliteStore } from '../shared/store/sqlite/store.js';
import { newJobId } from '../shared/queue.js';
import { stream, type IdOrder } from './workload.js';

export async function prefilledDir(opts: { events: number; ids: IdOrder; into: string; cacheDir: string; log: (s: string) => void }) {
  fs.mkdirSync(opts.into, { recursive: true });
  if (opts.events === 0) return;
  const cached = path.join(opts.cacheDir, `prefill-${opts.ids}-${opts.events}.db`);
  if (!fs.existsSync(cached)) {
    const tmp = path.join(opts.cacheDir, `prefill-${opts.ids}-${opts.events}.tmp`);
    fs.rmSync(tmp, { recursive: true, force: true });
    const store = openSqliteStore({ dataDir: tmp, synchronous: 'NORMAL', cacheMb: 256 });
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
        const secs = (last - started) / 1000;
        opts.log(`prefill ${opts.ids}: ${done.toLocaleString()} / ${opts.events.toLocaleString()} events, ${Math.round(done / secs).toLocaleString()} rows/s`);
      }
      await new Promise((r) => setImmediate(r));
    }
    await store.close();
    fs.renameSync(path.join(tmp, STORE_FILE), cached);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.copyFileSync(cached, path.join(opts.into, STORE_FILE));
}
