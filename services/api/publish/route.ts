// POST /publish and /publish/batch: bytes in flight, body, validation, backlog, enqueue.
import type { Context } from 'koa';
import type Router from '@koa/router';
import type { Event } from '../../../shared/schema.js';
import { unavailable } from '../http/errors.js';
import type { Guard } from '../http/auth.js';
import type { Backlog } from './backlog.js';
import { bodyKind, createBodyParser, itemsOf, validateBatch } from './body.js';
import type { Enqueuer } from './enqueue.js';

export type PublishDeps = {
  maxBodyBytes: number;
  maxBatchEvents: number;
  maxInflightBytes: number;
  maxBacklogJobs: number;
  backlog: Backlog;
  enqueuer: Enqueuer;
  /** API_KEY's guard. */
  requireKey: Guard;
  /** Put first, so that every answer is counted and timed (the operator's metrics). */
  observe: (ctx: Context, next: () => Promise<void>) => Promise<void>;
};

/** `accepted`: the events of an answered publish, for its metrics. */
export type PublishState = { accepted?: readonly Event[] };

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

export function registerPublishRoutes<S extends PublishState>(router: Router<S>, deps: PublishDeps): void {
  const parseBody = createBodyParser(deps.maxBodyBytes);

  // Bytes of request bodies being read or held right now. Each request reserves what it may
  // grow to (its Content-Length, or the whole limit when that is unknown or compressed), so
  // the API's memory stays bounded however many clients send at once.
  let inflightBytes = 0;
  const publish = async (ctx: Context) => {
    const kind = bodyKind(ctx);
    const declared = Number(ctx.get('content-length'));
    const sized = ctx.get('content-encoding') === '' && Number.isSafeInteger(declared) && declared >= 0;
    const reserve = sized ? Math.min(declared, deps.maxBodyBytes) : deps.maxBodyBytes;
    if (inflightBytes > 0 && inflightBytes + reserve > deps.maxInflightBytes) {
      // Read and drop the body, unbuffered, so the client hears the 503 instead of a reset.
      await discardBody(ctx);
      throw unavailable('too many request bytes in flight; retry later', 1);
    }
    inflightBytes += reserve;
    try {
      await parseBody(ctx, () => Promise.resolve());
      const events = validateBatch(itemsOf(kind, ctx.request.body), deps.maxBatchEvents);
      if (deps.backlog.full()) {
        throw unavailable(`the backlog is over its limit of ${deps.maxBacklogJobs} jobs; retry later`, 5);
      }
      const job = await deps.enqueuer.enqueue(events);
      ctx.status = 202;
      ctx.body = { status: 'accepted', accepted: events.length, job };
      (ctx.state as PublishState).accepted = events;
    } finally {
      inflightBytes -= reserve;
    }
  };
  for (const path of ['/publish', '/publish/batch']) router.post(path, deps.observe, deps.requireKey, publish);
}
