// POST /publish and /publish/batch: bytes in flight, body, validation, backlog, enqueue.
import type { Context } from 'koa';
import type Router from '@koa/router';
import type { Event } from '../../../shared/schema.js';
import { HttpError, unavailable } from '../http/errors.js';
import type { Guard } from '../http/auth.js';
import type { Backlog } from './backlog.js';
import { bodyKind, createBodyParser, itemsOf, validateBatch } from './body.js';
import type { Enqueuer } from './enqueue.js';
import type { Registration, ResultWaiter } from './results.js';

export type PublishDeps = {
  maxBodyBytes: number;
  maxBatchEvents: number;
  maxInflightBytes: number;
  maxBacklogJobs: number;
  backlog: Backlog;
  enqueuer: Enqueuer;
  results: ResultWaiter;
  /** API_KEY's guard. */
  requireKey: Guard;
  /** Put first, so that every answer is counted and timed (the operator's metrics). */
  observe: (ctx: Context, next: () => Promise<void>) => Promise<void>;
};

/** `accepted`: the events of an answered publish, for its metrics. */
export type PublishState = { accepted?: readonly Event[] };

/** The longest a producer may wait for its results, in seconds. */
export const MAX_WAIT_SECONDS = 30;

/** `?wait=s`: absent, or a number of seconds with 0 < s <= 30. */
export function parseWait(ctx: Context): number | undefined {
  const raw = ctx.query.wait;
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? undefined : raw.trim();
  const seconds = text !== undefined && /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds > 0 && seconds <= MAX_WAIT_SECONDS)) {
    throw new HttpError(400, 'invalid_query', `wait must be a number of seconds above 0 and at most ${MAX_WAIT_SECONDS} (got ${JSON.stringify(raw)})`);
  }
  return seconds;
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

export function registerPublishRoutes<S extends PublishState>(router: Router<S>, deps: PublishDeps): void {
  const parseBody = createBodyParser(deps.maxBodyBytes);

  // Bytes of request bodies being read or held right now. Each request reserves what it may
  // grow to (its Content-Length, or the whole limit when that is unknown or compressed), so
  // the API's memory stays bounded however many clients send at once.
  let inflightBytes = 0;
  const publish = async (ctx: Context) => {
    const started = performance.now();
    const wait = parseWait(ctx);
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
    let reserved = true;
    try {
      await parseBody(ctx, () => Promise.resolve());
      const events = validateBatch(itemsOf(kind, ctx.request.body), deps.maxBatchEvents);
      if (deps.backlog.full()) {
        throw unavailable(`the backlog is over its limit of ${deps.maxBacklogJobs} jobs; retry later`, 5);
      }
      let waiting: Registration | undefined;
      const placement = await deps.enqueuer
        .enqueue(events, wait === undefined ? {} : { onPlaced: (p) => (waiting = deps.results.register(p, events.length)) })
        .catch((err: unknown) => {
          waiting?.cancel();
          throw err;
        });
      (ctx.state as PublishState).accepted = events;
      // From here on the events are durably queued: whatever the wait gives, the answer is a success.
      inflightBytes -= reserve;
      reserved = false;
      const results = await waiting?.wait(Math.max(0, wait! * 1000 - (performance.now() - started)));
      if (results !== undefined && results.length === events.length) {
        ctx.status = 200;
        ctx.body = {
          status: 'processed',
          accepted: events.length,
          job: placement.job,
          results: results.map((r, index) => ({ index, status: r.status, seq: r.seq })),
        };
        return;
      }
      ctx.status = 202;
      ctx.body = { status: 'accepted', accepted: events.length, job: placement.job };
    } finally {
      if (reserved) inflightBytes -= reserve;
    }
  };
  for (const path of ['/publish', '/publish/batch']) router.post(path, deps.observe, deps.requireKey, publish);
}
