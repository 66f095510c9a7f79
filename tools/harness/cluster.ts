// The service as real processes, the way docker-compose lays it out: one API and N workers
// sharing a Redis and a data directory (or a database). Used by the integration tests, the
// benchmark and the chaos run.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/redis-server.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { ROOT } from './root.js';
import { waitFor } from './wait.js';

const ENTRY = {
  api: path.join(ROOT, 'dist/services/api/main.js'),
  worker: path.join(ROOT, 'dist/services/worker/main.js'),
};

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export type Proc = {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<Exit>;
  alive(): boolean;
  /** SIGTERM, then wait for the exit. */
  term(): Promise<Exit>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<Exit>;
  log(): string;
};

export type ClusterOptions = {
  redisUrl: string;
  workers?: number;
  env?: Record<string, string>;
  dataDir?: string;
  queueName?: string;
  logDir?: string;
  /** postgres: a fresh database of its own, dropped by destroy(); sqlite (default): dataDir. */
  store?: StoreKind;
  /** With store 'postgres': this database instead of a fresh one (the caller drops it). */
  databaseUrl?: string;
  // --- hosts: processes as on hosts of their own (test/integration/hosts.test.ts) ---
  /** The address the API listens on and is reached at; 127.0.0.1 unless set. */
  apiHost?: string;
  /** Where each process runs; called at each start with the environment it would get. */
  place?: (kind: ServiceKind, name: string, env: Readonly<Record<string, string>>) => Placement;
  // --- end hosts ---
};

type ServiceKind = 'api' | 'worker';

/** One process' host: what it is started through, and what it sees differently. */
export type Placement = {
  /**
   * The command the service is started through, e.g. ['ip', 'netns', 'exec', 'ns']. It must
   * exec the service in place, so that the child's pid, and its signals, are the service's.
   */
  command?: string[];
  /** Overrides the cluster's environment for this process alone. */
  env?: Record<string, string>;
};

export type StoreKind = 'sqlite' | 'postgres';

export type Cluster = {
  baseUrl: string;
  dataDir: string;
  store: StoreKind;
  /** The PostgreSQL database, with store 'postgres'. */
  database: TestDatabase | undefined;
  queueName: string;
  env: Record<string, string>;
  api: Proc;
  workers: Proc[];
  /** API processes started beside `api` by startExtraApi. */
  extraApis: Proc[];
  startApi(): Promise<Proc>;
  /**
   * Starts one more API process on a port of its own, against the same Redis and store, as
   * a second replica; `extraEnv` overrides the cluster's environment for it alone.
   */
  startExtraApi(extraEnv?: Record<string, string>): Promise<{ proc: Proc; baseUrl: string }>;
  /** Starts one more worker; `extraEnv` overrides the cluster's environment for it alone. */
  startWorker(extraEnv?: Record<string, string>): Promise<Proc>;
  /** SIGTERM to every process still running; resolves with their exits. */
  stop(): Promise<Exit[]>;
  /** The last lines of every process' log, for a failing test's message. */
  logTail(lines?: number): string;
  /** Stops everything and removes the data directory. */
  destroy(): Promise<void>;
};

function spawnService(kind: ServiceKind, name: string, env: Record<string, string>, logDir: string, command: string[] = []): Proc {
  if (!fs.existsSync(ENTRY[kind])) throw new Error(`${ENTRY[kind]} is missing: run npm run build first`);
  const logFile = path.join(logDir, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const argv = [...command, process.execPath, ENTRY[kind]];
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', out, out], cwd: ROOT });
  fs.closeSync(out);
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const send = async (signal: NodeJS.Signals) => {
    if (alive()) child.kill(signal);
    return exited;
  };
  return {
    name,
    child,
    logFile,
    exited,
    alive,
    term: () => send('SIGTERM'),
    kill: () => send('SIGKILL'),
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
  };
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'agg-data-'));
  const logDir = opts.logDir ?? path.join(dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const queueName = opts.queueName ?? `test-${randomUUID()}`;
  const port = await freePort();
  const store = opts.store ?? 'sqlite';
  const database = store === 'postgres' && opts.databaseUrl === undefined ? await createTestDatabase() : undefined;
  const databaseUrl = opts.databaseUrl ?? database?.url;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? os.tmpdir(),
    REDIS_URL: opts.redisUrl,
    QUEUE_NAME: queueName,
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: opts.apiHost ?? '127.0.0.1',
    LOG_LEVEL: 'info',
    // Short locks: a killed worker's jobs come back within seconds, not half a minute.
    JOB_LOCK_MS: '4000',
    ...(store === 'postgres' && databaseUrl !== undefined && { DATABASE_URL: databaseUrl }),
    ...opts.env,
  };
  const baseUrl = `http://${opts.apiHost ?? '127.0.0.1'}:${port}`;
  let apiCount = 0;
  let workerCount = 0;
  const start = (kind: ServiceKind, name: string, procEnv: Record<string, string>) => {
    const placed = opts.place?.(kind, name, procEnv);
    return spawnService(kind, name, { ...procEnv, ...placed?.env }, logDir, placed?.command);
  };

  const untilHealthy = async (api: Proc, url: string) =>
    waitFor(
      async () => {
        if (!api.alive()) throw new Error(`api exited:\n${api.log().slice(-2000)}`);
        const res = await fetch(`${url}/health`).catch(() => undefined);
        return res?.ok;
      },
      { timeoutMs: 20_000, what: 'the API to answer /health' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${api.log().slice(-2000)}`);
    });
  const all = () => [cluster.api, ...cluster.extraApis, ...cluster.workers].filter(Boolean);

  const cluster: Cluster = {
    baseUrl,
    dataDir,
    store,
    database,
    queueName,
    env,
    api: undefined as unknown as Proc,
    workers: [],
    extraApis: [],
    async startApi() {
      const api = start('api', `api-${++apiCount}`, env);
      cluster.api = api;
      await untilHealthy(api, baseUrl);
      return api;
    },
    async startExtraApi(extraEnv = {}) {
      const extraPort = await freePort();
      const api = spawnService('api', `api-${++apiCount}`, { ...env, ...extraEnv, PORT: String(extraPort) }, logDir);
      cluster.extraApis.push(api);
      const url = `http://127.0.0.1:${extraPort}`;
      await untilHealthy(api, url);
      return { proc: api, baseUrl: url };
    },
    async startWorker(extraEnv = {}) {
      const worker = start('worker', `worker-${++workerCount}`, { ...env, ...extraEnv });
      cluster.workers.push(worker);
      // A worker is up once its heartbeat is in Redis, which the API lists in /ready.
      await waitFor(
        async () => {
          if (!worker.alive()) throw new Error(`worker exited:\n${worker.log().slice(-2000)}`);
          const res = await fetch(`${baseUrl}/ready`).catch(() => undefined);
          const body = (await res?.json().catch(() => undefined)) as { workers?: { id: string }[] } | undefined;
          return body?.workers?.some((w) => w.id.includes(`-${worker.child.pid}-`));
        },
        { timeoutMs: 20_000, what: 'a worker to start' },
      );
      return worker;
    },
    async stop() {
      return Promise.all(all().filter((p) => p.alive()).map((p) => p.term()));
    },
    logTail(lines = 30) {
      return all()
        .map((p) => `--- ${p.name}\n${p.log().split('\n').slice(-lines).join('\n')}`)
        .join('\n');
    },
    async destroy() {
      await Promise.all(all().filter((p) => p.alive()).map((p) => p.kill()));
      if (opts.dataDir === undefined) fs.rmSync(dataDir, { recursive: true, force: true });
      await database?.drop();
    },
  };

  try {
    await cluster.startApi();
    for (let i = 0; i < (opts.workers ?? 1); i++) await cluster.startWorker();
  } catch (err) {
    // Leave no process behind when the cluster cannot come up.
    await Promise.all([cluster.api, ...cluster.workers].filter((p) => p?.alive()).map((p) => p.kill()));
    await database?.drop();
    throw err;
  }
  return cluster;
}
