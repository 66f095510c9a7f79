// POST /publish and /publish/batch: body (under the bytes-in-flight bound), validation,
// backlog, enqueue. `createPublisher` holds the whole answer and knows nothing of Koa, so
// the Koa routes and the lean path beside Koa (lean.ts) give the same answers by sharing it.
import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import type Router from '@koa/router';
import type { Event } from '../../../shared/schema.js';
import { HttpError, unavailable } from '../http/errors.js';
import type { Guard } from '../http/auth.js';
import type { Backlog } from './backlog.js';
import { bodyKind, itemsOf, validateBatch } from './body.js';
import type { Enqueuer } from './enqueue.js';
import { inflightBytes, readBody } from './read-body.js';
import type { Registration, ResultWaiter } from './results.js';

type PublisherDeps = {
  maxBodyBytes: number;
  maxBatchEvents: number;
  maxInflightBytes: number;
  maxBacklogJobs: number;
  backlog: Backlog;
  enqueuer: Enqueuer;
  results: ResultWaiter;
};

type PublishDeps = {
  /** API_KEY's guard. */
  requireKey: Guard;
  /** Put first, so that every answer is counted and timed (the operator's metrics). */
  observe: (ctx: Context, next: () => Promise<void>) => Promise<void>;
};

/** `accepted`: the events of an answered publish, for its metrics. */
export type PublishState = { accepted?: readonly Event[] };

/** A successful publish: 202 accepted, or 200 with the results a `?wait` got in time. */
type PublishAnswer = { status: 200 | 202; body: Record<string, unknown>; accepted: readonly Event[] };

/** The request (its body unread), its Content-Type ('' when absent) and its `wait` query value; throws an HttpError for any refusal. */
export type Publisher = (req: IncomingMessage, contentType: string, waitQuery: string | string[] | undefined) => Promise<PublishAnswer>;

/** The longest a producer may wait for its results, in seconds. */
const MAX_WAIT_SECONDS = 30;

/** `?wait=s`: absent, or a number of seconds with 0 < s <= 30. */
function parseWait(raw: string | string[] | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? undefined : raw.trim();
  const seconds = text !== undefined && /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds > 0 && seconds <= MAX_WAIT_SECONDS)) {
    throw new HttpError(400, 'invalid_query', `wait must be a number of seconds above 0 and at most ${MAX_WAIT_SECONDS} (got ${JSON.stringify(raw)})`);
  }
  return seconds;
}

export function createPublisher(deps: PublisherDeps): Publisher {
  const inflight = inflightBytes(deps.maxInflightBytes);

  /** The request's events; the body's bytes live only in here, its parsed events after. */
  const readEvents = async (req: IncomingMessage, contentType: string) => {
    const kind = bodyKind(contentType);
    const body = await readBody(req, deps.maxBodyBytes, inflight);
    try {
      return { events: await validateBatch(await itemsOf(kind, body.text, deps.maxBatchEvents), deps.maxBatchEvents), held: body.held };
    } catch (err) {
      inflight.give(body.held);
      throw err;
    }
  };

  return async (req, contentType, waitQuery) => {
    const started = performance.now();
    const wait = parseWait(waitQuery);
    const { events, held } = await readEvents(req, contentType);
    // The body's bytes stay counted until the job is in Redis: the events they became are held till then.
    let holding = true;
    try {
      if (deps.backlog.full()) {
        throw unavailable(`the backlog is over its limit of ${deps.maxBacklogJobs} jobs; retry later`, 5);
      }
      let waiting: Registration | undefined;
      const placement = await deps.enqueuer
        .enqueue(events, { bytes: held, ...(wait === undefined ? {} : { onPlaced: (p) => (waiting = deps.results.register(p, events.length)) }) })
        .catch((err: unknown) => {
          waiting?.cancel();
          throw err;
        });
      // From here on the events are durably queued: whatever the wait gives, the answer is a success.
      inflight.give(held);
      holding = false;
      if (waiting === undefined) return { status: 202, body: { status: 'accepted', accepted: events.length, job: placement.job }, accepted: events };
      const results = await waiting.wait(Math.max(0, wait! * 1000 - (performance.now() - started)));
      if (results !== undefined && results.length === events.length) {
        return {
          status: 200,
          body: {
            status: 'processed',
            accepted: events.length,
            job: placement.job,
            results: results.map((r, index) => ({ index, status: r.status, seq: r.seq })),
          },
          accepted: events,
        };
      }
      return { status: 202, body: { status: 'accepted', accepted: events.length, job: placement.job }, accepted: events };
    } finally {
      if (holding) inflight.give(held);
    }
  };
}

export function registerPublishRoutes<S extends PublishState>(router: Router<S>, publisher: Publisher, deps: PublishDeps): void {
  const publish = async (ctx: Context) => {
    const answer = await publisher(ctx.req, ctx.get('content-type'), ctx.query.wait);
    (ctx.state as PublishState).accepted = answer.accepted;
    ctx.status = answer.status;
    ctx.body = answer.body;
  };
  for (const path of ['/publish', '/publish/batch']) router.post(path, deps.observe, deps.requireKey, publish);
}
