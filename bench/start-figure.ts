// A worker's start in the run: bench/worker-start.ts's `measure` (a worker spawned on a store
// with one job already queued; the time from its spawn to that job's commit, and its memory)
// on a copy of the run's prefill of random ids, the store the 10 M scenarios start from.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRedisServer } from '../scripts/redis-server.js';
import { ROOT } from '../tools/harness/root.js';
import { prefilledDir } from './prefill.js';
import { settle } from './procstat.js';
import { progress } from './progress.js';
import { RESULTS } from './results.js';

export type WorkerStart = {
  /** Identities the store held. */
  identities: number;
  firstCommitMs: number;
  rssMbAtFirstCommit: number | undefined;
  /** When the worker's filter of stored keys was built (it takes jobs before). */
  filterDoneMs: number;
  peakRssMb: number;
  /** The first commit stored the job's new event: `{"stored":2,"dropped":0}` on a store without its ids. */
  firstCommit: unknown;
};

type Measured = { first_commit_ms: number; first_commit: unknown; rss_mb_at_first_commit?: number; filter_done_ms: number; peak_rss_mb: number };

export async function measureWorkerStart(identities: number): Promise<WorkerStart> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-bench-start-'));
  const dataDir = path.join(dir, 'data');
  try {
    await prefilledDir({ events: identities, ids: 'random', into: dataDir, cacheDir: RESULTS, log: (l) => progress(l, true) });
    settle();
    const redis = await startRedisServer({ dir: path.join(dir, 'redis') });
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [path.join(import.meta.dirname, 'worker-start.js'), 'measure', dataDir, redis.url], { cwd: ROOT, maxBuffer: 16 << 20 });
      const m = JSON.parse(stdout.trim().split('\n').at(-1)!) as Measured;
      const r: WorkerStart = {
        identities,
        firstCommitMs: m.first_commit_ms,
        rssMbAtFirstCommit: m.rss_mb_at_first_commit,
        filterDoneMs: m.filter_done_ms,
        peakRssMb: m.peak_rss_mb,
        firstCommit: m.first_commit,
      };
      progress(`worker start at ${identities.toLocaleString()} stored: first commit ${r.firstCommitMs} ms, filter built ${r.filterDoneMs} ms`, true);
      return r;
    } finally {
      await redis.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
