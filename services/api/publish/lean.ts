// POST /publish and /publish/batch answered beside Koa, straight on node:http: for a
// one-event publish, Koa's context, router, middleware chain and response helpers cost
// more than the publish itself. Only requests this path is sure to answer exactly as the
// Koa routes would are taken (POST, the exact path, a URL parseurl splits at its first
// `?`); every other request, and every other route, goes to Koa. The checks are the Koa
// routes' own (createPublisher, the API_KEY check, the metrics' recorder), in their order.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';
import type { Event } from '../../../shared/schema.js';
import type { BearerCheck } from '../http/auth.js';
import { errorAnswer } from '../http/errors.js';
import { writeJson, type JsonAnswer } from '../http/json-answer.js';
import type { RequestContexts } from '../http/request-context.js';
import type { Publisher } from './route.js';

export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

type LeanDeps = {
  publisher: Publisher;
  checkKey: BearerCheck;
  record: (status: number, seconds: number, accepted: readonly Event[] | undefined) => void;
  contexts: RequestContexts;
  log: Logger;
};

/** Characters for which parseurl (Koa's URL parser) leaves its fast path for url.parse. */
const PARSEURL_SLOW = /[\t\n\f\r #\u00a0\ufeff]/;

/** The publish path a URL names exactly, with its query, or undefined when Koa should see it. */
function publishTarget(url: string): { path: string; query: string | undefined } | undefined {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path !== '/publish' && path !== '/publish/batch') return undefined;
  if (q === -1) return { path, query: undefined };
  if (PARSEURL_SLOW.test(url)) return undefined;
  return { path, query: url.slice(q + 1) };
}

/** `?wait` as Koa's ctx.query gives it: absent, one value, or every value when repeated. */
function waitOf(query: string | undefined): string | string[] | undefined {
  if (query === undefined || query === '') return undefined;
  const values = new URLSearchParams(query).getAll('wait');
  return values.length <= 1 ? values[0] : values;
}

export function leanPublish(deps: LeanDeps, koa: Listener): Listener {
  const { publisher, checkKey, record, contexts, log } = deps;

  async function serve(req: IncomingMessage, res: ServerResponse, path: string, query: string | undefined): Promise<void> {
    const request = contexts.open(req, res);
    let answer: JsonAnswer;
    try {
      checkKey(req.headers.authorization ?? '');
      const done = await publisher(req, req.headers['content-type'] ?? '', waitOf(query));
      record(done.status, request.seconds(), done.accepted);
      answer = done;
    } catch (err) {
      answer = errorAnswer(err, request.log);
      record(answer.status, request.seconds(), undefined);
    }
    writeJson(res, answer);
    request.answered('POST', path, answer.status);
  }

  return (req, res) => {
    const target = req.method === 'POST' ? publishTarget(req.url ?? '') : undefined;
    if (target === undefined) return koa(req, res);
    serve(req, res, target.path, target.query).catch((err: unknown) => {
      // Only a fault of this file could land here: the answer may be half written.
      log.error({ err }, 'publish failed while answering');
      res.destroy();
    });
  };
}
