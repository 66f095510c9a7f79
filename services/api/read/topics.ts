// GET /topics: every topic with a stored event, by name, a page at a time, with its counts.
// /stats lists at most STATS_TOPICS_LIMIT names; this pages through any number of them,
// each page one indexed range read in the store.
import type Router from '@koa/router';
import type { Store } from '../../../shared/store/port.js';
import type { Guard } from '../http/auth.js';
import { HttpError } from '../http/errors.js';
import { queryParam } from './events.js';

export const MAX_TOPICS_LIMIT = 1000;
export const DEFAULT_TOPICS_LIMIT = 100;

export function registerTopicRoutes<S>(router: Router<S>, deps: { store: Store; requireReadKey: Guard }): void {
  router.get('/topics', deps.requireReadKey, async (ctx) => {
    const after = queryParam(ctx, 'after');
    if (after === '') throw new HttpError(400, 'bad_request', 'after must be a topic name (the next_after of the page before)');
    const limitText = queryParam(ctx, 'limit');
    let limit = DEFAULT_TOPICS_LIMIT;
    if (limitText !== undefined) {
      limit = /^\d{1,7}$/.test(limitText) ? Number(limitText) : NaN;
      if (!(limit >= 1 && limit <= MAX_TOPICS_LIMIT)) {
        throw new HttpError(400, 'bad_request', `limit must be a whole number from 1 to ${MAX_TOPICS_LIMIT}`);
      }
    }
    // One more than asked: whether there is a next page, without a second query.
    const rows = await deps.store.listTopics({ after, limit: limit + 1 });
    const topics = rows.slice(0, limit).map((t) => ({ topic: t.topic, events: t.events, dropped: t.dropped, conflicts: t.conflicts }));
    ctx.body = { topics, next_after: rows.length > limit ? topics[topics.length - 1]!.topic : null };
  });
}
