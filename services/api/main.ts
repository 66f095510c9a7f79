// The API process: wires config, store, queue and the Koa app, and owns shutdown.
// Its parts are built in order and closed in the reverse order (shared/shutdown.ts): each
// one is closed before what it uses, so a part closing can still finish its work.
import { createLogger } from '../../shared/log.js';
import { configOrExit, exitOnUnsafeRedis, logRedisOutages, stopOnSignals } from '../../shared/process.js';
import { closeRedis, createQueue, createRedis } from '../../shared/queue.js';
import { openStore } from '../../shared/store/open.js';
import { Parts } from '../../shared/shutdown.js';
import { createApi } from './app.js';
import { ApiServer } from './http/server.js';
import { watchBacklog } from './publish/backlog.js';
import { createEnqueuer } from './publish/enqueue.js';
import { subscribeCommits } from './commits.js';
import { createResultWaiter } from './publish/results.js';
import { createFanout } from './read/fanout.js';

const config = configOrExit('api');
const startedAt = Date.now();
const log = createLogger({ name: 'api', level: config.logLevel });
const parts = new Parts(log, 10_000);
stopOnSignals(log, () => parts.stop());

const store = parts.add(
  'store',
  await openStore(config, 'api', log).catch((err: unknown) => {
    log.fatal({ err }, 'cannot open the store');
    console.error(`api: cannot open the store: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }),
);
const redis = createRedis(config.redisUrl, 'api', config.redisTimeoutMs);
parts.add('redis', { close: () => closeRedis(redis) });
logRedisOutages(redis, log, 'publishes answer 503 until it is back');
exitOnUnsafeRedis(redis, log, 'api');

// One subscription to the workers' commit notices, for both of its listeners: producers
// waiting for their verdicts, and live streams.
const commits = parts.add('notices', subscribeCommits(redis, config.queueName, log));
const queue = parts.add('queue', createQueue(config.queueName, redis));
queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
const backlog = parts.add('backlog', watchBacklog(queue, config.maxBacklogJobs, log));
// Closing flushes: the events of requests still gathering are sent before the queue closes.
const enqueuer = parts.add(
  'enqueue',
  createEnqueuer({
    queue,
    lingerMs: config.coalesceMs,
    maxEvents: config.coalesceMaxEvents,
    maxBytes: config.coalesceMaxBytes,
    timeoutMs: config.redisTimeoutMs,
    log,
    onAdd: () => backlog.added(),
  }),
);
// Closing waits for the requests under way: the parts they wait on close before it.
const server = parts.add('http', new ApiServer(config, log));
// Open streams never finish by themselves: they end before the server closes, or it would wait.
const fanout = parts.add(
  'streams',
  createFanout({
    store,
    feed: commits,
    log,
    keepaliveMs: config.streamKeepaliveMs,
    maxBufferBytes: config.streamMaxBufferBytes,
    maxSubscribers: config.maxSubscribers,
  }),
);
// Producers waiting for results get their 202 when stopping begins: their events are queued already.
const results = parts.add('results', createResultWaiter(commits));

// Closing stops the dashboard's sampling, which reads the store, the queue and Redis.
const api = parts.add(
  'rates',
  createApi({ config, log, store, queue, redis, enqueuer, results, backlog, fanout, startedAt, isReady: () => server.ready }),
);
server.server.on('error', (err) => {
  log.fatal({ err }, 'cannot listen');
  process.exit(1);
});
const port = await server.listen(api, config.port, config.host);
// First to close: /ready answers 503 and answers end their connections while the rest stops.
parts.add('not-ready', { close: () => server.notReady() });
log.info(
  { port, host: config.host, queue: config.queueName, store: store.location, auth: config.apiKey !== undefined, readAuth: config.readApiKey !== undefined },
  'api listening',
);
