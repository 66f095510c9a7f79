// The API process: wires config, store, queue and the Koa app, and owns shutdown.
import http from 'node:http';
import { ConfigError, loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { createQueue, createRedis, unsafeRedisSettings } from '../../shared/queue.js';
import { openStore } from '../../shared/store.js';
import { createShutdown } from '../../shared/shutdown.js';
import { createApp } from './app.js';
import { watchBacklog } from './backlog.js';
import { createEnqueuer } from './enqueue.js';

const config = (() => {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`api: ${err.message}`);
    process.exit(1);
  }
})();

const startedAt = Date.now();
const log = createLogger({ name: 'api', level: config.logLevel });
const store = openStore({
  dataDir: config.dataDir,
  cacheMb: config.sqliteCacheMb,
  synchronous: config.sqliteSynchronous,
  busyTimeoutMs: config.sqliteBusyTimeoutMs,
});
const redis = createRedis(config.redisUrl, 'api', config.redisTimeoutMs);
let redisDown = false;
redis.on('error', (err: Error) => {
  if (!redisDown) log.warn({ err: err.message }, 'redis unreachable; publishes answer 503 until it is back');
  redisDown = true;
});
redis.on('ready', () => {
  if (redisDown) log.info('redis reachable again');
  redisDown = false;
  void unsafeRedisSettings(redis).then((problems) => {
    if (problems.length === 0) return;
    for (const problem of problems) log.fatal(problem);
    console.error(`api: refusing to run: ${problems.join('; ')}`);
    process.exit(1);
  });
});

const queue = createQueue(config.queueName, redis);
queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
const backlog = watchBacklog(queue, config.maxBacklogJobs, log);
const enqueuer = createEnqueuer({
  queue,
  lingerMs: config.coalesceMs,
  maxEvents: config.coalesceMaxEvents,
  timeoutMs: config.redisTimeoutMs,
  log,
});

let ready = false;
const app = createApp({ config, log, store, queue, redis, enqueuer, backlog, startedAt, isReady: () => ready });
// A slow or silent client cannot hold a socket forever. Node enforces both timeouts only
// when it sweeps its connections (every 30 s by default), so sweep every second.
// https://nodejs.org/docs/latest-v20.x/api/http.html#httpcreateserveroptions-requestlistener
const handle = app.callback();
const server = http.createServer(
  {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: Math.min(1_000, config.headersTimeoutMs),
  },
  (req, res) => {
    // server.close() leaves busy keep-alive sockets open, and a busy producer keeps them
    // busy: once stopping, each answer ends its connection.
    if (!ready) res.setHeader('Connection', 'close');
    void handle(req, res);
  },
);
// Past the cap a new socket is closed at once: memory stays bounded by
// MAX_CONNECTIONS x MAX_BODY_BYTES whatever the number of clients.
server.maxConnections = config.maxConnections;
let dropped = 0;
server.on('drop', () => {
  if (dropped++ % 1000 === 0) log.warn({ maxConnections: config.maxConnections, dropped }, 'connection cap reached: closing new sockets');
});

const shutdown = createShutdown(
  log,
  [
    { name: 'not-ready', run: () => (ready = false) },
    {
      name: 'http',
      run: () =>
        new Promise<void>((resolve) => {
          // Sockets that were busy when closing began go idle one by one: close them then.
          const sweep = setInterval(() => server.closeIdleConnections(), 100);
          server.close(() => {
            clearInterval(sweep);
            resolve();
          });
          server.closeIdleConnections();
        }),
    },
    { name: 'enqueue', run: () => enqueuer.flush() },
    { name: 'backlog', run: () => backlog.close() },
    { name: 'queue', run: () => queue.close() },
    { name: 'redis', run: () => redis.quit() },
    { name: 'store', run: () => store.close() },
  ],
  10_000,
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    log.info({ signal }, 'stopping');
    void shutdown().then((clean) => {
      log.info({ clean }, 'stopped');
      process.exit(clean ? 0 : 1);
    });
  });
}

server.on('error', (err) => {
  log.fatal({ err }, 'cannot listen');
  process.exit(1);
});
server.listen(config.port, config.host, () => {
  ready = true;
  const address = server.address();
  log.info(
    { port: typeof address === 'object' && address ? address.port : config.port, host: config.host, queue: config.queueName, dataDir: config.dataDir, auth: config.apiKey !== undefined },
    'api listening',
  );
});
