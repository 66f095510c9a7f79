// Errors that know their HTTP meaning, in the spirit of Koa's `expose`: a 4xx message is
// for the client; a 5xx keeps its detail in the log and answers with a generic message.
// `errorAnswer` is the one place an error becomes the contract's answer, on every path
// (the Koa shell, the lean publish path, `Expect` refusals, the parser's client errors);
// `statusOf` is its status alone, for what counts answers (operator/metrics.ts).
import type { Logger } from '../../../shared/log.js';
import { STORE_RETRY_AFTER_SECONDS, StoreUnavailableError } from '../../../shared/store/unavailable.js';
import type { JsonAnswer } from './json-answer.js';

export class HttpError extends Error {
  readonly expose: boolean;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
    this.expose = status < 500 || status === 503;
  }
}

/** Redis down, a command timed out, or the backlog is full: the producer should retry later. */
export function unavailable(message: string, retryAfterSeconds: number, code = 'unavailable'): HttpError {
  return new HttpError(503, code, message, {}, { 'Retry-After': String(retryAfterSeconds) });
}

/** The one rule from an error to its status: its own status when it is an HTTP error's, else 500. */
export function statusOf(err: unknown): number {
  if (err instanceof StoreUnavailableError) return 503;
  const status = (err as { status?: unknown } | null | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

/** The error code a status gets when nothing more specific was said. */
function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 408:
      return 'request_timeout';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 422:
      return 'unprocessable_entity';
    case 431:
      return 'headers_too_large';
    case 501:
      return 'not_implemented';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal_error' : 'error';
  }
}

/** Any error thrown while answering, as the contract's JSON: `{error, message, ...}`, with its status and headers. */
export function errorAnswer(err: unknown, log: Logger): JsonAnswer {
  // The store out of reach is the client's cue to retry, as /ready says, never a 500.
  if (err instanceof StoreUnavailableError) {
    log.warn({ err: err.message }, 'store unavailable');
    return {
      status: 503,
      headers: { 'Retry-After': String(STORE_RETRY_AFTER_SECONDS) },
      body: { error: 'store_unavailable', message: 'the store is unavailable; retry later' },
    };
  }
  const e = (err ?? {}) as Partial<HttpError> & { headers?: Record<string, string> };
  const status = statusOf(err);
  const exposed = status < 500 || e.expose === true;
  if (!exposed) log.error({ err }, 'request failed');
  return {
    status,
    headers: e.headers ?? {},
    body: {
      error: err instanceof HttpError ? err.code : codeForStatus(status),
      message: exposed && e.message ? e.message : 'internal error',
      ...(err instanceof HttpError ? err.extra : {}),
    },
  };
}
