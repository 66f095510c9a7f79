// The whole configuration, read from the environment once and validated in one place.
// Library code receives the frozen object; only a main.ts passes process.env in.
import * as v from 'valibot';

/** How long a worker's hold on a job lasts unrenewed: a killed worker's jobs wait about 1.5x this. */
export const DEFAULT_JOB_LOCK_MS = 5_000;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const int = (name: string, fallback: number, min: number, max: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^\d+$/, `${name} must be a whole number`),
      v.transform(Number),
      v.number(),
      v.minValue(min, `${name} must be at least ${min}`),
      v.maxValue(max, `${name} must be at most ${max}`),
    ),
    String(fallback),
  );

/** Milliseconds per unit of a duration (`90s`, `12h`, `30d`, `2w`). */
const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** At most about 100 years: beyond that a Date overflows long before anything expires. */
const MAX_DURATION_MS = 100 * 365 * 86_400_000;

const duration = (name: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^\d{1,12}[smhdw]$/i, `${name} must be a whole number and a unit: s, m, h, d or w (e.g. 90s, 12h, 30d)`),
      v.transform((s) => Number(s.slice(0, -1)) * DURATION_UNITS[s.slice(-1).toLowerCase()]!),
      v.number(),
      v.minValue(1000, `${name} must be at least 1s`),
      v.maxValue(MAX_DURATION_MS, `${name} must be at most 100 years`),
    ),
  );

const nonEmpty = (name: string, fallback: string) =>
  v.optional(v.pipe(v.string(), v.trim(), v.minLength(1, `${name} must not be empty`)), fallback);

const EnvSchema = v.object({
  PORT: int('PORT', 8080, 0, 65535),
  HOST: nonEmpty('HOST', '0.0.0.0'),
  REDIS_URL: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.check((s) => /^rediss?:\/\//.test(s) && URL.canParse(s), 'REDIS_URL must be a redis:// or rediss:// URL'),
    ),
    'redis://127.0.0.1:6379',
  ),
  QUEUE_NAME: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^[A-Za-z0-9_.-]{1,100}$/, 'QUEUE_NAME must be 1 to 100 letters, digits, dots, dashes or underscores'),
    ),
    'events',
  ),
  DATA_DIR: nonEmpty('DATA_DIR', './data'),
  // Checked for its shape here; the store says whether the database answers (shared/store/postgres).
  DATABASE_URL: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.check((s) => /^postgres(ql)?:\/\//.test(s) && URL.canParse(s), 'DATABASE_URL must be a postgres:// or postgresql:// URL, e.g. postgres://user:password@host:5432/database'),
    ),
  ),
  DATABASE_POOL_SIZE: int('DATABASE_POOL_SIZE', 10, 1, 1000),
  WORKER_CONCURRENCY: int('WORKER_CONCURRENCY', 16, 1, 1000),
  API_KEY: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1, 'API_KEY must not be empty when set'))),
  READ_API_KEY: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1, 'READ_API_KEY must not be empty when set'))),
  // Replaced by READ_API_KEY: refused, so a deployment that set it does not silently open its reads.
  API_KEY_READS: v.optional(v.custom<string>(() => false, 'API_KEY_READS is replaced by READ_API_KEY: set READ_API_KEY to the key reads need')),
  LOG_LEVEL: v.optional(
    v.pipe(v.string(), v.trim(), v.toLowerCase(), v.picklist(LOG_LEVELS, `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`)),
    'info',
  ),
  MAX_BODY_BYTES: int('MAX_BODY_BYTES', 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  MAX_BATCH_EVENTS: int('MAX_BATCH_EVENTS', 10_000, 1, 1_000_000),
  MAX_BACKLOG_JOBS: int('MAX_BACKLOG_JOBS', 20_000, 1, 100_000_000),
  MAX_CONNECTIONS: int('MAX_CONNECTIONS', 1024, 1, 1_000_000),
  MAX_INFLIGHT_BYTES: int('MAX_INFLIGHT_BYTES', 256 * 1024 * 1024, 1024, 64 * 1024 * 1024 * 1024),
  HEADERS_TIMEOUT_MS: int('HEADERS_TIMEOUT_MS', 15_000, 100, 600_000),
  REQUEST_TIMEOUT_MS: int('REQUEST_TIMEOUT_MS', 60_000, 100, 3_600_000),
  MAX_SUBSCRIBERS: int('MAX_SUBSCRIBERS', 1000, 0, 1_000_000),
  STREAM_KEEPALIVE_MS: int('STREAM_KEEPALIVE_MS', 15_000, 50, 600_000),
  STREAM_MAX_BUFFER_BYTES: int('STREAM_MAX_BUFFER_BYTES', 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  KEEP_ALIVE_TIMEOUT_MS: int('KEEP_ALIVE_TIMEOUT_MS', 5000, 100, 600_000),
  COALESCE_MS: int('COALESCE_MS', 2, 0, 1000),
  COALESCE_MAX_EVENTS: int('COALESCE_MAX_EVENTS', 1000, 1, 100_000),
  COALESCE_MAX_BYTES: int('COALESCE_MAX_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
  REDIS_TIMEOUT_MS: int('REDIS_TIMEOUT_MS', 3000, 50, 60_000),
  JOB_LOCK_MS: int('JOB_LOCK_MS', DEFAULT_JOB_LOCK_MS, 1000, 600_000),
  WORKER_BATCH_JOBS: int('WORKER_BATCH_JOBS', 64, 1, 10_000),
  WORKER_BATCH_EVENTS: int('WORKER_BATCH_EVENTS', 20_000, 1, 1_000_000),
  WORKER_LINGER_MS: int('WORKER_LINGER_MS', 2, 0, 1000),
  WORKER_CONTENDED_LINGER_MS: int('WORKER_CONTENDED_LINGER_MS', 25, 0, 1000),
  SQLITE_CACHE_MB: int('SQLITE_CACHE_MB', 16, 1, 65_536),
  SQLITE_BUSY_TIMEOUT_MS: int('SQLITE_BUSY_TIMEOUT_MS', 10_000, 0, 600_000),
  SQLITE_KEY_FILTER_MAX_MB: int('SQLITE_KEY_FILTER_MAX_MB', 256, 0, 65_536),
  EVENT_RETENTION: duration('EVENT_RETENTION'),
  SQLITE_SYNCHRONOUS: v.optional(
    v.pipe(v.string(), v.trim(), v.toUpperCase(), v.picklist(['FULL', 'NORMAL'], 'SQLITE_SYNCHRONOUS must be FULL or NORMAL')),
    'FULL',
  ),
});

type Env = v.InferOutput<typeof EnvSchema>;

export type Config = Readonly<{
  port: number;
  host: string;
  redisUrl: string;
  queueName: string;
  dataDir: string;
  /** Unset: SQLite in dataDir. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  workerConcurrency: number;
  apiKey: string | undefined;
  readApiKey: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  maxBodyBytes: number;
  maxBatchEvents: number;
  maxBacklogJobs: number;
  maxConnections: number;
  maxInflightBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxSubscribers: number;
  streamKeepaliveMs: number;
  streamMaxBufferBytes: number;
  keepAliveTimeoutMs: number;
  coalesceMs: number;
  coalesceMaxEvents: number;
  coalesceMaxBytes: number;
  redisTimeoutMs: number;
  jobLockMs: number;
  workerBatchJobs: number;
  workerBatchEvents: number;
  workerLingerMs: number;
  /** The linger while other workers contend for SQLite's write lock; never below workerLingerMs. */
  workerContendedLingerMs: number;
  sqliteCacheMb: number;
  sqliteBusyTimeoutMs: number;
  /** The most a worker's filter of stored keys may hold (SQLite); past it every key is looked up. */
  sqliteKeyFilterMaxMb: number;
  sqliteSynchronous: 'FULL' | 'NORMAL';
  /** Events older than this (by processed_at) are no longer served, and deleted; unset: kept forever. */
  eventRetentionMs: number | undefined;
}>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Keys: set but empty is a configuration error, not "no authentication". */
const KEYS = new Set(['API_KEY', 'READ_API_KEY']);
/** Values a configuration error names but never shows. */
const SECRETS = new Set(['DATABASE_URL', 'REDIS_URL', 'API_KEY', 'READ_API_KEY', 'API_KEY_READS']);

/** Reads the configuration from an environment object; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means "unset", as docker-compose's `VAR=` and shells' `VAR= cmd` intend;
  // except a key: an empty one would open what its operator meant to close.
  const present = Object.fromEntries(
    Object.keys(EnvSchema.entries)
      .map((k) => [k, env[k]] as const)
      .filter((entry): entry is readonly [string, string] => entry[1] !== undefined && (entry[1] !== '' || KEYS.has(entry[0]))),
  );
  const result = v.safeParse(EnvSchema, present);
  if (!result.success) {
    throw new ConfigError(
      result.issues.map((issue) => {
        const key = v.getDotPath(issue) ?? '?';
        // A URL may carry a password, a key is a secret: never echo them.
        const got = SECRETS.has(key) ? '' : ` (got ${JSON.stringify(present[key])})`;
        return `${key}: ${issue.message}${got}`;
      }),
    );
  }
  const e: Env = result.output;
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    queueName: e.QUEUE_NAME,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    workerConcurrency: e.WORKER_CONCURRENCY,
    apiKey: e.API_KEY,
    readApiKey: e.READ_API_KEY,
    logLevel: e.LOG_LEVEL,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxBatchEvents: e.MAX_BATCH_EVENTS,
    maxBacklogJobs: e.MAX_BACKLOG_JOBS,
    maxConnections: e.MAX_CONNECTIONS,
    maxInflightBytes: e.MAX_INFLIGHT_BYTES,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    maxSubscribers: e.MAX_SUBSCRIBERS,
    streamKeepaliveMs: e.STREAM_KEEPALIVE_MS,
    streamMaxBufferBytes: e.STREAM_MAX_BUFFER_BYTES,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    coalesceMs: e.COALESCE_MS,
    coalesceMaxEvents: e.COALESCE_MAX_EVENTS,
    coalesceMaxBytes: e.COALESCE_MAX_BYTES,
    redisTimeoutMs: e.REDIS_TIMEOUT_MS,
    jobLockMs: e.JOB_LOCK_MS,
    workerBatchJobs: e.WORKER_BATCH_JOBS,
    workerBatchEvents: e.WORKER_BATCH_EVENTS,
    workerLingerMs: e.WORKER_LINGER_MS,
    workerContendedLingerMs: e.WORKER_CONTENDED_LINGER_MS,
    sqliteCacheMb: e.SQLITE_CACHE_MB,
    sqliteBusyTimeoutMs: e.SQLITE_BUSY_TIMEOUT_MS,
    sqliteKeyFilterMaxMb: e.SQLITE_KEY_FILTER_MAX_MB,
    sqliteSynchronous: e.SQLITE_SYNCHRONOUS,
    eventRetentionMs: e.EVENT_RETENTION,
  });
}
