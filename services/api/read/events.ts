// GET /events: stored events by seq cursor, one copy per identity.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Store } from '../../../shared/store/port.js';
import type { Guard } from '../http/auth.js';
import { HttpError } from '../http/errors.js';

export const MAX_EVENTS_LIMIT = 1000;
export const DEFAULT_EVENTS_LIMIT = 100;

/** A query parameter given at most once. */
export function queryParam(ctx: Context, name: string): string | undefined {
  const v = ctx.query[name];
  if (Array.isArray(v)) throw new HttpError(400, 'bad_request', `${name} may be given once`);
  return v;
}

/** `after`: a seq, 0 or more; absent means 0. */
export function parseSeq(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const seq = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(seq)) throw new HttpError(400, 'bad_request', `${name} must be a seq: a whole number, 0 or more`);
  return seq;
}

/** `topic`: absent for every topic; empty is a mistake, not "every topic". */
export function parseTopic(ctx: Context): string | undefined {
  const topic = queryParam(ctx, 'topic');
  if (topic === '') throw new HttpError(400, 'bad_request', 'topic must not be empty');
  return topic;
}

export function registerEventRoutes<S>(router: Router<S>, deps: { store: Store; requireReadKey: Guard }): void {
  router.get('/events', deps.requireReadKey, async (ctx) => {
    const topic = parseTopic(ctx);
    const limitText = queryParam(ctx, 'limit');
    let limit = DEFAULT_EVENTS_LIMIT;
    if (limitText !== undefined) {
      limit = /^\d{1,7}$/.test(limitText) ? Number(limitText) : NaN;
      if (!(limit >= 1 && limit <= MAX_EVENTS_LIMIT)) {
        throw new HttpError(400, 'bad_request', `limit must be a whole number from 1 to ${MAX_EVENTS_LIMIT}`);
      }
    }
    const after = parseSeq(queryParam(ctx, 'after'), 'after') ?? 0;
    const rows = await deps.store.listEvents({ topic, after, limit: limit + 1 });
    const events = rows.slice(0, limit);
    ctx.body = {
      topic: topic ?? null,
      count: events.length,
      events,
      next_after: rows.length > limit ? events[events.length - 1]!.seq : null,
    };
  });
}
