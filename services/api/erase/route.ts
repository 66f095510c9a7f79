// DELETE /events/{topic}/{event_id}: erasure of one stored event, payload included. The
// identity stays known, so later copies are still dropped as duplicates, and the lookup
// answers 410 `erased`. Guarded by API_KEY, like publishing: it changes the store.
import type Router from '@koa/router';
import type { Logger } from '../../../shared/log.js';
import type { Store } from '../../../shared/store/port.js';
import type { Guard } from '../http/auth.js';
import { HttpError } from '../http/errors.js';
import { identityOf } from '../read/lookup.js';

export function registerEraseRoute<S extends { log: Logger }>(router: Router<S>, deps: { store: Store; requireKey: Guard }): void {
  router.delete('/events/:topic/*event_id', deps.requireKey, async (ctx) => {
    const { topic, eventId } = identityOf(ctx.path);
    const outcome = await deps.store.eraseEvent(topic, eventId);
    const what = `event ${JSON.stringify(eventId)} under topic ${JSON.stringify(topic)}`;
    switch (outcome.status) {
      case 'erased':
        // The identity and the request id (the child logger carries it), never the payload.
        ctx.state.log.info({ topic, event_id: eventId, seq: outcome.seq }, 'event erased');
        ctx.status = 204;
        return;
      case 'not_found':
        throw new HttpError(404, 'not_found', `no ${what} was ever stored`);
      case 'gone':
        if (outcome.reason === 'expired') throw new HttpError(410, 'expired', `the ${what} is older than EVENT_RETENTION and deleted already`);
        throw new HttpError(410, 'erased', `the ${what} was erased already`);
    }
  });
}
