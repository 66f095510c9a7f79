// POST /publish and /publish/batch answered beside Koa, straight on node:http (why there
// are two ways in, and how they stay one: route.ts). This file only routes and writes:
// the answer is the publish shell's, the request context and the writer are http/'s, the
// same the Koa shell uses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/log.js';
import { writeJson } from '../http/json-answer.js';
import type { RequestContexts } from '../http/request-context.js';
import type { PublishShell } from './route.js';

export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

type LeanDeps = { shell: PublishShell; contexts: RequestContexts; log: Logger };

/** A query of printable ASCII without `#`: one that every URL parser (Koa's too) reads verbatim. */
const PLAIN_QUERY = /^[!"$-~]*$/;

/**
 * The exact publish path a POST names and its query ('' when none), or undefined when Koa
 * should answer: any other spelling of the path, or a query that is not plain.
 */
function publishTarget(url: string): { path: string; query: string } | undefined {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path !== '/publish' && path !== '/publish/batch') return undefined;
  const query = q === -1 ? '' : url.slice(q + 1);
  return PLAIN_QUERY.test(query) ? { path, query } : undefined;
}

export function leanPublish({ shell, contexts, log }: LeanDeps, koa: Listener): Listener {
  async function serve(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
    const request = contexts.open(req, res);
    const answer = await shell(req, request, query);
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
