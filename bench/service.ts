// The service under test as real processes: a private Redis, the API and the workers on a
// store of the scenario's size (a prefilled SQLite directory or PostgreSQL database).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_JOB_LOCK_MS } from '../shared/config.js';
import { startRedisServer, type RedisServer } from '../scripts/redis-server.js';
import { startCluster, type Cluster, type StoreKind } from '../tools/harness/cluster.js';
import { createTestDatabase, type TestDatabase } from '../tools/harness/postgres.js';
import { profilingEnv } from './cpu-profile.js';
import { prefilledDatabase, prefilledDir } from './prefill.js';
import { settle } from './procstat.js';
import { progress } from './progress.js';
import { RESULTS } from './results.js';
import type { Scenario } from './scenarios.js';

export type ServiceOptions = {
  appendfsync: 'everysec' | 'always';
  synchronous: string;
  store: StoreKind;
  /** Each Node process of the service profiles itself on SIGUSR2, into this folder (cpu-profile.ts). */
  profileDir?: string | undefined;
};

/** The environment the service runs with: the bench's settings plus those asked to compare. */
function serviceEnv(s: Scenario, opts: ServiceOptions): Record<string, string> {
  return {
    LOG_LEVEL: 'warn',
    SQLITE_SYNCHRONOUS: opts.synchronous,
    // Long locks keep a worker that is slow under this load from losing its jobs; the
    // recovery scenario runs with the service's default, which is what it measures.
    JOB_LOCK_MS: String(s.killWorker ? DEFAULT_JOB_LOCK_MS : 30_000),
    ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}),
    ...(opts.profileDir !== undefined ? profilingEnv(opts.profileDir, process.env.BENCH_NODE_OPTIONS) : {}),
    // Settings to compare (the stream, coalescing, group commits, the writer lease): COALESCE_MS=... npm run bench -- ...
    ...Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => /^(STREAM_|COALESCE_|WORKER_|MAX_SUBSCRIBERS$|SQLITE_WRITER_LEASE_MS$)/.test(e[0]) && e[1] !== undefined)),
  };
}

export class BenchService {
  readonly dir: string;
  readonly dataDir: string;
  readonly redis: RedisServer;
  readonly cluster: Cluster;
  readonly database: TestDatabase | undefined;
  private closing: Promise<void> | undefined;

  private constructor(dir: string, redis: RedisServer, cluster: Cluster, database: TestDatabase | undefined) {
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.redis = redis;
    this.cluster = cluster;
    this.database = database;
  }

  /** Prefills the store, then starts Redis, the API and the workers on it. */
  static async start(s: Scenario, opts: ServiceOptions): Promise<BenchService> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `agg-bench-${s.name}-`));
    const dataDir = path.join(dir, 'data');
    let database: TestDatabase | undefined;
    if (opts.store === 'sqlite') {
      await prefilledDir({ events: s.prefill, ids: s.ids, into: dataDir, cacheDir: RESULTS, log: (l) => progress(l, true) });
    } else {
      const template = await prefilledDatabase({ events: s.prefill, ids: s.ids, log: (l) => progress(l, true) });
      database = await createTestDatabase({ prefix: 'agg_bench', ...(template && { template }) });
    }
    settle();
    const redis = await startRedisServer({ dir: path.join(dir, 'redis'), appendfsync: opts.appendfsync });
    const cluster = await startCluster({
      redisUrl: redis.url,
      workers: s.workers,
      dataDir,
      store: opts.store,
      ...(database && { databaseUrl: database.url }),
      logDir: path.join(dir, 'logs'),
      env: serviceEnv(s, opts),
    }).catch(async (err: unknown) => {
      await redis.stop();
      await database?.drop();
      throw err;
    });
    return new BenchService(dir, redis, cluster, database);
  }

  /** The service's Node processes (Redis left out), by name. */
  nodePids(): Record<string, number | undefined> {
    return Object.fromEntries(Object.entries(this.pids()).filter(([name]) => name !== 'redis'));
  }

  /** The processes whose CPU and memory are measured, by name (undefined: not running). */
  pids(): Record<string, number | undefined> {
    return {
      api: this.cluster.api.child.pid,
      ...Object.fromEntries(this.cluster.workers.map((w, i) => [`worker-${i + 1}`, w.child.pid])),
      redis: this.redis.pid(),
    };
  }

  /** Everything down and removed: the processes, Redis, the database, the directory. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.cluster.destroy();
      await this.redis.stop();
      await this.database?.drop();
      fs.rmSync(this.dir, { recursive: true, force: true });
    })();
    return this.closing;
  }
}
