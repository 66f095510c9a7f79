// The API process: wires config, store, queue and the Koa app, and owns shutdown.
import http from 'node:http';
import { createLogger } from '../../shared/log.js';
import { configOrExit, exitOnUnsafeRedis, stopOnSignals } from '../../shared/process.js';
import { createQueue, createRedis } from '../../shared/queue.js';
import { openStore } from '../../shared/store/open.js';
import { createShutdown } from '../../shared/shutdown.js';
import { createApi } from './app.js';
import { answerClientErrors } from './http/client-errors.js';
import { capConnections, closeIdleAfterPendingReads } from './http/connections.js';
import { handleExpect } from './http/expect.js';
import { watchBacklog } from './publish/backlog.js';
import { createEnqueuer } from './publish/enqueue.js';
import { subscribeCommits } from './commits.js';
import { createResultWaiter } from './publish/results.js';
import { createFanout } from './read/fanout.js';

const config = configOrExit('api');
const startedAt = Date.now();
const log = createLogger({ name: 'api', level: config.logLevel });
const store = await openStore(config, 'api', log).catch((err: unknown) => {
  log.fatal({ err }, 'cannot open the store');
  console.error(`api: cannot open the store: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
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
});
exitOnUnsafeRedis(redis, log, 'api');

const queue = createQueue(config.queueName, redis);
queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
const backlog = watchBacklog(queue, config.maxBacklogJobs, log);
const enqueuer = createEnqueuer({
  queue,
  lingerMs: config.coalesceMs,
  maxEvents: config.coalesceMaxEvents,
  maxBytes: config.coalesceMaxBytes,
  timeoutMs: config.redisTimeoutMs,
  log,
});

// One subscription to the workers' commit notices, for both of its listeners: producers
// waiting for their verdicts, and live streams.
const commits = subscribeCommits(redis, config.queueName, log);
const results = createResultWaiter(commits);
const fanout = createFanout({
  store,
  feed: commits,
  log,
  keepaliveMs: config.streamKeepaliveMs,
  maxBufferBytes: config.streamMaxBufferBytes,
  maxSubscribers: config.maxSubscribers,
});

let ready = false;
const { listener: handle } = createApi({ config, log, store, queue, redis, enqueuer, results, backlog, fanout, startedAt, isReady: () => ready });
// A slow or silent client cannot hold a socket forever. Node enforces both timeouts only
// when it sweeps its connections (every 30 s by default), so sweep every second.
// https://nodejs.org/docs/latest-v20.x/api/http.html#httpcreateserveroptions-requestlistener
// Both bound receiving the request only: the sweep skips a connection once its request is
// complete, so a stream (a GET, complete at once) may last as long as it is read.
const server = http.createServer(
  {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, config.headersTimeoutMs),
  },
  (req, res) => {
    // server.close() leaves busy keep-alive sockets open, and a busy producer keeps them
    // busy: once stopping, each answer ends its connection.
    if (!ready) res.setHeader('Connection', 'close');
    handle(req, res);
  },
);
// Past the cap, idle sockets make room first; a new socket is closed only when all are
// busy: memory stays bounded by MAX_CONNECTIONS whatever the number of clients.
capConnections(server, config.maxConnections, log);
closeIdleAfterPendingReads(server);
handleExpect(server, { apiKey: config.apiKey, readApiKey: config.readApiKey, maxBodyBytes: config.maxBodyBytes, log });
answerClientErrors(server, log);

const shutdown = createShutdown(
  log,
  [
    { name: 'not-ready', run: () => (ready = false) },
    // Producers waiting for results get their 202 now: their events are queued already.
    { name: 'results', run: () => results.close() },
    // Open streams never finish by themselves: end them, or closing the server would wait.
    { name: 'streams', run: () => fanout.close() },
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
    { name: 'notices', run: () => commits.close() },
    { name: 'redis', run: () => redis.quit() },
    { name: 'store', run: () => store.close() },
  ],
  10_000,
);

stopOnSignals(log, shutdown);

server.on('error', (err) => {
  log.fatal({ err }, 'cannot listen');
  process.exit(1);
});
server.listen(config.port, config.host, () => {
  ready = true;
  const address = server.address();
  log.info(
    { port: typeof address === 'object' && address ? address.port : config.port, host: config.host, queue: config.queueName, store: store.location, auth: config.apiKey !== undefined, readAuth: config.readApiKey !== undefined },
    'api listening',
  );
});
