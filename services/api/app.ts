// The HTTP API as a Koa app. It mounts the three parts, each in its folder: publishing
// (publish/), reading (read/) and the operator's view (operator/), inside one shell
// (http/koa-shell.ts: a request id, a logger and one answer writer for every request,
// one shape for every error), which the lean publish path shares.
import Koa from 'koa';
import Router from '@koa/router';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/log.js';
import type { QueuedJobData } from '../../shared/queue.js';
import type { Store } from '../../shared/store/port.js';
import { bearerCheck, requireBearer } from './http/auth.js';
import { isPublish } from './http/budgets.js';
import { errorAnswer } from './http/errors.js';
import { writeJson } from './http/json-answer.js';
import { koaShell, type ShellState } from './http/koa-shell.js';
import { rejectNul } from './http/nul.js';
import { requestContexts } from './http/request-context.js';
import type { EarlyAnswer } from './http/server.js';
import { registerEraseRoute } from './erase/route.js';
import { registerIngestRoutes } from './ingest/routes.js';
import { registerOperatorRoutes } from './operator/routes.js';
import type { Backlog } from './publish/backlog.js';
import type { Enqueuer } from './publish/enqueue.js';
import type { ResultWaiter } from './publish/results.js';
import { leanPublish, type Listener } from './publish/lean.js';
import { createPublishShell, registerPublishRoutes, type PublishShell } from './publish/route.js';
import { DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT, registerEventRoutes } from './read/events.js';
import type { Fanout } from './read/fanout.js';
import { registerHealthRoutes } from './read/health.js';
import { registerLookupRoute } from './read/lookup.js';
import { readStats } from './read/stats.js';
import { registerStreamRoute } from './read/stream.js';
import { registerTopicRoutes } from './read/topics.js';

type ApiDeps = {
  config: Config;
  log: Logger;
  store: Store;
  queue: Queue<QueuedJobData>;
  redis: Redis;
  enqueuer: Enqueuer;
  results: ResultWaiter;
  backlog: Backlog;
  startedAt: number;
  /** Feeds GET /events/stream; absent in an app built only to look at its routes (it then answers 503). */
  fanout?: Fanout;
  /** False while starting and once shutdown has begun. */
  isReady: () => boolean;
};

/** The Koa app alone, every route on it (the publish routes included). */
export function createApp(deps: ApiDeps): Koa<ShellState> {
  return createApi(deps).app;
}

/** The operator's view (operator/): GET /, /metrics, /openapi.json and /docs; its close() stops the dashboard's sampling. */
function registerOperator(router: Router<ShellState>, deps: ApiDeps) {
  const { config } = deps;
  return registerOperatorRoutes(router, {
    store: deps.store,
    queue: deps.queue,
    redis: deps.redis,
    queueName: config.queueName,
    startedAt: deps.startedAt,
    hideTopics: config.readApiKey !== undefined,
    openapi: {
      maxBatchEvents: config.maxBatchEvents,
      maxBodyBytes: config.maxBodyBytes,
      maxEventsLimit: MAX_EVENTS_LIMIT,
      defaultEventsLimit: DEFAULT_EVENTS_LIMIT,
    },
  });
}

/** Publishing (publish/, ingest/): POST /publish, /publish/batch and the ingest routes; the shell the lean path shares. */
function registerPublishing(router: Router<ShellState>, deps: ApiDeps, operator: ReturnType<typeof registerOperator>): PublishShell {
  const { config } = deps;
  // Both ways in to POST /publish answer through this one shell (publish/route.ts).
  const publish = createPublishShell({
    maxBodyBytes: config.maxBodyBytes,
    maxBatchEvents: config.maxBatchEvents,
    maxInflightBytes: config.maxInflightBytes,
    maxBacklogJobs: config.maxBacklogJobs,
    backlog: deps.backlog,
    enqueuer: deps.enqueuer,
    results: deps.results,
    checkKey: bearerCheck(config.apiKey, 'API_KEY'),
    record: operator.recordPublish,
  });
  registerPublishRoutes(router, publish);
  registerIngestRoutes(router, { config, backlog: deps.backlog, enqueuer: deps.enqueuer, observe: operator.observePublish });
  return publish;
}

/** What is stored (read/, erase/): the events, their stream, topics, /stats, the erasure, and /health and /ready. */
function registerStoreRoutes(router: Router<ShellState>, deps: ApiDeps): void {
  const { config, store } = deps;
  const requireKey = requireBearer(config.apiKey, 'API_KEY');
  const requireReadKey = requireBearer(config.readApiKey, 'READ_API_KEY');
  // Before any /events/:topic/... route, so that `stream` is never read as a topic.
  registerStreamRoute(router, { fanout: deps.fanout, requireReadKey });
  registerEventRoutes(router, { store, requireReadKey });
  registerLookupRoute(router, { store, requireReadKey });
  registerEraseRoute(router, { store, requireKey });
  registerTopicRoutes(router, { store, requireReadKey });
  router.get('/stats', requireReadKey, async (ctx) => {
    ctx.body = await readStats({
      store,
      queue: deps.queue,
      redis: deps.redis,
      queueName: config.queueName,
      startedAt: deps.startedAt,
    });
  });
  registerHealthRoutes(router, { store, redis: deps.redis, queueName: config.queueName, isReady: deps.isReady });
}

/**
 * The app, and the request listener to serve: it answers POST /publish and /publish/batch
 * on the lean path (publish/lean.ts) and hands every other request to the app. `close()`
 * stops the dashboard's per-second sampling (operator/rates.ts).
 */
export function createApi(deps: ApiDeps): { app: Koa<ShellState>; listener: Listener; answerEarly: EarlyAnswer; close(): Promise<void> } {
  const contexts = requestContexts(deps.log);
  const app = new Koa<ShellState>({ proxy: false });
  const router = new Router<ShellState>();
  const operator = registerOperator(router, deps);
  const publish = registerPublishing(router, deps, operator);
  registerStoreRoutes(router, deps);

  app.use(koaShell(contexts));
  app.use(rejectNul());
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  // Koa's own error listener would print stack traces for errors already answered.
  app.silent = true;
  const listener = leanPublish({ shell: publish, contexts, log: deps.log }, app.callback());
  const answerEarly: EarlyAnswer = (req, res, err, close) => {
    const request = contexts.open(req, res);
    const answer = errorAnswer(err, request.log);
    writeJson(res, answer, close);
    if (isPublish(req)) operator.recordPublish(answer.status, request.seconds(), undefined);
    request.answered(req.method ?? '', (req.url ?? '').split('?')[0]!, answer.status);
  };
  return { app, listener, answerEarly, close: () => operator.close() };
}
