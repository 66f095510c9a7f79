// The HTTP API as a Koa app: routes and the middleware that gives every error one shape.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../shared/config.js';
import { HttpError, codeForStatus, unavailable } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { PublishJobData } from '../../shared/queue.js';
import type { Event } from '../../shared/schema.js';
import type { Store } from '../../shared/store.js';
import { liveWorkers } from '../../shared/workers.js';
import type { Backlog } from './backlog.js';
import type { Enqueuer } from './enqueue.js';
import { registerOperatorRoutes } from './operator.js';
import { bodyKind, createBodyParser, itemsOf, validateBatch } from './publish.js';
import { readStats } from './stats.js';

export type ApiDeps = {
  config: Config;
  log: Logger;
  store: Store;
  queue: Queue<PublishJobData>;
  redis: Redis;
  enqueuer: Enqueuer;
  backlog: Backlog;
  startedAt: number;
  /** False while starting and once shutdown has begun. */
  isReady: () => boolean;
};

/** `accepted`: the events of an answered publish, for its metrics. */
type State = { log: Logger; accepted?: readonly Event[] };

export const MAX_EVENTS_LIMIT = 1000;
export const DEFAULT_EVENTS_LIMIT = 100;

function errorBody(ctx: Context, err: unknown, log: Logger): void {
  const e = err as Partial<HttpError> & { status?: number; statusCode?: number; headers?: Record<string, string> };
  const status = typeof e.status === 'number' && e.status >= 400 && e.status < 600 ? e.status : 500;
  const exposed = status < 500 || e.expose === true;
  if (!exposed) log.error({ err }, 'request failed');
  ctx.status = status;
  for (const [k, v] of Object.entries(e.headers ?? {})) ctx.set(k, v);
  ctx.body = {
    error: err instanceof HttpError ? err.code : codeForStatus(status),
    message: exposed && e.message ? e.message : 'internal error',
    ...(err instanceof HttpError ? err.extra : {}),
  };
}

function discardBody(ctx: Context): Promise<void> {
  return new Promise((resolve) => {
    const req = ctx.req;
    if (req.complete) return resolve();
    req.once('end', resolve);
    req.once('close', resolve);
    req.once('error', () => resolve());
    req.resume();
  });
}

function sameSecret(given: string, expected: string): boolean {
  // Hash both so the comparison takes the same time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function createApp(deps: ApiDeps): Koa<State> {
  const { config, store } = deps;
  const app = new Koa<State>({ proxy: false });
  const router = new Router<State>();

  const requireKey = async (ctx: Context, next: Next) => {
    if (config.apiKey !== undefined) {
      const header = ctx.get('authorization');
      const m = /^Bearer\s+(.+)$/i.exec(header);
      if (!m || !sameSecret(m[1]!.trim(), config.apiKey)) {
        ctx.set('WWW-Authenticate', 'Bearer');
        throw new HttpError(401, 'unauthorized', header ? 'the API key is wrong' : 'send Authorization: Bearer <API_KEY>');
      }
    }
    await next();
  };
  const requireKeyForReads = async (ctx: Context, next: Next) => {
    if (config.apiKeyReads) await requireKey(ctx, next);
    else await next();
  };

  const parseBody = createBodyParser(config.maxBodyBytes);

  // /metrics, /openapi.json, /docs and the dashboard at /.
  const operator = registerOperatorRoutes(router, {
    store,
    queue: deps.queue,
    redis: deps.redis,
    queueName: config.queueName,
    startedAt: deps.startedAt,
    requireKeyForReads,
    openapi: {
      maxBatchEvents: config.maxBatchEvents,
      maxBodyBytes: config.maxBodyBytes,
      maxEventsLimit: MAX_EVENTS_LIMIT,
      defaultEventsLimit: DEFAULT_EVENTS_LIMIT,
    },
  });

  // Bytes of request bodies being read or held right now. Each request reserves what it may
  // grow to (its Content-Length, or the whole limit when that is unknown or compressed), so
  // the API's memory stays bounded however many clients send at once.
  let inflightBytes = 0;
  const publish = async (ctx: Context) => {
    const kind = bodyKind(ctx);
    const declared = Number(ctx.get('content-length'));
    const sized = ctx.get('content-encoding') === '' && Number.isSafeInteger(declared) && declared >= 0;
    const reserve = sized ? Math.min(declared, config.maxBodyBytes) : config.maxBodyBytes;
    if (inflightBytes > 0 && inflightBytes + reserve > config.maxInflightBytes) {
      // Read and drop the body, unbuffered, so the client hears the 503 instead of a reset.
      await discardBody(ctx);
      throw unavailable('too many request bytes in flight; retry later', 1);
    }
    inflightBytes += reserve;
    try {
      await parseBody(ctx, () => Promise.resolve());
      const events = validateBatch(itemsOf(kind, ctx.request.body), config.maxBatchEvents);
      if (deps.backlog.full()) {
        throw unavailable(`the backlog is over its limit of ${config.maxBacklogJobs} jobs; retry later`, 5);
      }
      const job = await deps.enqueuer.enqueue(events);
      ctx.status = 202;
      ctx.body = { status: 'accepted', accepted: events.length, job };
      ctx.state.accepted = events;
    } finally {
      inflightBytes -= reserve;
    }
  };
  router.post('/publish', operator.observePublish, requireKey, publish);
  router.post('/publish/batch', operator.observePublish, requireKey, publish);

  router.get('/events', requireKeyForReads, (ctx) => {
    const q = ctx.query;
    const one = (name: string): string | undefined => {
      const v = q[name];
      if (Array.isArray(v)) throw new HttpError(400, 'bad_request', `${name} may be given once`);
      return v;
    };
    const topic = one('topic');
    const limitText = one('limit');
    const afterText = one('after');
    if (topic !== undefined && topic === '') throw new HttpError(400, 'bad_request', 'topic must not be empty');
    let limit = DEFAULT_EVENTS_LIMIT;
    if (limitText !== undefined) {
      limit = /^\d{1,7}$/.test(limitText) ? Number(limitText) : NaN;
      if (!(limit >= 1 && limit <= MAX_EVENTS_LIMIT)) {
        throw new HttpError(400, 'bad_request', `limit must be a whole number from 1 to ${MAX_EVENTS_LIMIT}`);
      }
    }
    let after = 0;
    if (afterText !== undefined) {
      after = /^\d{1,16}$/.test(afterText) ? Number(afterText) : NaN;
      if (!Number.isSafeInteger(after)) {
        throw new HttpError(400, 'bad_request', 'after must be a seq: a whole number, 0 or more');
      }
    }
    const rows = store.listEvents({ topic, after, limit: limit + 1 });
    const events = rows.slice(0, limit);
    ctx.body = {
      topic: topic ?? null,
      count: events.length,
      events,
      next_after: rows.length > limit ? events[events.length - 1]!.seq : null,
    };
  });

  router.get('/stats', requireKeyForReads, async (ctx) => {
    ctx.body = await readStats({
      store,
      queue: deps.queue,
      redis: deps.redis,
      queueName: config.queueName,
      startedAt: deps.startedAt,
    });
  });

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/ready', async (ctx) => {
    const checks: Record<string, string> = {};
    try {
      store.ping();
      checks.store = 'ok';
    } catch (err) {
      checks.store = `failing: ${(err as Error).message}`;
    }
    try {
      await deps.redis.ping();
      checks.redis = 'ok';
    } catch (err) {
      checks.redis = `failing: ${(err as Error).message}`;
    }
    const workers = await liveWorkers(deps.redis, config.queueName).catch(() => null);
    const ready = deps.isReady() && checks.store === 'ok' && checks.redis === 'ok';
    ctx.status = ready ? 200 : 503;
    ctx.body = {
      ...(ready
        ? { status: 'ready' }
        : {
            error: 'not_ready',
            message: deps.isReady()
              ? Object.entries(checks)
                  .filter(([, v]) => v !== 'ok')
                  .map(([k, v]) => `${k} ${v}`)
                  .join('; ')
              : 'the API is starting or stopping',
          }),
      checks,
      workers: workers?.map((w) => ({ id: w.id, status: w.status, error: w.error })) ?? null,
    };
    if (!ready) ctx.set('Retry-After', '1');
  });

  // Request ids: the producer's own, or this process' prefix and a counter (unique, and
  // cheaper than a UUID per request). The child logger is made only when a line is written.
  const idPrefix = randomUUID().slice(0, 8);
  let requests = 0;
  app.use(async (ctx, next) => {
    const reqId = ctx.get('x-request-id') || `${idPrefix}-${(++requests).toString(36)}`;
    let child: Logger | undefined;
    Object.defineProperty(ctx.state, 'log', { get: () => (child ??= deps.log.child({ reqId })), configurable: true });
    ctx.set('X-Request-Id', reqId);
    const started = performance.now();
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new HttpError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      errorBody(ctx, err, ctx.state.log);
    }
    if (deps.log.isLevelEnabled('debug')) {
      ctx.state.log.debug(
        { method: ctx.method, path: ctx.path, status: ctx.status, ms: +(performance.now() - started).toFixed(2) },
        'request',
      );
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  // Koa's own error listener would print stack traces for errors already answered.
  app.silent = true;
  return app;
}
