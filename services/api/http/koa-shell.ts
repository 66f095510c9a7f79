// The Koa app's shell, outermost: each request's context (request-context.ts), every error
// turned into the contract's answer by the one rule (errors.ts), and every JSON answer
// written by the one writer (json-answer.ts) that the lean publish path writes with too.
// Answers that are not JSON (pages, metrics, streams, 204s, OPTIONS) stay Koa's to write.
import { Stream } from 'node:stream';
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../../shared/log.js';
import { HttpError, errorAnswer } from './errors.js';
import { writeJson, type JsonAnswer } from './json-answer.js';
import type { RequestContext, RequestContexts } from './request-context.js';

/** What the shell gives every route: the request's context, and its logger. */
export type ShellState = { request: RequestContext; log: Logger };

/** Statuses whose answers have no body (Koa's respond strips it). */
const EMPTY = new Set([204, 205, 304]);

/** A body Koa would send as JSON: anything but nothing, text, bytes or a stream. */
function isJson(body: unknown): boolean {
  if (body === null || typeof body !== 'object') return false;
  return !(Buffer.isBuffer(body) || body instanceof Stream || body instanceof ReadableStream || body instanceof Blob || body instanceof Response);
}

/** An answer given to Koa as a route gives it, for the shell to write. */
export function answerWith(ctx: Context, { status, headers, body }: JsonAnswer): void {
  ctx.status = status;
  if (headers !== undefined) for (const k in headers) ctx.set(k, headers[k]!);
  ctx.body = body;
}

export function koaShell<S extends ShellState>(contexts: RequestContexts): Middleware<S> {
  return async (ctx, next) => {
    const request = contexts.open(ctx.req, ctx.res);
    ctx.state.request = request;
    Object.defineProperty(ctx.state, 'log', { get: () => request.log, configurable: true });
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new HttpError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      answerWith(ctx, errorAnswer(err, request.log));
    }
    if (ctx.respond !== false && isJson(ctx.body) && !EMPTY.has(ctx.status)) {
      ctx.respond = false;
      writeJson(ctx.res, { status: ctx.status, body: ctx.body });
    }
    request.answered(ctx.method, ctx.path, ctx.status);
  };
}
