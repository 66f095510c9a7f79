// GET /health (the process runs) and GET /ready (Redis and the store answer).
import type Router from '@koa/router';
import type { Redis } from 'ioredis';
import { errorMessage } from '../../../shared/errors.js';
import { liveWorkers } from '../../../shared/heartbeat.js';
import type { Store } from '../../../shared/store/port.js';

type HealthDeps = {
  store: Store;
  redis: Redis;
  queueName: string;
  /** False while starting and once shutdown has begun. */
  isReady: () => boolean;
};

export function registerHealthRoutes<S>(router: Router<S>, deps: HealthDeps): void {
  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/ready', async (ctx) => {
    const checks: Record<string, string> = {};
    const check = async (name: string, probe: () => Promise<unknown>) => {
      try {
        await probe();
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = `failing: ${errorMessage(err)}`;
      }
    };
    await Promise.all([check('store', () => deps.store.ping()), check('redis', () => deps.redis.ping())]);
    const workers = await liveWorkers(deps.redis, deps.queueName).catch(() => null);
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
      workers: workers?.map((w) => ({ id: w.id, status: w.status, error: w.error, ...(w.role !== undefined && { role: w.role }) })) ?? null,
    };
    if (!ready) ctx.set('Retry-After', '1');
  });
}
