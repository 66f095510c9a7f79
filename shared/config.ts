// The whole configuration, read from the environment once and validated in one place.
// Library code receives the frozen object; only a main.ts passes process.env in.
// One table says each variable once: its parser and bounds, its default, which process reads
// it and what it means. The checks and the Config type come from it, and docs/operations.md's
// table is checked against it (test/unit/config.test.ts).
import * as v from 'valibot';
import { bytes, duration, int, key, nonEmpty, parser, refused, url, type Parser } from './env-parsers.js';

/** How long a worker's hold on a job lasts unrenewed: a killed worker's jobs wait about 1.5x this. */
export const DEFAULT_JOB_LOCK_MS = 5_000;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

type Process = 'api' | 'worker';

export type Variable = {
  /** Its field in Config; a variable without one is refused. */
  key?: string;
  parse: Parser<unknown>;
  /** Unset (or empty) means this; none: the value is undefined. */
  default?: number | string;
  /** What unset means, when there is no default. */
  unset?: string;
  /** Set but empty is a configuration error, not "unset": an empty key would open what its operator meant to close. */
  emptyIsSet?: true;
  /** A configuration error names it but never shows its value (a URL may carry a password). */
  secret?: true;
  usedBy: readonly Process[];
  meaning: string;
};

const API = ['api'] as const;
const WORKER = ['worker'] as const;
const BOTH = ['api', 'worker'] as const;

export const VARIABLES = {
  PORT: { key: 'port', parse: int(0, 65535), default: 8080, usedBy: API, meaning: 'where the API listens' },
  HOST: { key: 'host', parse: nonEmpty, default: '0.0.0.0', usedBy: API, meaning: 'the address the API binds' },
  REDIS_URL: {
    key: 'redisUrl',
    parse: url(/^rediss?:\/\//, '`redis://` or `rediss://`', 'REDIS_URL must be a redis:// or rediss:// URL'),
    default: 'redis://127.0.0.1:6379',
    secret: true,
    usedBy: BOTH,
    meaning:
      "the queue's Redis (`npm start` with it unset runs a private one). Redis must keep `maxmemory-policy noeviction`: a process refuses a Redis that could evict jobs",
  },
  QUEUE_NAME: {
    key: 'queueName',
    parse: parser('1 to 100 of `A-Z a-z 0-9 . _ -`', () =>
      v.pipe(v.string(), v.trim(), v.regex(/^[A-Za-z0-9_.-]{1,100}$/, 'QUEUE_NAME must be 1 to 100 letters, digits, dots, dashes or underscores')),
    ),
    default: 'events',
    usedBy: BOTH,
    meaning: 'the BullMQ queue: two deployments can share one Redis',
  },
  DATA_DIR: {
    key: 'dataDir',
    parse: nonEmpty,
    default: './data',
    usedBy: BOTH,
    meaning: 'where the SQLite store lives, shared by the API and the workers (a local filesystem: WAL does not work over NFS)',
  },
  // Checked for its shape here; the store says whether the database answers (shared/store/postgres).
  DATABASE_URL: {
    key: 'databaseUrl',
    parse: url(
      /^postgres(ql)?:\/\//,
      '`postgres://` or `postgresql://`',
      'DATABASE_URL must be a postgres:// or postgresql:// URL, e.g. postgres://user:password@host:5432/database',
    ),
    secret: true,
    usedBy: BOTH,
    meaning: 'unset: SQLite in `DATA_DIR`; set: that PostgreSQL database',
  },
  DATABASE_POOL_SIZE: { key: 'databasePoolSize', parse: int(1, 1000), default: 10, usedBy: BOTH, meaning: 'PostgreSQL connections one process keeps at most' },
  WORKER_CONCURRENCY: { key: 'workerConcurrency', parse: int(1, 1000), default: 16, usedBy: WORKER, meaning: 'jobs one worker holds at once (they share group commits)' },
  API_KEY: { key: 'apiKey', parse: key, emptyIsSet: true, secret: true, usedBy: API, meaning: 'the key writes need (see [Read and write keys](#read-and-write-keys))' },
  READ_API_KEY: {
    key: 'readApiKey',
    parse: key,
    emptyIsSet: true,
    secret: true,
    usedBy: API,
    meaning: 'the key reads of event data need. The old `API_KEY_READS` is refused',
  },
  // Replaced by READ_API_KEY: refused, so a deployment that set it does not silently open its reads.
  API_KEY_READS: {
    parse: refused('API_KEY_READS is replaced by READ_API_KEY: set READ_API_KEY to the key reads need'),
    secret: true,
    usedBy: API,
    meaning: 'refused',
  },
  LOG_LEVEL: {
    key: 'logLevel',
    parse: parser(LOG_LEVELS.map((l) => `\`${l}\``).join(' '), () =>
      v.pipe(v.string(), v.trim(), v.toLowerCase(), v.picklist(LOG_LEVELS, `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`)),
    ),
    default: 'info',
    usedBy: BOTH,
    meaning: 'JSON logs on stdout (pipe through `pino-pretty` to read them)',
  },
  MAX_BODY_BYTES: { key: 'maxBodyBytes', parse: bytes(1024, 1024 ** 3), default: 16 * 1024 * 1024, usedBy: API, meaning: 'a larger body, counted after decompression, answers `413`' },
  MAX_BATCH_EVENTS: { key: 'maxBatchEvents', parse: int(1, 1_000_000), default: 10_000, usedBy: API, meaning: 'more events in one request answer `413`' },
  MAX_BACKLOG_JOBS: {
    key: 'maxBacklogJobs',
    parse: int(1, 100_000_000),
    default: 20_000,
    usedBy: API,
    meaning: 'with more jobs waiting in Redis, publishes answer `503 unavailable` with `Retry-After`',
  },
  MAX_CONNECTIONS: {
    key: 'maxConnections',
    parse: int(1, 1_000_000),
    default: 1024,
    usedBy: API,
    meaning: 'open sockets; at the cap idle ones are closed first, a new one only when all are busy',
  },
  MAX_INFLIGHT_BYTES: {
    key: 'maxInflightBytes',
    parse: bytes(1024, 64 * 1024 ** 3),
    default: 256 * 1024 * 1024,
    usedBy: API,
    meaning: 'request body bytes the API holds at once, counted as they arrive; past it, `503 unavailable`',
  },
  HEADERS_TIMEOUT_MS: { key: 'headersTimeoutMs', parse: int(100, 600_000), default: 15_000, usedBy: API, meaning: 'a client slower than this to send its headers gets `408`' },
  REQUEST_TIMEOUT_MS: { key: 'requestTimeoutMs', parse: int(100, 3_600_000), default: 60_000, usedBy: API, meaning: 'a client slower than this to send its whole request gets `408`' },
  MAX_SUBSCRIBERS: {
    key: 'maxSubscribers',
    parse: int(0, 1_000_000),
    default: 1000,
    usedBy: API,
    meaning: 'live streams one API process serves; past it `GET /events/stream` answers `503` with `Retry-After`',
  },
  MAX_WAITERS: {
    key: 'maxWaiters',
    parse: int(0, 1_000_000),
    default: 1000,
    usedBy: API,
    meaning: 'publishes with `?wait` one API process holds while they wait; past it they answer `503 too_many_waiters` with `Retry-After`',
  },
  STREAM_KEEPALIVE_MS: { key: 'streamKeepaliveMs', parse: int(50, 600_000), default: 15_000, usedBy: API, meaning: 'an idle stream gets a comment line at least this often' },
  STREAM_MAX_BUFFER_BYTES: {
    key: 'streamMaxBufferBytes',
    parse: bytes(1024, 1024 ** 3),
    default: 4 * 1024 * 1024,
    usedBy: API,
    meaning: 'unread output a subscriber may leave before it is disconnected (it resumes with `Last-Event-ID`)',
  },
  KEEP_ALIVE_TIMEOUT_MS: {
    key: 'keepAliveTimeoutMs',
    parse: int(100, 600_000),
    default: 5000,
    usedBy: API,
    meaning: "an idle keep-alive socket is closed after this (plus Node's one second)",
  },
  COALESCE_MS: { key: 'coalesceMs', parse: int(0, 1000), default: 2, usedBy: API, meaning: 'how long the API gathers small concurrent requests into one job' },
  COALESCE_MAX_EVENTS: { key: 'coalesceMaxEvents', parse: int(1, 100_000), default: 1000, usedBy: API, meaning: 'events in one gathered job at most' },
  COALESCE_MAX_BYTES: {
    key: 'coalesceMaxBytes',
    parse: bytes(1024, 1024 ** 3),
    default: 1024 * 1024,
    usedBy: API,
    meaning: 'body bytes in one gathered job at most; a heavier request travels alone',
  },
  REDIS_TIMEOUT_MS: {
    key: 'redisTimeoutMs',
    parse: int(50, 60_000),
    default: 3000,
    usedBy: API,
    meaning: 'a Redis command slower than this fails the publish with `503` (`outcome_unknown` when the add was sent)',
  },
  JOB_LOCK_MS: {
    key: 'jobLockMs',
    parse: int(1000, 600_000),
    default: DEFAULT_JOB_LOCK_MS,
    usedBy: WORKER,
    meaning: "a dead worker's jobs are taken over by another within about 1.5 x this",
  },
  WORKER_BATCH_JOBS: { key: 'workerBatchJobs', parse: int(1, 10_000), default: 64, usedBy: WORKER, meaning: 'jobs in one group commit at most' },
  WORKER_BATCH_EVENTS: { key: 'workerBatchEvents', parse: int(1, 1_000_000), default: 20_000, usedBy: WORKER, meaning: 'events in one group commit at most' },
  WORKER_LINGER_MS: {
    key: 'workerLingerMs',
    parse: int(0, 1000),
    default: 20,
    usedBy: WORKER,
    meaning: 'how long a group gathers jobs before it commits (each commit costs the store a transaction, whatever its size)',
  },
  WORKER_WAIT_LINGER_MS: {
    key: 'workerWaitLingerMs',
    parse: int(0, 1000),
    default: 2,
    usedBy: WORKER,
    meaning: 'how long a group holding a job whose producer waits for its results (`?wait`) gathers at most (never above `WORKER_LINGER_MS`)',
  },
  WORKER_CONTENDED_LINGER_MS: {
    key: 'workerContendedLingerMs',
    parse: int(0, 1000),
    default: 25,
    usedBy: WORKER,
    meaning:
      "the linger while workers contend for SQLite's write lock (never below `WORKER_LINGER_MS`; set it equal to turn it off); jobs whose producer waits (`?wait`) never wait longer than `WORKER_WAIT_LINGER_MS`",
  },
  SQLITE_WRITER_LEASE_MS: {
    key: 'sqliteWriterLeaseMs',
    parse: int(0, 600_000),
    default: 10_000,
    usedBy: WORKER,
    meaning:
      'on SQLite, one worker takes jobs at a time and the others stand by; one takes over within half a second when the writer stops or dies, and when it hangs, once it has not renewed its lease for this long; `0`: every worker takes jobs',
  },
  SQLITE_CACHE_MB: { key: 'sqliteCacheMb', parse: int(1, 65_536), default: 16, usedBy: BOTH, meaning: 'SQLite page cache per connection' },
  SQLITE_BUSY_TIMEOUT_MS: {
    key: 'sqliteBusyTimeoutMs',
    parse: int(0, 600_000),
    default: 10_000,
    usedBy: BOTH,
    meaning: 'how long others may hold the write lock before a worker reports `store_error` (it keeps retrying)',
  },
  SQLITE_KEY_FILTER_MAX_MB: {
    key: 'sqliteKeyFilterMaxMb',
    parse: int(0, 65_536),
    default: 256,
    usedBy: WORKER,
    meaning:
      "the most a worker's in-memory filter of stored keys may hold (about 1.9 bytes per stored identity); past it the worker keeps none and looks every key up ([retention.md](retention.md#worker-start-and-memory))",
  },
  EVENT_RETENTION: { key: 'eventRetentionMs', parse: duration, unset: 'forever', usedBy: BOTH, meaning: 'see [retention.md](retention.md)' },
  SQLITE_SYNCHRONOUS: {
    key: 'sqliteSynchronous',
    parse: parser('`FULL` or `NORMAL`', () =>
      v.pipe(v.string(), v.trim(), v.toUpperCase(), v.picklist(['FULL', 'NORMAL'], 'SQLITE_SYNCHRONOUS must be FULL or NORMAL')),
    ),
    default: 'FULL',
    usedBy: BOTH,
    meaning: '`NORMAL` survives process crashes but may lose the last acknowledged commits on power loss',
  },
} as const satisfies Record<string, Variable>;

type Table = typeof VARIABLES;
type ValueOf<E> = E extends { parse: Parser<infer T> } ? (E extends { default: unknown } ? T : T | undefined) : never;

export type Config = Readonly<{ [N in keyof Table as Table[N] extends { key: infer K extends string } ? K : never]: ValueOf<Table[N]> }>;

const ENTRIES = Object.entries(VARIABLES) as [string, Variable][];

const EnvSchema = v.object(
  Object.fromEntries(
    ENTRIES.map(([name, e]) => [name, e.default === undefined ? v.optional(e.parse.schema(name)) : v.optional(e.parse.schema(name), String(e.default))]),
  ),
);

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads the configuration from an environment object; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means "unset", as docker-compose's `VAR=` and shells' `VAR= cmd` intend;
  // except a key: an empty one would open what its operator meant to close.
  const present = Object.fromEntries(
    ENTRIES.map(([name, e]) => [name, env[name], e.emptyIsSet] as const)
      .filter(([, value, emptyIsSet]) => value !== undefined && (value !== '' || emptyIsSet === true))
      .map(([name, value]) => [name, value]),
  );
  const result = v.safeParse(EnvSchema, present);
  if (!result.success) {
    throw new ConfigError(
      result.issues.map((issue) => {
        const name = v.getDotPath(issue) ?? '?';
        // A URL may carry a password, a key is a secret: never echo them.
        const got = (VARIABLES as Record<string, Variable>)[name]?.secret ? '' : ` (got ${JSON.stringify(present[name])})`;
        return `${name}: ${issue.message}${got}`;
      }),
    );
  }
  const values = result.output as Record<string, unknown>;
  return Object.freeze(Object.fromEntries(ENTRIES.flatMap(([name, e]) => (e.key === undefined ? [] : [[e.key, values[name]]])))) as Config;
}
