// GET /events/stream: stored events as Server-Sent Events, from a start point on, live.
// The route checks the request and hands the response to the fan-out (fanout.ts); until
// then any error is an ordinary JSON answer, afterwards Koa leaves the response alone.
import type Router from '@koa/router';
import type { Guard } from '../http/auth.js';
import { unavailable } from '../http/errors.js';
import { parseSeq, parseTopic, queryParam } from './events.js';
import type { Fanout } from './fanout.js';

export function registerStreamRoute<S>(router: Router<S>, deps: { fanout: Fanout | undefined; requireReadKey: Guard }): void {
  router.get('/events/stream', deps.requireReadKey, async (ctx) => {
    const topic = parseTopic(ctx);
    const after = parseSeq(queryParam(ctx, 'after'), 'after');
    // What a reconnecting EventSource sends, and it wins over the URL it reconnects to
    // (which still holds the first `after`). An empty header is no header.
    const lastIdText = ctx.get('last-event-id').trim();
    const lastId = lastIdText === '' ? undefined : parseSeq(lastIdText, 'Last-Event-ID');
    if (ctx.method === 'HEAD') {
      // No body can follow a HEAD answer: a stream would only hold a slot.
      ctx.status = 200;
      ctx.type = 'text/event-stream';
      ctx.set('Cache-Control', 'no-cache');
      return;
    }
    if (deps.fanout === undefined) throw unavailable('live streams are not served by this process', 5);
    await deps.fanout.open(ctx.res, { topic, after: lastId ?? after });
    // The fan-out writes the response from here on; Koa must neither answer nor close it.
    ctx.respond = false;
  });
}
