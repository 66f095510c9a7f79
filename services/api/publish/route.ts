// POST /publish and /publish/batch, one shell for both ways a request reaches them.
//
// Why two ways, and one shell: a one-event publish through Koa's context, router and
// middleware costs more than the publish itself, so the listener answers the exact paths
// beside Koa (lean.ts); the Koa routes stay for every other spelling the router accepts
// (`/PUBLISH`, `/publish/`, a query no plain parser reads alike) and keep GET /publish a
// 405 with its Allow header. Dropping the Koa routes would mean copying the router's
// matching and its 405s into lean.ts; keeping both means they must never differ, so
// neither holds any of the answer: `createPublishShell` is the whole request (API_KEY,
// `?wait`, body, validation, backlog, enqueue, the metrics' count, errors through
// errorAnswer) as a JsonAnswer, and each way only writes it, Koa through its shell and the
// lean path straight, both with http/json-answer.ts and http/request-context.ts.
import type { IncomingMessage } from 'node:http';
import type Router from '@koa/router';
import type { BearerCheck } from '../http/auth.js';
import { errorAnswer, unavailable } from '../http/errors.js';
import type { JsonAnswer } from '../http/json-answer.js';
import { answerWith, type ShellState } from '../http/koa-shell.js';
import type { RequestContext } from '../http/request-context.js';
import type { Backlog } from './backlog.js';
import { bodyKind, itemsOf, validateBatch } from './body.js';
import type { Enqueuer } from './enqueue.js';
import { inflightBytes, readBody } from './read-body.js';
import { answerAfterWait, waitSeconds, type Registration, type ResultWaiter } from './results.js';

type PublisherDeps = {
  maxBodyBytes: number;
  maxBatchEvents: number;
  maxInflightBytes: number;
  maxBacklogJobs: number;
  backlog: Backlog;
  enqueuer: Enqueuer;
  results: ResultWaiter;
};

type ShellDeps = PublisherDeps & {
  checkKey: BearerCheck;
  /** The operator's metrics: every answer counted and timed, 401s and 503s included. */
  record: (status: number, seconds: number, acceptedTopics: readonly string[] | undefined) => void;
};

/** A successful publish: 202 accepted, or 200 with the results a `?wait` got in time. */
type PublishAnswer = { status: 200 | 202; body: Record<string, unknown>; acceptedTopics: readonly string[] };

/** The request (its body unread), its Content-Type ('' when absent) and its `?wait` seconds; throws an HttpError for any refusal. */
type Publisher = (req: IncomingMessage, contentType: string, wait: number | undefined) => Promise<PublishAnswer>;

/** A publish request, whichever way it came (its query string '' when none), as the answer to write. */
export type PublishShell = (req: IncomingMessage, request: RequestContext, query: string) => Promise<JsonAnswer>;

function createPublisher(deps: PublisherDeps): Publisher {
  const inflight = inflightBytes(deps.maxInflightBytes);

  /** The request's events; the body's bytes live only in here, its parsed events after. */
  const readEvents = async (req: IncomingMessage, contentType: string) => {
    const kind = bodyKind(contentType);
    const body = await readBody(req, deps.maxBodyBytes, inflight);
    try {
      return { events: validateBatch(await itemsOf(kind, body.text, deps.maxBatchEvents), deps.maxBatchEvents), held: body.held };
    } catch (err) {
      inflight.give(body.held);
      throw err;
    }
  };

  return async (req, contentType, wait) => {
    const started = performance.now();
    const { events, held } = await readEvents(req, contentType);
    // Past the enqueue only the count and the topics are needed: the payloads are let go as
    // soon as their job is built, not held until the answer (a burst of large payloads).
    const count = events.length;
    const topics = events.map((e) => e.topic);
    // The body's bytes stay counted until the job is in Redis: the events they became are held till then.
    let holding = true;
    try {
      if (deps.backlog.full()) {
        throw unavailable(`the backlog is over its limit of ${deps.maxBacklogJobs} jobs; retry later`, 5);
      }
      let waiting: Registration | undefined;
      const placement = await deps.enqueuer
        .enqueue(events, { bytes: held, ...(wait === undefined ? {} : { onPlaced: (p) => (waiting = deps.results.register(p, count)) }) })
        .catch((err: unknown) => {
          waiting?.cancel();
          throw err;
        });
      // From here on the events are durably queued: whatever the wait gives, the answer is a success.
      inflight.give(held);
      holding = false;
      const accepted = { accepted: count, job: placement.job };
      if (waiting === undefined) return { status: 202, body: { status: 'accepted', ...accepted }, acceptedTopics: topics };
      const timeLeftMs = Math.max(0, wait! * 1000 - (performance.now() - started));
      return { ...(await answerAfterWait(waiting, timeLeftMs, accepted)), acceptedTopics: topics };
    } finally {
      if (holding) inflight.give(held);
    }
  };
}

/** One shell for both ways, and one publisher: they share its bytes-in-flight bound. */
export function createPublishShell(deps: ShellDeps): PublishShell {
  const publisher = createPublisher(deps);
  return async (req, request, query) => {
    try {
      deps.checkKey(req.headers.authorization ?? '');
      const done = await publisher(req, req.headers['content-type'] ?? '', waitSeconds(query));
      deps.record(done.status, request.seconds(), done.acceptedTopics);
      return done;
    } catch (err) {
      const answer = errorAnswer(err, request.log);
      deps.record(answer.status, request.seconds(), undefined);
      return answer;
    }
  };
}

/** The Koa routes: every spelling of the paths that lean.ts leaves to Koa. */
export function registerPublishRoutes<S extends ShellState>(router: Router<S>, shell: PublishShell): void {
  for (const path of ['/publish', '/publish/batch']) {
    router.post(path, async (ctx) => answerWith(ctx, await shell(ctx.req, ctx.state.request, ctx.querystring)));
  }
}
