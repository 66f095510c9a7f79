// GET /events/{topic}/{event_id}: one identity explained, its stored copy and every copy
// processed after it. Both parts are URL-encoded; an event_id may hold `/`, so everything
// after the topic's segment is the id.
import type Router from '@koa/router';
import type { Store } from '../../../shared/store/port.js';
import type { Guard } from '../http/auth.js';
import { HttpError } from '../http/errors.js';

const PREFIX = '/events/';

/** The identity in a path; decoded strictly, so a broken escape is the client's 400, not a miss. */
function identityOf(path: string): { topic: string; eventId: string } {
  const rest = path.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const decode = (part: string, name: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new HttpError(400, 'bad_request', `${name} is not valid URL-encoded UTF-8`);
    }
  };
  return { topic: decode(rest.slice(0, slash), 'topic'), eventId: decode(rest.slice(slash + 1), 'event_id') };
}

export function registerLookupRoute<S>(router: Router<S>, deps: { store: Store; requireReadKey: Guard }): void {
  router.get('/events/:topic/*event_id', deps.requireReadKey, async (ctx) => {
    const { topic, eventId } = identityOf(ctx.path);
    const history = await deps.store.getEvent(topic, eventId);
    if (history === undefined) {
      throw new HttpError(404, 'not_found', `no event ${JSON.stringify(eventId)} was ever stored under topic ${JSON.stringify(topic)}`);
    }
    ctx.body = history;
  });
}
